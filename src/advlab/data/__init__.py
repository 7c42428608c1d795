"""Datasets: registry, file formats, cache, preprocessing."""

from advlab.data.datasets import ArrayDataset
from advlab.data.registry import (
    DATASETS,
    fetch,
    get_spec,
    import_dataset,
    load_dataset,
    load_train_test,
    locate,
    verify,
)

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "fetch",
    "get_spec",
    "import_dataset",
    "load_dataset",
    "load_train_test",
    "locate",
    "verify",
]
