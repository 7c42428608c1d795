"""`knn-mnist`: Task 1 of seed 000's Practice Lab - nearest neighbours on the full MNIST.

Wires `advlab.classic.knn` (exact k-NN, the notebook's uint8 bug reproduced on purpose, k chosen
by cross-validation) and `advlab.data.preprocess` to the lab's five questions, plus the
preprocessing x metric table. Defaults: all 60,000 training and 10,000 test images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix

from advlab.classic.knn import (
    KNNClassifier,
    accuracy_by_k,
    kernel_isa,
    nearest_neighbors,
    select_k,
    uint8_wraparound_distances,
    vote,
)
from advlab.data import load_train_test
from advlab.data.preprocess import PREPROCESSING, compare_preprocessing, preprocess
from advlab.errors import ConfigError
from advlab.experiments.base import Context, register_experiment, rerun_command
from advlab.fileio import atomic_path
from advlab.report import Report
from advlab.report.figures import confusion_matrix_plot, image_grid, line_plot
from advlab.report.preprocessing import preprocessing_section
from advlab.runs import Run
from advlab.validation import check_choices, check_each, check_int, check_positive

STEPS = ("raw", "centred", "standardised", "pca-50", "pca-100", "pca-50-whitened", "zca")


@dataclass(frozen=True)
class KnnMnistConfig:
    """Settings of the k-NN lab; the defaults run it on the whole of MNIST."""

    dataset: str = "mnist"
    n_train: int | None = None  # None: all 60,000 official training images
    n_test: int | None = None  # None: all 10,000 test images
    buggy_uint8: bool = True  # also run the notebook's uint8 computation (on n_buggy images)
    n_buggy: int = 1000
    ks: tuple[int, ...] = tuple(range(1, 16))
    folds: int = 5
    preprocessing: tuple[str, ...] = STEPS  # names of advlab.data.preprocess.PREPROCESSING
    zca_epsilon: float = 0.1
    n_misclassified: int = 8
    memory_budget_mb: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        check_choices("preprocessing", self.preprocessing, list(PREPROCESSING))
        if "raw" not in self.preprocessing:
            raise ConfigError(
                "preprocessing: expected a list with raw (the lab's baseline), "
                f"found {list(self.preprocessing)}"
            )
        check_each("ks", self.ks, check_int, minimum=1)
        check_int("folds", self.folds, minimum=2)
        check_int("n_buggy", self.n_buggy, minimum=1)
        check_int("n_misclassified", self.n_misclassified, minimum=0)
        check_int("memory_budget_mb", self.memory_budget_mb, minimum=1)
        check_positive("zca_epsilon", self.zca_epsilon)


def execute(cfg: KnnMnistConfig, ctx: Context) -> dict[str, Any]:
    search = {"memory_budget": cfg.memory_budget_mb * 2**20, "device": ctx.device}
    train, test = load_train_test(cfg.dataset, cfg.n_train, cfg.n_test, seed=cfg.seed)
    X, y = np.asarray(train.images).reshape(len(train), -1), np.asarray(train.labels)
    Q, yq = np.asarray(test.images).reshape(len(test), -1), np.asarray(test.labels)
    n_classes = len(train.classes)
    metrics: dict[str, Any] = {
        "dataset": {
            "name": cfg.dataset,
            "train": len(train),
            "test": len(test),
            "dtype": str(X.dtype),
            "features": X.shape[1],
        },
        "kernel": kernel_isa(),
    }

    # 1. preprocessing steps as images and covariance matrices
    with ctx.timed("preprocessing figures"):
        _, first = np.unique(yq, return_index=True)
        shown = np.asarray(test.images)[np.sort(first)[:6]]
        metrics["preprocessing"] = compare_preprocessing(
            np.asarray(train.images),
            shown,
            ctx.run.file("preprocessing.npz"),
            epsilon=cfg.zca_epsilon,
        )

    # 2-3. 1-NN with L1 and L2 on the full test set (15 neighbours kept for the k study)
    kmax = min(max(cfg.ks), len(train))
    neighbours: dict[str, Any] = {}
    one_nn: dict[str, Any] = {}
    for metric in ("l1", "l2"):
        start = time.perf_counter()
        with ctx.timed(f"search {metric}"):
            nb = nearest_neighbors(X, Q, kmax, metric, **search)  # type: ignore[arg-type]
        neighbours[metric] = nb
        one_nn[metric] = {
            "accuracy": float((y[nb.indices[:, 0]] == yq).mean()),
            "seconds": time.perf_counter() - start,
        }
    metrics["one_nn"] = one_nn

    # 4. the notebook's bug: uint8 differences wrap modulo 256
    if X.dtype == np.uint8:
        metrics["bug"] = _bug(cfg, X, y, Q, yq, neighbours, ctx)

    # 6. k-NN voting: k by cross-validation on the training set, then the test set
    with ctx.timed("cross-validation"):
        ks = tuple(k for k in cfg.ks if k <= len(train) * (cfg.folds - 1) // cfg.folds)
        cv = {
            m: select_k(X, y, ks, m, folds=cfg.folds, seed=cfg.seed, **search) for m in ("l1", "l2")
        }
    voting: dict[str, Any] = {}
    for metric, sel in cv.items():
        labels = y[neighbours[metric].indices]
        test_acc = accuracy_by_k(labels, yq, [k for k in ks if k <= kmax], n_classes)
        voting[metric] = {
            "ks": list(ks),
            "cv_mean": sel.mean.tolist(),
            "cv_std": sel.std.tolist(),
            "test_accuracy": test_acc.tolist(),
            "best_k": sel.best_k,
            "best_k_test_accuracy": float(test_acc[ks.index(sel.best_k)]),
        }
    metrics["voting"] = voting
    best_metric = max(voting, key=lambda m: max(voting[m]["cv_mean"]))
    k_best = voting[best_metric]["best_k"]
    nb_best = neighbours[best_metric].indices[:, :k_best]
    pred = vote(y[nb_best], n_classes)[0]
    metrics["chosen"] = {
        "metric": best_metric,
        "k": k_best,
        "accuracy": float((pred == yq).mean()),
        "confusion": confusion_matrix(yq, pred, labels=range(n_classes)).tolist(),
    }
    wrong = np.flatnonzero(pred != yq)
    rng = np.random.default_rng(cfg.seed)
    pick = np.sort(rng.choice(wrong, min(cfg.n_misclassified, len(wrong)), replace=False))
    with atomic_path(ctx.run.file("misclassified.npz")) as tmp:
        np.savez_compressed(
            tmp,
            test_images=np.asarray(test.images)[pick],
            test_labels=yq[pick],
            predicted=pred[pick],
            neighbour_images=np.asarray(train.images)[nb_best[pick]],
            neighbour_labels=y[nb_best[pick]],
        )

    # 7. preprocessing x metric
    rows = []
    for name in cfg.preprocessing:
        with ctx.timed(f"preprocess {name}"):
            ftr, fte = preprocess(name, X, Q, epsilon=cfg.zca_epsilon)
        row: dict[str, Any] = {"preprocessing": name, "features": ftr.shape[1]}
        for metric in ("l1", "l2"):
            if name == "raw":
                row[metric] = one_nn[metric]["accuracy"]
                row[f"{metric}_seconds"] = one_nn[metric]["seconds"]
                continue
            start = time.perf_counter()
            clf = KNNClassifier(
                1,
                metric,  # type: ignore[arg-type]
                memory_budget=cfg.memory_budget_mb * 2**20,
                device=ctx.device,
            ).fit(ftr, y)
            row[metric] = float(clf.score(fte, yq))
            row[f"{metric}_seconds"] = time.perf_counter() - start
        rows.append(row)
    metrics["preprocessing_table"] = rows
    return metrics


def _bug(
    cfg: KnnMnistConfig,
    X: np.ndarray,
    y: np.ndarray,
    Q: np.ndarray,
    yq: np.ndarray,
    neighbours: dict[str, Any],
    ctx: Context,
) -> dict[str, Any]:
    """Hand-computed vs notebook (uint8) distances for a few pairs, and the buggy accuracy."""
    pairs = []
    for i in range(4):  # test image i against its true nearest neighbour and one other image
        for j in (int(neighbours["l1"].indices[i, 0]), i):
            a, b = Q[i].astype(np.int64), X[j].astype(np.int64)
            pairs.append(
                {
                    "test": i,
                    "train": j,
                    "l1_by_hand": int(np.abs(a - b).sum()),
                    "l1_uint8": int(uint8_wraparound_distances(X[j : j + 1], Q[i], "l1")[0]),
                    "l2_by_hand": float(np.sqrt(((a - b) ** 2).sum())),
                    "l2_uint8": float(uint8_wraparound_distances(X[j : j + 1], Q[i], "l2")[0]),
                }
            )
    out: dict[str, Any] = {"pairs": pairs}
    if not cfg.buggy_uint8:
        return out
    n = min(cfg.n_buggy, len(Q))
    sub = np.sort(np.random.default_rng(cfg.seed).choice(len(Q), n, replace=False))
    acc = {}
    for metric in ("l1", "l2"):
        with ctx.timed(f"buggy {metric}"):
            pred = np.empty(n, dtype=np.int64)
            for s in range(0, n, 64):
                d = uint8_wraparound_distances(X, Q[sub[s : s + 64]], metric)
                pred[s : s + 64] = y[d.argmin(1)]  # np.argmin: first minimum, as the notebook
        fixed = y[neighbours[metric].indices[sub, 0]]
        acc[metric] = {
            "buggy": float((pred == yq[sub]).mean()),
            "fixed": float((fixed == yq[sub]).mean()),
        }
    out.update({"n": n, "accuracy": acc})
    return out


# ---------------------------------------------------------------------------------------------
# report


def report(cfg: KnnMnistConfig, metrics: dict[str, Any], run: Run) -> Report:
    ds = metrics["dataset"]
    one, voting, chosen = metrics["one_nn"], metrics["voting"], metrics["chosen"]
    rep = Report(f"Nearest neighbours on {ds['name']} (seed 000, Task 1)", run.path)
    rep.intro(
        f"{ds['train']:,} training and {ds['test']:,} test images of `{ds['name']}`, "
        f"{ds['features']} pixels each ({ds['dtype']}). Every search is exact. Rerun with "
        f"`{rerun_command('knn-mnist', cfg)}`."
    )
    rep.text(
        "Methodology",
        f"""
