"""The scikit-learn classifiers seed 004 fits on extracted features (its table 8).

The report ran naive Bayes, k-nearest neighbours, a support vector machine, logistic
regression and a random forest "using sub-optimal hyper-parameter values that generally worked
better than their default configuration", without stating them. `tabular_classifiers` fixes
one such setting, written out here so that it can be read and changed: features standardised
first for the three that depend on scale (k-NN, SVM, logistic regression), k = 5 with
distance weighting, an RBF SVM with C = 10, L2-regularised logistic regression (C = 1, up to
2,000 L-BFGS iterations) and a forest of 500 trees.
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from advlab.errors import ConfigError

CLASSIFIERS = ("naive_bayes", "knn", "svm", "logistic_regression", "random_forest")
"""The names `tabular_classifiers` knows, in the report's order."""


def tabular_classifiers(
    names: tuple[str, ...] = CLASSIFIERS, *, seed: int = 0
) -> dict[str, Pipeline | Any]:
    """Unfitted scikit-learn classifiers by name (see the module docstring for the settings).

    Raises:
        ConfigError: A name not in `CLASSIFIERS`.
    """
    unknown = [n for n in names if n not in CLASSIFIERS]
    if unknown:
        raise ConfigError(f"classifiers: expected names from {list(CLASSIFIERS)}, found {unknown}")
    build = {
        "naive_bayes": lambda: GaussianNB(),
        "knn": lambda: make_pipeline(StandardScaler(),
                                     KNeighborsClassifier(n_neighbors=5, weights="distance")),
        "svm": lambda: make_pipeline(StandardScaler(), SVC(C=10.0, kernel="rbf")),
        "logistic_regression": lambda: make_pipeline(
            StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=seed)),
        "random_forest": lambda: RandomForestClassifier(n_estimators=500, random_state=seed,
                                                        n_jobs=1),
    }  # fmt: skip
    return {n: build[n]() for n in names}


__all__ = ["CLASSIFIERS", "tabular_classifiers"]
