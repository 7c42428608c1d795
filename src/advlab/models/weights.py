"""Pretrained weights: described by config (name, file, url, sha256), found on disk, not fetched.

Lookup order for a weights file ``<file>``:

1. ``$ADVLAB_CACHE_DIR/weights/<file>`` (default ``~/.cache/advlab/weights``), where
   `import_weights` (``advlab weights import FILE``) installs;
2. ``torch.hub.get_dir()/checkpoints/<file>``, where torchvision's own downloads land.

Building a model never downloads anything: a missing file raises `WeightsNotFoundError`, whose
message says that the pretrained weights are not available, where advlab looked and how to get
them. Every file is checked against its config's sha256 (the full digest when known, otherwise the
8-hex-digit prefix torchvision embeds in its file names) before it is loaded, and it is loaded with
``torch.load(..., weights_only=True)``, so a checkpoint cannot run code.

A model records where its weights came from in the attribute ``advlab_weights``
(`WEIGHTS_ATTR`): ``"random"``, or ``"imagenet:<file>"`` with the tensors that were not taken from
the file listed, so reports never present random weights as ImageNet weights.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from advlab.errors import ChecksumError, ConfigError, DataError, WeightsNotFoundError
from advlab.fileio import atomic_path, cache_dir, file_digest
from advlab.registry import Registry

log = logging.getLogger(__name__)

WEIGHTS_ATTR = "advlab_weights"
RANDOM = "random"

# torchvision names its files "<arch>-<first 8 hex digits of the sha256>.pth".
_NAME_HASH = re.compile(r"-([a-f0-9]{8,64})\.[A-Za-z0-9]+$")

_TAG_NAMES = {"imagenet": "ImageNet"}

_M = TypeVar("_M", bound=nn.Module)


@dataclass(frozen=True)
class WeightsConfig:
    """Where a set of pretrained weights comes from and how to recognise its file.

    Args:
        name: Registry key, ``"<architecture>.<tag>"``, e.g. ``"resnet18.imagenet"``.
        tag: What the weights were trained on, used in the model's provenance label.
        file: File name looked up in the weights folders.
        url: Where the publisher serves the file (shown to the user; advlab never fetches it).
        sha256: Full sha256 of the file, or None when only the file name's prefix is known.
        description: One line for listings and error messages.
    """

    name: str
    tag: str
    file: str
    url: str
    sha256: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ConfigError(
                f"weights {self.name!r}: sha256 must be 64 lower-case hex digits, "
                f"found {self.sha256!r}"
            )
        if self.sha256 is None and _NAME_HASH.search(self.file) is None:
            raise ConfigError(
                f"weights {self.name!r}: give sha256, or a file name with a hash prefix "
                f"('<name>-<hex>.pth'); found file {self.file!r} and no sha256"
            )

    @property
    def expected_digest(self) -> str:
        """The full sha256 if known, else the prefix from the file name; digests must start so."""
        if self.sha256 is not None:
            return self.sha256
        match = _NAME_HASH.search(self.file)
        assert match is not None  # checked in __post_init__
        return match.group(1)

    def matches(self, digest: str) -> bool:
        """Whether a file with sha256 `digest` is this config's file."""
        return digest.lower().startswith(self.expected_digest)


# Looked up at call time (not captured by the model factories), so tests can swap the registry.
# Written out (a test checks it equals torchvision's metadata) so that importing advlab does
# not import torchvision's model zoo.
WEIGHTS: Registry[WeightsConfig] = Registry(
    "pretrained weights", describe=lambda cfg: cfg.description
)

for _cfg in (
    WeightsConfig(
        name="resnet18.imagenet",
        tag="imagenet",
        file="resnet18-f37072fd.pth",
        url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
        description="torchvision ResNet18_Weights.IMAGENET1K_V1 (ImageNet-1k, acc@1 69.758).",
    ),
    WeightsConfig(
        name="vgg16.imagenet",
        tag="imagenet",
        file="vgg16-397923af.pth",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        description="torchvision VGG16_Weights.IMAGENET1K_V1 (ImageNet-1k, acc@1 71.592).",
    ),
    WeightsConfig(
        name="inception_v3.imagenet",
        tag="imagenet",
        file="inception_v3_google-0cc3c7bd.pth",
        url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        description="torchvision Inception_V3_Weights.IMAGENET1K_V1 (ImageNet-1k, acc@1 77.294).",
    ),
):
    WEIGHTS.add(_cfg.name, _cfg)