**Data.** The official MNIST files: 60,000 training and 10,000 test images of 28x28 pixels.
The lab says the 60,000 images split into 50,000 for training and 10,000 for testing; that is
CIFAR-10's split (50,000 + 10,000 = 60,000 images), carried over from the CS231n notes the lab
adapts. MNIST has 70,000 images: 60,000 for training and 10,000 for testing. This run uses
{ds["train"]:,} training images {"(all of them)" if ds["train"] == 60000 else "(a sample)"}
and {ds["test"]:,} test images, flattened to {ds["features"]}-dimensional vectors.

**Classifier.** `advlab.classic.knn.KNNClassifier`: exact k-NN with the scikit-learn API.
uint8 images are searched in exact integer arithmetic (L2 by an int8 matrix product, L1 by a
compiled sum-of-absolute-differences kernel, here `{metrics["kernel"]}`); float features in
float32 with a float64 re-ranking that provably matches a float64 brute force. Distance ties
go to the lower training index; vote ties to the tied class that holds the nearest neighbour.

**The bug.** The lab's notebook computes `np.sum(np.abs(self.Xtr - X[i,:]), axis=1)` on uint8
arrays: the subtraction wraps modulo 256 (3 - 5 = 254), so `abs` does nothing and the
"distance" is meaningless; its L2 version also wraps the square. advlab reproduces that
computation on purpose (`uint8_wraparound_distances`) and fixes it by computing in integers
wide enough (or floats).

