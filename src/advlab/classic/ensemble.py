"""Ensembles of trained classifiers from their predicted probabilities (seed 004, Part B).

`soft_vote` averages the base learners' class probabilities (what the report calls bagging: the
learners are not trained on bootstrap samples, so it is soft voting). `StackingEnsemble` feeds
the base learners' probabilities, side by side, to a meta-learner (a scikit-learn random forest
by default, as in the report) and reads its feature importances back per base learner and per
output neuron. Which data the meta-learner is fitted on is the caller's choice, and it matters:
fitted on the base learners' own training-set predictions (the report's variant) it learns how
confident they are on data they have memorised, which overstates the most overfitted learner;
fitted on a held-out split the base learners never saw (the unbiased variant the report
recommends), it learns how they behave on new images. `held_out_split` makes that split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier

from advlab.data.registry import stratified_split
from advlab.errors import ConfigError


def _stack(probabilities: Sequence[npt.ArrayLike], name: str = "probabilities") -> np.ndarray:
    """(M, N, K) float64 from M arrays (N, K) of one shape, checked."""
    arrays = [np.asarray(p, dtype=np.float64) for p in probabilities]
    if not arrays:
        raise ConfigError(f"{name}: expected at least one base learner's (N, K) array, found none")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ConfigError(
            f"{name}: expected arrays (N, K) of one shape, found shapes {[a.shape for a in arrays]}"
        )
    return np.stack(arrays)


def soft_vote(probabilities: Sequence[npt.ArrayLike]) -> np.ndarray:
    """The mean of the base learners' class probabilities, (N, K).

    Args:
        probabilities: One (N, K) array per base learner (softmax outputs).

    Returns:
        (N, K) float64; `argmax(axis=1)` is the ensemble's prediction.
    """
    return _stack(probabilities).mean(axis=0)


class StackingEnsemble:
    """A meta-learner on the base learners' probabilities, concatenated (N, M * K).

    Args:
        meta: A scikit-learn classifier with `feature_importances_` after fitting (None: a
            random forest of `n_estimators` trees, seeded with `seed`).
        n_estimators: Trees of the default forest.
        seed: Its random_state.

    Attributes (after `fit`):
        n_learners, num_classes: M and K.
        meta_: The fitted meta-learner.
    """

    def __init__(
        self, meta: ClassifierMixin | None = None, *, n_estimators: int = 500, seed: int = 0
    ) -> None:
        self.meta = meta
        self.n_estimators = n_estimators
        self.seed = seed

    def fit(self, probabilities: Sequence[npt.ArrayLike], labels: npt.ArrayLike) -> Self:
        """Fit the meta-learner on the base learners' probabilities for labelled images."""
        stacked = _stack(probabilities)
        y = np.asarray(labels)
        if y.shape != (stacked.shape[1],):
            raise ConfigError(
                f"labels: expected shape ({stacked.shape[1]},) to match the "
                f"probabilities, found {y.shape}"
            )
        self.n_learners, _, self.num_classes = stacked.shape
        meta: Any = (
            self.meta
            if self.meta is not None
            else RandomForestClassifier(
                n_estimators=self.n_estimators, random_state=self.seed, n_jobs=1
            )
        )
        self.meta_ = meta.fit(self._features(stacked), y)
        return self

    def _features(self, stacked: np.ndarray) -> np.ndarray:
        return stacked.transpose(1, 0, 2).reshape(stacked.shape[1], -1)  # learner-major

    def _check(self, probabilities: Sequence[npt.ArrayLike]) -> np.ndarray:
        if not hasattr(self, "meta_"):
            raise ConfigError("StackingEnsemble: call fit() before predicting")
        stacked = _stack(probabilities)
        if (stacked.shape[0], stacked.shape[2]) != (self.n_learners, self.num_classes):
            raise ConfigError(
                f"probabilities: fitted on {self.n_learners} learners x "
                f"{self.num_classes} classes, found {stacked.shape[0]} x "
                f"{stacked.shape[2]}"
            )
        return stacked

    def predict_proba(self, probabilities: Sequence[npt.ArrayLike]) -> np.ndarray:
        """The meta-learner's class probabilities, (N, K) over its classes (`meta_.classes_`)."""
        features = self._features(self._check(probabilities))
        return np.asarray(self.meta_.predict_proba(features))

    def predict(self, probabilities: Sequence[npt.ArrayLike]) -> np.ndarray:
        """The meta-learner's predicted labels, (N,)."""
        features = self._features(self._check(probabilities))
        return np.asarray(self.meta_.predict(features))

    def importances(self) -> np.ndarray:
        """The meta-learner's feature importances as (M, K): row m, column k is base learner
        m's output neuron k; rows summed give each learner's share (the report's figure 6)."""
        if not hasattr(self, "meta_"):
            raise ConfigError("StackingEnsemble: call fit() before asking for importances")
        values = np.asarray(getattr(self.meta_, "feature_importances_", None))
        if values.shape != (self.n_learners * self.num_classes,):
            raise ConfigError(
                f"meta-learner {type(self.meta_).__name__} has no "
                "feature_importances_ of one value per feature"
            )
        return values.reshape(self.n_learners, self.num_classes)


def held_out_split(
    labels: npt.ArrayLike, fraction: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified split of indices 0..N-1 into (fit, held) with `fraction` of every class
    held: fit the meta-learner on one part, measure it on the other."""
    y = np.asarray(labels)
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction: expected a number in (0, 1), found {fraction!r}")
    parts = stratified_split(y, {"held": fraction, "fit": 1.0 - fraction}, seed)
    return parts["fit"], parts["held"]


def compare_ensembles(
    probabilities: Mapping[str, Mapping[str, npt.ArrayLike]],
    labels: Mapping[str, npt.ArrayLike],
    *,
    fit_on: str,
    scored: Sequence[str],
    n_estimators: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Every base learner, their soft vote and their stacking, on the same splits.

    Args:
        probabilities: Split name -> learner name -> (N, K) class probabilities of that
            learner on that split (the same learners, in the same order, on every split).
        labels: Split name -> (N,) true labels.
        fit_on: The split the stacking meta-learner is fitted on (its own training images
            for the report's variant, images the learners never saw for the unbiased one).
        scored: The splits the two ensembles are measured on.
        n_estimators, seed: The random forest meta-learner.

    Returns:
        ``learners``: per learner, ``<split>_acc`` on every split; ``soft_vote`` and
        ``stacking``: ``<split>_acc`` on the `scored` splits; ``importances``: the
        meta-learner's (M, K) importances as nested lists.
    """
    y = {k: np.asarray(v) for k, v in labels.items()}
    names = list(probabilities[fit_on])

    def accuracy(p: np.ndarray, split: str) -> float:
        return float((p.argmax(axis=1) == y[split]).mean())

    def learners_on(split: str) -> list[npt.ArrayLike]:
        return [probabilities[split][m] for m in names]

    out: dict[str, Any] = {"learners": {
        m: {f"{k}_acc": accuracy(np.asarray(probabilities[k][m]), k) for k in probabilities}
        for m in names}}  # fmt: skip
    out["soft_vote"] = {f"{k}_acc": accuracy(soft_vote(learners_on(k)), k) for k in scored}
    stack = StackingEnsemble(n_estimators=n_estimators, seed=seed)
    stack.fit(learners_on(fit_on), y[fit_on])
    out["stacking"] = {
        f"{k}_acc": float((stack.predict(learners_on(k)) == y[k]).mean()) for k in scored
    }
    out["importances"] = stack.importances().tolist()
    return out


__all__ = ["StackingEnsemble", "compare_ensembles", "held_out_split", "soft_vote"]
