"""`advlab.evaluation`: probes on fixed chunks equal the attacks called directly, whatever the
shards; targeted items; the model is loaded once per shard; bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advlab.attacks import FGSM, LinfPGD, TargetedMisclassification
from advlab.backends import LocalBackend
from advlab.data import load_dataset
from advlab.errors import ConfigError
from advlab.evaluation import (
    Evaluation,
    Fooled,
    JSMABothWays,
    PGDRestarts,
    evaluate,
    pgd_restarts,
)
from advlab.models import ModelWrapper, create_model
from advlab.train.store import ModelRecipe, load_model, save_model

N = 40


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MLP trained on the embedded digits, saved as an advlab checkpoint."""
    x, y = load_dataset("digits", "train").tensors(torch.device("cpu"))
    torch.manual_seed(0)
    model = ModelWrapper(
        create_model("mlp", in_shape=(1, 8, 8), num_classes=10, width=32), mean=[0.3], std=[0.4]
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    recipe = ModelRecipe("mlp", "digits", {"width": 32})
    path = tmp_path_factory.mktemp("model") / "mlp.pt"
    return save_model(path, model.eval(), recipe, (1, 8, 8), 10, {})


def _evaluation(path: Path, **probes: object) -> Evaluation:
    return Evaluation(str(path), "digits", N, 3, probes)  # type: ignore[arg-type]


def test_probes_equal_the_attacks_called_directly(digits_model: Path, tmp_path: Path) -> None:
    model = load_model(digits_model).eval()
    x, y = load_dataset("digits", "test").take(N, seed=3).tensors(torch.device("cpu"))
    pgd = LinfPGD(steps=5, rel_stepsize=0.5, seed=1)
    restarts = PGDRestarts(0.1, steps=5, restarts=3, rel_stepsize=0.5, seed=2)
    ev = _evaluation(
        digits_model,
        fgsm=Fooled(FGSM(), 0.1, streams=False),
        pgd=Fooled(pgd, 0.1, adversarials=True),
        restarts=restarts,
    )
    ids = np.arange(N)
    res = evaluate(ev, ids, folder=tmp_path / "one", chunk=16, model=model)
    assert list(res) == ["fgsm", "pgd", "restarts"]
    _, _, ok = FGSM()(model, x, y, epsilons=[0.1])
    assert res["fgsm"]["fooled"].tolist() == ok[0].tolist()
    _, adv, ok = pgd(model, x, y, epsilons=[0.1], image_ids=torch.as_tensor(ids))
    assert res["pgd"]["fooled"].tolist() == ok[0].tolist()
    np.testing.assert_array_equal(res["pgd"]["adversarials"], adv[0].numpy())
    fooled, _ = pgd_restarts(
        model,
        x,
        y,
        epsilon=0.1,
        steps=5,
        restarts=3,
        rel_stepsize=0.5,
        seed=2,
        image_ids=torch.as_tensor(ids),
    )
    assert res["restarts"]["fooled"].tolist() == fooled.tolist()
    assert 0 < res["restarts"]["fooled"].sum() <= N  # the attack does something here
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == [
        "chunk-00000.npz",
        "chunk-00001.npz",
        "chunk-00002.npz",
    ]
    # Two shards on worker processes load the checkpoint and give the same arrays.
    two = evaluate(
        ev, ids, folder=tmp_path / "two", chunk=16, shards=2, backend=LocalBackend(2, threads=1)
    )
    for name, fields in res.items():
        for field, value in fields.items():
            np.testing.assert_array_equal(two[name][field], value, err_msg=f"{name}.{field}")


def test_targeted_items_and_jsma(digits_model: Path, tmp_path: Path) -> None:
    model = load_model(digits_model).eval()
    x, _ = load_dataset("digits", "test").take(N, seed=3).tensors(torch.device("cpu"))
    ids = np.array([0 * 10 + 3, 5 * 10 + 1, 7 * 10 + 9, 7 * 10 + 2])  # (image, target) pairs
    pgd = LinfPGD(steps=10, rel_stepsize=0.25, seed=4)
    ev = Evaluation(str(digits_model), "digits", N, 3, {"pgd": Fooled(pgd, 0.3)}, targets=10)
    res = evaluate(ev, ids, folder=tmp_path / "t", chunk=3, model=model)["pgd"]
    images, targets = torch.as_tensor(ids // 10), torch.as_tensor(ids % 10)
    _, _, ok = pgd(
        model,
        x[images],
        TargetedMisclassification(targets),
        epsilons=[0.3],
        image_ids=torch.as_tensor(ids),
    )
    assert res["fooled"].tolist() == ok[0].tolist()
    assert res["fooled"].any()  # some targets reached at this budget
    jsma = evaluate(
        _evaluation(digits_model, jsma=JSMABothWays(6)),
        np.arange(6),
        folder=tmp_path / "j",
        chunk=4,
        model=model,
    )["jsma"]
    assert jsma["fooled"].dtype == bool and jsma["changed"].dtype == np.int64
    assert (jsma["changed"][~jsma["fooled"]] == 0).all()
    assert (jsma["changed"][jsma["fooled"]] >= 1).all()


def test_bad_evaluations(digits_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^probes: expected at least one attack"):
        evaluate(_evaluation(digits_model), [0, 1], folder=tmp_path, chunk=2)
    with pytest.raises(ConfigError, match=r"^chunk: expected an int >= 1, found 0"):
        evaluate(
            _evaluation(digits_model, f=Fooled(FGSM(), 0.1, streams=False)),
            [0, 1],
            folder=tmp_path,
            chunk=0,
        )