**Choosing k.** Stratified {cfg.folds}-fold cross-validation on the training set for k in
{list(voting["l2"]["ks"])}; the chosen k is the smallest with the highest mean validation
accuracy, then evaluated once on the test set.
""",
    )
    _results_1nn(rep, one, metrics)
    _results_voting(rep, cfg, voting, chosen, run)
    _results_preprocessing(rep, cfg, metrics, run)
    rep.text("Analysis", _analysis(metrics))
    return rep


def _results_1nn(rep: Report, one: dict[str, Any], metrics: dict[str, Any]) -> None:
    rep.text(
        "Results",
        f"""
**1-NN (questions 2 and 3).** L1: **{one["l1"]["accuracy"]:.4f}** ({one["l1"]["seconds"]:.1f} s);
L2: **{one["l2"]["accuracy"]:.4f}** ({one["l2"]["seconds"]:.1f} s). LeCun's table lists 1-NN with
L2 on MNIST at 3.09% error (96.91% accuracy).
""",
    )
    bug = metrics.get("bug")
    if bug is None:
        return
    rep.table(
        "Results",
        [{k: v for k, v in p.items()} for p in bug["pairs"]],
        caption="Distances by hand (integers) and as the notebook computes them (uint8)",
    )
    if "accuracy" in bug:
        acc = bug["accuracy"]
        rep.table(
            "Results",
            [
                {
                    "metric": m.upper(),
                    "notebook (uint8, buggy)": acc[m]["buggy"],
                    "fixed": acc[m]["fixed"],
                }
                for m in ("l1", "l2")
            ],
            caption=f"1-NN accuracy on {bug['n']:,} test images (a seeded sample), bug and fix "
            "(question 4)",
        )
    else:
        rep.text(
            "Results",
            "The buggy accuracy was not measured in this run "
            "(`--set buggy_uint8=true` measures it).",
        )


def _results_voting(
    rep: Report, cfg: KnnMnistConfig, voting: dict[str, Any], chosen: dict[str, Any], run: Run
) -> None:
    ks = voting["l2"]["ks"]
    rows = []
    for i, k in enumerate(ks):
        row: dict[str, Any] = {"k": k}
        for m in ("l1", "l2"):
            row[f"{m} cv"] = f"{voting[m]['cv_mean'][i]:.4f} ± {voting[m]['cv_std'][i]:.4f}"
            if i < len(voting[m]["test_accuracy"]):
                row[f"{m} test"] = voting[m]["test_accuracy"][i]
        rows.append(row)
    curve = line_plot(
        run.figure("accuracy_vs_k.png"),
        ks,
        {
            f"{m.upper()} {split}": (
                voting[m]["cv_mean"] if split == "cross-validation" else voting[m]["test_accuracy"]
            )
            for m in ("l1", "l2")
            for split in ("cross-validation", "test")
        },
        errors={f"{m.upper()} cross-validation": voting[m]["cv_std"] for m in ("l1", "l2")},
        title="k-NN accuracy against k",
        xlabel="k (neighbours voting)",
        ylabel="accuracy",
    )
    rep.text(
        "Results",
        f"""
