"""Experiments: one small module per lab, registered in `EXPERIMENTS` by `register_experiment`."""

from advlab.experiments import apr_cifar as _apr_cifar  # noqa: F401
from advlab.experiments import cifar_scratch as _cifar_scratch  # noqa: F401
from advlab.experiments import demo as _demo  # noqa: F401  (registers the experiment)
from advlab.experiments import fer_train as _fer_train  # noqa: F401
from advlab.experiments import fgsm_mnist as _fgsm_mnist  # noqa: F401
from advlab.experiments import flowers as _flowers  # noqa: F401
from advlab.experiments import flowers_attacks as _flowers_attacks  # noqa: F401
from advlab.experiments import flowers_transfer as _flowers_transfer  # noqa: F401
from advlab.experiments import fooling_cifar as _fooling_cifar  # noqa: F401
from advlab.experiments import generator_attack as _generator_attack  # noqa: F401
from advlab.experiments import jsma_mnist as _jsma_mnist  # noqa: F401
from advlab.experiments import knn_mnist as _knn_mnist  # noqa: F401
from advlab.experiments import mlp_depth_gradients as _mlp_depth_gradients  # noqa: F401
from advlab.experiments import mlp_scratch_mnist as _mlp_scratch_mnist  # noqa: F401
from advlab.experiments import onepixel_cifar as _onepixel_cifar  # noqa: F401
from advlab.experiments import robust_training as _robust_training  # noqa: F401
from advlab.experiments import train as _train  # noqa: F401
from advlab.experiments.base import (
    EXPERIMENTS,
    Context,
    Experiment,
    build_config,
    rebuild_report,
    register_experiment,
    run_experiment,
)

__all__ = [
    "EXPERIMENTS",
    "Context",
    "Experiment",
    "build_config",
    "rebuild_report",
    "register_experiment",
    "run_experiment",
]
