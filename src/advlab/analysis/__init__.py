"""Statistics over runs: mean ± std over seeds, confidence intervals."""

from advlab.analysis.stats import (
    Summary,
    confidence_interval,
    format_mean_std,
    mean_std,
    summarize,
)

__all__ = ["Summary", "confidence_interval", "format_mean_std", "mean_std", "summarize"]
