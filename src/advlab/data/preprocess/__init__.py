"""Preprocessing of images: centring, standardisation, PCA and ZCA whitening.

Each step is a scikit-learn transformer (`advlab.data.preprocess.transformers`), fitted on the
training split only. `PREPROCESSING` names the steps the labs use (``--set
preprocessing=[raw,centred,zca]``); `preprocess` applies one by name to a train/test pair and
`compare_preprocessing` measures what each does to a dataset (seed 000's tutorial).
"""

from advlab.data.preprocess.steps import PREPROCESSING, Step, compare_preprocessing, preprocess
from advlab.data.preprocess.transformers import (
    Centering,
    PCAWhitening,
    Standardizer,
    ZCAWhitening,
    covariance,
)

__all__ = [
    "PREPROCESSING",
    "Centering",
    "PCAWhitening",
    "Standardizer",
    "Step",
    "ZCAWhitening",
    "compare_preprocessing",
    "covariance",
    "preprocess",
]
