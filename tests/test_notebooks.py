"""Every lab notebook runs, at its SMALL setting, in a fresh kernel, and prints what it should.

The notebooks are stored without outputs; `notebooks/run_notebooks.py` executes them (``make
notebooks`` at full size). A notebook that raises fails here, naming the cell.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import require_data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notebooks"))
import run_notebooks as notebooks

NEEDS = {  # notebook -> real dataset it reads at SMALL (the others use the embedded sets)
    "000-3-one-pixel": "cifar10", "000-4-apr": "cifar10", "003-cifar-from-scratch": "cifar10",
    "001-3-emotion": "fer2013", "004-flowers": "flowers17",
}  # fmt: skip
PRINTS = {  # a line each notebook's own code prints when it worked
    "000-1-knn": "l1 test accuracy", "000-2-backprop": "test accuracy",
    "000-3-one-pixel": "d = 3: success", "000-4-apr": "Sparse-RS k=10",
    "001-1-gradients": "sigmoid' range", "001-2-adversarial-generators": "fooled:",
    "001-3-emotion": "frames/s", "002-fgsm-jax": "JAX FGSM",
    "003-cifar-from-scratch": "L2 on 0-255 pixels", "004-flowers": "soft vote",
}  # fmt: skip


def test_every_notebook_is_listed() -> None:
    assert sorted(PRINTS) == notebooks.NOTEBOOKS


@pytest.mark.parametrize("name", notebooks.NOTEBOOKS)
def test_notebook_runs_small(name: str, tmp_path: Path) -> None:
    if name in NEEDS:
        require_data(NEEDS[name])
    nb = notebooks.execute(name, small=True, timeout=300, out=tmp_path)
    text = "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )
    assert PRINTS[name] in text
    assert (tmp_path / f"{name}.ipynb").is_file()
    stored = (Path(notebooks.HERE) / f"{name}.ipynb").read_text()
    assert '"outputs": []' in stored and '"execution_count": null' in stored  # no outputs kept
    assert "SMALL = True" in stored