**k-NN voting (question 5).** Cross-validation picks k = {voting["l1"]["best_k"]} for L1
(test accuracy {voting["l1"]["best_k_test_accuracy"]:.4f}) and k = {voting["l2"]["best_k"]} for
L2 (test accuracy {voting["l2"]["best_k_test_accuracy"]:.4f}). Even k can tie; the tie rule
above settles it.
""",
    )
    rep.table(
        "Results",
        rows,
        caption=f"{cfg.folds}-fold cross-validation accuracy (mean ± std) "
        "and test accuracy for each k",
    )
    rep.figure(
        "Results", curve, "Accuracy against k: cross-validation (with its std over folds) and test."
    )
    classes = [str(c) for c in range(len(chosen["confusion"]))]
    cm = confusion_matrix_plot(
        run.figure("confusion.png"),
        np.array(chosen["confusion"]),
        classes,
        title=f"{chosen['k']}-NN, {chosen['metric'].upper()}: "
        f"test accuracy {chosen['accuracy']:.4f}",
    )
    rep.figure(
        "Results",
        cm,
        f"Confusion matrix of the chosen classifier ({chosen['k']}-NN, "
        f"{chosen['metric'].upper()}) on the test set.",
    )
    path = run.file("misclassified.npz")
    if path.is_file():
        with np.load(path) as mis:
            test_img, nb_img = mis["test_images"], mis["neighbour_images"]
            grid = np.concatenate([test_img[:, None], nb_img], axis=1) / 255.0
            titles = [
                [f"test {t} -> {p}"] + [f"nn: {n}" for n in nl]
                for t, p, nl in zip(
                    mis["test_labels"], mis["predicted"], mis["neighbour_labels"], strict=True
                )
            ]
        fig = image_grid(
            run.figure("misclassified.png"),
            grid,
            title="Misclassified test digits (left) and their nearest neighbours",
            cell_titles=titles,
        )
        rep.figure(
            "Results",
            fig,
            "Each row: a misclassified test digit (true -> predicted), "
            "then its neighbours, nearest first, with their labels.",
        )


def _results_preprocessing(
    rep: Report, cfg: KnnMnistConfig, metrics: dict[str, Any], run: Run
) -> None:
    preprocessing_section(
        rep, run, metrics["preprocessing"], run.file("preprocessing.npz"), epsilon=cfg.zca_epsilon
    )
    rows = [
        {
            "preprocessing": r["preprocessing"],
            "features": r["features"],
            "L1 accuracy": r["l1"],
            "L2 accuracy": r["l2"],
            "L1 s": round(r["l1_seconds"], 1),
            "L2 s": round(r["l2_seconds"], 1),
        }
        for r in metrics["preprocessing_table"]
    ]
    rep.table(
        "Results",
        rows,
        caption="1-NN test accuracy after each preprocessing step "
        "(fitted on the training set), under L1 and L2, with search times",
    )


def _analysis(metrics: dict[str, Any]) -> str:
    one = metrics["one_nn"]
    table = {r["preprocessing"]: r for r in metrics["preprocessing_table"]}
    raw = table["raw"]
    verdict = "beats" if one["l2"]["accuracy"] > one["l1"]["accuracy"] else "trails"
    lines = [
        f"- **L1 or L2?** L2 {verdict}"
        f" L1 on raw pixels ({one['l2']['accuracy']:.4f} vs {one['l1']['accuracy']:.4f}). L2 "
        "weighs a few large pixel differences more than many small ones, which suits stroke "
        "images whose near-duplicates differ by small shifts along the strokes.",
    ]
    bug = metrics.get("bug", {})
    if "accuracy" in bug:
        acc = bug["accuracy"]
        lines.append(
            f"- **The bug.** With uint8 arithmetic the accuracy collapses to "
            f"{acc['l1']['buggy']:.3f} (L1) and {acc['l2']['buggy']:.3f} (L2) against "
            f"{acc['l1']['fixed']:.3f} and {acc['l2']['fixed']:.3f} once fixed: a wrapped "
            "difference turns a small negative difference into a large positive one (3 - 5 = 254), "
            "so the 'nearest' image is the one with the fewest pixels darker than the query's - "
            "bold digits whose ink covers the query's strokes - not the most similar one."
        )
    v = metrics["voting"]
    lines.append(
        f"- **Does voting help?** The chosen k ({v['l2']['best_k']} for L2, {v['l1']['best_k']} "
        f"for L1) gives {v['l2']['best_k_test_accuracy']:.4f} / "
        f"{v['l1']['best_k_test_accuracy']:.4f} on the test set against 1-NN's "
        f"{one['l2']['accuracy']:.4f} / {one['l1']['accuracy']:.4f}: a few neighbours average "
        "out single odd training images; large k blurs the boundary between similar digits."
    )
    notes = []
    if "centred" in table:
        c = table["centred"]
        same = abs(c["l1"] - raw["l1"]) < 1e-9 and abs(c["l2"] - raw["l2"]) < 1e-9
        notes.append(
            "centring changes nothing"
            + (" (identical accuracy)" if same else "")
            + ": subtracting the same mean from every image leaves every difference, and so "
            "every distance, unchanged"
        )
    if "standardised" in table:
        s = table["standardised"]
        notes.append(
            f"standardisation {'hurts' if s['l2'] < raw['l2'] else 'helps'} "
            f"(L2 {s['l2']:.4f}): dividing by each pixel's std blows up the rarely-inked border "
            "pixels, so noise at the edges weighs as much as the strokes in the middle"
        )
    pcas = [n for n in ("pca-50", "pca-100") if n in table]
    if pcas:
        helps = [n for n in pcas if table[n]["l2"] > raw["l2"]]
        notes.append(
            ", ".join(f"{n.upper()} (L2 {table[n]['l2']:.4f})" for n in pcas)
            + (" help" if len(helps) == len(pcas) else " do not consistently help")
            + ": a rotation onto the principal axes keeps L2 distances, so all that changes "
            "is that the low-variance directions, mostly pixel noise, are dropped; the search "
            "also gets much faster"
        )
    for name in ("pca-50-whitened", "zca"):
        if name in table:
            w = table[name]
            hurts = w["l2"] < raw["l2"]
            notes.append(
                f"{name} {'hurts' if hurts else 'helps'} (L2 {w['l2']:.4f}): whitening gives "
                "every retained direction the same variance, so "
                + (
                    "low-variance directions, mostly noise, now count as much as the stroke shapes"
                    if hurts
                    else "the few retained directions are weighed evenly, which the noise dropped "
                    "by "
                    "the projection makes harmless"
                )
            )
    lines.append("- **Preprocessing.** " + "; ".join(notes) + ".")
    return "\n".join(lines)


register_experiment(
    "knn-mnist",
    "seed 000 Task 1: exact 1-NN/k-NN on MNIST, the uint8 bug, k by CV, preprocessing",
    config=KnnMnistConfig,
    execute=execute,
    report=report,
)