def get_config(name: str) -> WeightsConfig:
    """The `WeightsConfig` registered as `name`; RegistryError listing the known names otherwise."""
    return WEIGHTS.get(name)


def weights_dir() -> Path:
    """Where `import_weights` installs files: ``$ADVLAB_CACHE_DIR/weights``."""
    return cache_dir() / "weights"


def search_paths(cfg: WeightsConfig) -> list[Path]:
    """Candidate paths of `cfg`'s file, in lookup order (whether or not they exist)."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [weights_dir() / cfg.file, hub / cfg.file]


def find_weights(cfg: WeightsConfig) -> Path:
    """The first existing copy of `cfg`'s file.

    Raises:
        WeightsNotFoundError: No lookup location holds the file; the message says so loudly,
            names every path tried and how to install the file.
    """
    paths = search_paths(cfg)
    for path in paths:
        if path.is_file():
            return path
    looked = "\n".join(f"  - {p}" for p in paths)
    tag_name = _TAG_NAMES.get(cfg.tag, cfg.tag)
    raise WeightsNotFoundError(
        f"{tag_name.upper()} WEIGHTS NOT AVAILABLE: pretrained {tag_name} weights {cfg.name!r} "
        f"(file {cfg.file}) were requested but no copy was found; advlab never downloads them "
        f"implicitly and will not substitute random weights.\n"
        f"Looked in:\n{looked}\n"
        f"To get them: download {cfg.url} on a machine with internet access, then run "
        f"`advlab weights import FILE` here (it checks the sha256 and copies the file to "
        f"{weights_dir()}); or build the model without pretrained weights."
    )


def _candidates(name: str | None) -> list[WeightsConfig]:
    """The config registered as `name`, or every registered config when `name` is None."""
    return [get_config(name)] if name is not None else [WEIGHTS.get(n) for n in WEIGHTS]


def _matching_configs(digest: str, name: str | None) -> list[WeightsConfig]:
    return [cfg for cfg in _candidates(name) if cfg.matches(digest)]


def import_weights(path: Path | str, *, name: str | None = None) -> Path:
    """Install a pretrained-weights file in the advlab cache after checking its sha256.

    This is the library side of ``advlab weights import FILE``. The file may have any name; it is
    recognised by its sha256 (the full digest where the config gives one, else the prefix in
    torchvision's file name) and copied atomically (temporary file, then rename) to
    ``$ADVLAB_CACHE_DIR/weights/<config file name>``, replacing any previous copy. The copy is
    hashed again, so what is installed is exactly what was checked.

    Args:
        path: The downloaded file, e.g. ``resnet18-f37072fd.pth``.
        name: Only accept the file as these weights (e.g. ``"resnet18.imagenet"``); by default
            any registered config whose digest matches.

    Returns:
        The installed path.

    Raises:
        DataError: `path` is not a file.
        ChecksumError: The file's sha256 matches no registered weights (or not `name`).
        RegistryError: `name` is not a registered weights name.
    """
    src = Path(path).expanduser()
    if not src.is_file():
        raise DataError(f"weights file {src}: expected a file, found nothing there")
    digest = file_digest(src, "sha256")
    matches = _matching_configs(digest, name)
    if not matches:
        expected = ", ".join(f"{c.name}: {c.expected_digest}" for c in _candidates(name))
        raise ChecksumError(
            f"weights file {src}: sha256 {digest} matches no known pretrained weights "
            f"(expected a digest starting with {expected}); the file is corrupt, truncated or "
            f"not the published one, and was not installed"
        )
    cfg = matches[0]
    dest = weights_dir() / cfg.file
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        copied = file_digest(tmp, "sha256")
        if copied != digest:
            raise ChecksumError(
                f"weights file {src}: the copy at {tmp} has sha256 {copied}, expected {digest}; "
                f"the source changed during the copy, nothing was installed"
            )
    log.info("installed %s weights %s (sha256 %s) at %s", cfg.name, src, digest, dest)
    return dest


def load_state_dict(cfg: WeightsConfig) -> tuple[dict[str, torch.Tensor], Path]:
    """Find, verify and load `cfg`'s file as a state dict (``weights_only=True``, on CPU).

    Returns:
        The state dict and the path it was read from.

    Raises:
        WeightsNotFoundError: No copy found (see `find_weights`).
        ChecksumError: The copy found does not have the expected sha256.
        DataError: The file is not a state dict of tensors.
    """
    path = find_weights(cfg)
    digest = file_digest(path, "sha256")
    if not cfg.matches(digest):
        raise ChecksumError(
            f"weights file {path}: sha256 {digest} does not start with {cfg.expected_digest} "
            f"expected for {cfg.name!r}; replace it with `advlab weights import FILE`"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a bad file; report one.
        raise DataError(f"weights file {path}: cannot be loaded as a state dict ({exc})") from exc
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise DataError(
            f"weights file {path}: expected a state dict mapping names to tensors, "
            f"found {type(state).__name__}"
        )
    return state, path


def load_pretrained(
    model: nn.Module,
    name: str,
    *,
    skip: Iterable[str] = (),
    rename: Callable[[str], str | None] | None = None,
) -> nn.Module:
    """Load the pretrained weights `name` into `model`, except the tensors under `skip`.

    Every tensor of `model` outside `skip` must come from the file, with the same shape; the
    skipped ones keep their random initialisation (e.g. a new classifier head for a different
    number of classes) and are listed in the provenance label.

    Args:
        model: Module whose parameter names match the checkpoint's.
        name: Registered weights name, e.g. ``"resnet18.imagenet"``.
        skip: Module-name prefixes (``"fc"``, ``"conv1"``) whose tensors are not loaded.
        rename: Maps each name in the file to the model's name for it, or None to leave that
            tensor out (for a model that is part of the published one: a backbone without its
            classifier, nested under another name).

    Returns:
        `model`, with ``model.advlab_weights`` set to ``"<tag>:<file>"``, followed by
        ``" (random: <prefixes>)"`` when some tensors were skipped.

    Raises:
        WeightsNotFoundError: The file is not available (nothing is substituted).
        ChecksumError, DataError: The file is not the published one, or does not fit `model`.
    """
    cfg = get_config(name)
    prefixes = tuple(skip)
    state, path = load_state_dict(cfg)
    if rename is not None:
        renamed = ((rename(k), v) for k, v in state.items())
        state = {k: v for k, v in renamed if k is not None}

    def skipped(key: str) -> bool:
        return any(key == p or key.startswith(p + ".") for p in prefixes)

    kept = {k: v for k, v in state.items() if not skipped(k)}
    expected = {k for k in model.state_dict() if not skipped(k)}
    missing, unexpected = sorted(expected - kept.keys()), sorted(kept.keys() - expected)
    if missing or unexpected:
        raise DataError(
            f"weights file {path}: does not fit the model for {cfg.name!r}; "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    try:
        model.load_state_dict(kept, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise DataError(f"weights file {path}: does not fit the model ({exc})") from exc
    label = f"{cfg.tag}:{cfg.file}"
    if prefixes:
        label += f" (random: {', '.join(prefixes)})"
    set_weights_source(model, label)
    log.info("loaded %s weights from %s into %s", cfg.name, path, type(model).__name__)
    return model


def set_weights_source(model: _M, label: str) -> _M:
    """Record where `model`'s weights came from (``model.advlab_weights = label``)."""
    # object.__setattr__: nn.Module.__setattr__ is typed for tensors and modules only.
    object.__setattr__(model, WEIGHTS_ATTR, label)
    return model


def weights_source(model: nn.Module) -> str:
    """Where `model`'s weights came from, or ``"unrecorded"`` for a model built elsewhere."""
    return str(model.__dict__.get(WEIGHTS_ATTR, "unrecorded"))
