"""Execute the lab notebooks: ``python notebooks/run_notebooks.py [--full] [--out DIR] [NAME ...]``.

Without ``--full`` each notebook runs with its ``SMALL = True`` parameter cell as stored (tiny
data and models, seconds each); with ``--full`` the cell tagged ``parameters`` is replaced by
``SMALL = False`` and the lab runs at full size on the real data (``ADVLAB_DATA_DIR``). The
executed copies, with their outputs and figures, go to ``--out`` (default
``runs/notebooks/``), written atomically; the stored notebooks are never modified. ``make
notebooks`` is ``--full``; the test suite runs the small setting through `execute`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted(p.stem for p in HERE.glob("*.ipynb"))


def execute(name: str, *, small: bool = True, timeout: int = 600,
            out: Path | None = None) -> nbformat.NotebookNode:  # fmt: skip
    """Run notebook `name` in a fresh kernel; returns the executed notebook (written to `out`
    if given). Raises `nbclient.exceptions.CellExecutionError` naming the failing cell."""
    nb = nbformat.read(HERE / f"{name}.ipynb", as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(params) != 1:
        raise ValueError(f"{name}.ipynb: expected one cell tagged 'parameters', "
                         f"found {len(params)}")
    params[0].source = f"SMALL = {small}"
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()  # fmt: skip
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        part = out / f".{name}.ipynb.part"
        nbformat.write(nb, part)
        part.replace(out / f"{name}.ipynb")
    return nb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=NOTEBOOKS, help="notebooks (default: all)")
    parser.add_argument("--full", action="store_true", help="SMALL = False: the full lab")
    parser.add_argument("--out", type=Path, default=Path("runs/notebooks"))
    parser.add_argument("--timeout", type=int, default=7200, help="seconds per cell")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        sys.exit(f"unknown notebook(s) {unknown}; expected some of {NOTEBOOKS}")
    for name in args.names:
        print(f"{name} ({'full' if args.full else 'small'}) ...", flush=True)
        execute(name, small=not args.full, timeout=args.timeout, out=args.out)
        print(f"  -> {args.out / (name + '.ipynb')}", flush=True)


if __name__ == "__main__":
    main()
