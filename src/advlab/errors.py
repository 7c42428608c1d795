"""Exception types. Every error advlab raises for bad input comes from here.

Messages name the file or argument, what was expected and what was found.
"""

from __future__ import annotations


class AdvlabError(Exception):
    """Base class of every advlab error."""


class DataError(AdvlabError):
    """A dataset file or folder is missing, corrupt or laid out unexpectedly."""


class DatasetNotFoundError(DataError):
    """No copy of a dataset was found in any lookup location."""


class ChecksumError(DataError):
    """A file's checksum differs from the published one."""


class DownloadError(DataError):
    """A download failed (no network, server error, dropped connection)."""


class UnsafeFileError(DataError):
    """A file tried something dangerous: a pickle importing code, an archive escaping its folder."""


class ConfigError(AdvlabError):
    """A configuration value or command-line argument is invalid."""


class KNNError(ConfigError, ValueError):
    """Bad input to the k-NN search (`advlab.classic.knn`): shapes, values, k or metric."""


class WeightsNotFoundError(AdvlabError):
    """Pretrained weights were requested but no lookup location holds their file."""


class RegistryError(AdvlabError):
    """A name was looked up in a registry that does not hold it."""


class RunError(AdvlabError):
    """A run folder is missing, incomplete or cannot be resumed."""


class AttackError(AdvlabError):
    """An attack was called with invalid inputs (shape, range, labels, epsilons)."""


class SourceError(AdvlabError):
    """A frame source (`advlab.emotion.open_source`: camera, video, image folder) that cannot be
    opened or read."""


class Interrupted(KeyboardInterrupt):
    """A run was stopped by a signal (SIGTERM, SIGHUP) while it worked; it ends as Ctrl-C does:
    status ``interrupted``, resumable with ``advlab run --resume``."""
