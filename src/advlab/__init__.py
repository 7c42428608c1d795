"""advlab: reproducible machine-learning and adversarial-robustness labs."""

__version__ = "0.1.0"
