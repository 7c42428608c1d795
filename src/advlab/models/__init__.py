"""Models: registry and factory, small architectures, and the wrapper that owns normalisation."""

from advlab.models import attention as _attention  # noqa: F401  (registers pixel_attention)
from advlab.models import flowers as _flowers  # noqa: F401  (registers the Flowers-17 CNNs)
from advlab.models import small as _small  # noqa: F401  (registers the small models)
from advlab.models import vision as _vision  # noqa: F401  (registers the image classifiers)
from advlab.models.numpy_model import NumpyClassifier
from advlab.models.registry import MODELS, create_model
from advlab.models.wrapper import ModelWrapper, eval_mode

__all__ = ["MODELS", "ModelWrapper", "NumpyClassifier", "create_model", "eval_mode"]
