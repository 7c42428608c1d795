"""Soft voting and stacking on a synthetic problem where stacking provably wins.

Learner A is right on classes 0-1 and, on classes 2-3, names a random one of 2-3; learner B is
the mirror image. Each is right 75% of the time, soft voting cannot beat them by much (on
classes 0-1 B names 0 or 1 at random with the same confidence), but "trust A when it says 0-1,
else B" is always right, and a meta-learner on both outputs can learn it.
"""

from __future__ import annotations

import numpy as np
import pytest

from advlab.classic.ensemble import (
    StackingEnsemble,
    compare_ensembles,
    held_out_split,
    soft_vote,
)
from advlab.errors import ConfigError


def _problem(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    outputs = []
    for good in ((0, 1), (2, 3)):
        other = tuple(c for c in range(4) if c not in good)
        mine = np.isin(y, good)
        guess = np.where(mine, y, rng.choice(other, n))
        p = rng.uniform(0.0, 0.1, (n, 4))
        p[np.arange(n), guess] = rng.uniform(0.8, 0.9, n)
        outputs.append(p / p.sum(axis=1, keepdims=True))
    return outputs, y


def test_stacking_beats_every_base_learner_and_soft_voting() -> None:
    train, y_train = _problem(600, 0)
    test, y_test = _problem(600, 1)
    base = [float((p.argmax(1) == y_test).mean()) for p in test]
    assert all(0.7 < b < 0.8 for b in base)
    vote = float((soft_vote(test).argmax(1) == y_test).mean())
    stack = StackingEnsemble(n_estimators=50, seed=0).fit(train, y_train)
    stacked = float((stack.predict(test) == y_test).mean())
    assert stacked >= 0.97 and stacked > max(base) + 0.15 and stacked > vote + 0.1
    proba = stack.predict_proba(test)
    assert proba.shape == (600, 4)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    imp = stack.importances()
    assert imp.shape == (2, 4) and abs(float(imp.sum()) - 1.0) < 1e-9
    # A's neurons 0-1 and B's 2-3 carry the decision; both learners matter.
    assert imp[0, :2].sum() > imp[0, 2:].sum() and imp[1, 2:].sum() > imp[1, :2].sum()


def test_soft_vote_is_the_mean_and_inputs_are_checked() -> None:
    a, b = np.array([[0.2, 0.8]]), np.array([[0.6, 0.4]])
    np.testing.assert_allclose(soft_vote([a, b]), [[0.4, 0.6]])
    with pytest.raises(ConfigError, match=r"^probabilities: expected arrays \(N, K\) of one shape"):
        soft_vote([a, np.ones((2, 2))])
    with pytest.raises(ConfigError, match=r"^probabilities: expected at least one"):
        soft_vote([])
    with pytest.raises(ConfigError, match=r"^StackingEnsemble: call fit\(\) before predicting"):
        StackingEnsemble().predict([a])
    stack = StackingEnsemble(n_estimators=5).fit([a, b], [1])
    with pytest.raises(ConfigError, match=r"^probabilities: fitted on 2 learners x 2 classes"):
        stack.predict([a])
    with pytest.raises(ConfigError, match=r"^labels: expected shape \(1,\)"):
        StackingEnsemble().fit([a], [0, 1])


def test_held_out_split_is_stratified_and_disjoint() -> None:
    y = np.repeat(np.arange(3), [10, 20, 30])
    fit, held = held_out_split(y, 0.5, seed=3)
    assert set(fit).isdisjoint(held) and len(fit) + len(held) == 60
    assert np.bincount(y[held]).tolist() == [5, 10, 15]
    again = held_out_split(y, 0.5, seed=3)
    assert np.array_equal(again[0], fit) and np.array_equal(again[1], held)


def test_compare_ensembles_fits_on_one_split_and_scores_the_others() -> None:
    (a_fit, b_fit), y_fit = _problem(400, 0)
    (a_new, b_new), y_new = _problem(300, 1)
    probs = {"fit": {"A": a_fit, "B": b_fit}, "new": {"A": a_new, "B": b_new}}
    out = compare_ensembles(
        probs, {"fit": y_fit, "new": y_new}, fit_on="fit", scored=["new"], n_estimators=50, seed=3
    )
    assert set(out["learners"]["A"]) == {"fit_acc", "new_acc"}
    assert out["learners"]["B"]["new_acc"] == float((b_new.argmax(1) == y_new).mean())
    assert set(out["soft_vote"]) == set(out["stacking"]) == {"new_acc"}
    vote = soft_vote([a_new, b_new]).argmax(1)
    assert out["soft_vote"]["new_acc"] == float((vote == y_new).mean())
    stack = StackingEnsemble(n_estimators=50, seed=3).fit([a_fit, b_fit], y_fit)
    assert out["stacking"]["new_acc"] == float((stack.predict([a_new, b_new]) == y_new).mean())
    assert out["stacking"]["new_acc"] > max(out["learners"][m]["new_acc"] for m in "AB") + 0.1
    assert np.allclose(np.sum(out["importances"]), 1.0)
