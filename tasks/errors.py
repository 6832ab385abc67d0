"""The few exception classes recpipe raises on purpose.

Every message says what was expected, what was found and what to do.
"""

from __future__ import annotations


class RecpipeError(Exception):
    """Base class of every error recpipe raises deliberately."""


class ConfigError(RecpipeError):
    """The pipeline configuration (TOML file, env vars, CLI options) is invalid."""


class DataError(RecpipeError):
    """Input data cannot be read or does not have the expected shape."""


class DataValidationError(RecpipeError):
    """A batch failed a batch-level expectation; nothing downstream ran or was published."""


class PublishError(RecpipeError):
    """The recommendation tables could not be published; the previous ones still serve."""


class StoreError(RecpipeError):
    """The MLflow store is damaged or missing its history; the run stopped before writing."""


class WorkspaceError(ConfigError):
    """The workspace cannot be written, or has too little free disk space for a run."""


class DatabaseUnreachable(ConfigError):
    """The publish database does not answer, or its SQLite folder cannot be written."""


class InputNotReady(DataError):
    """The input files or landing folder are missing, unreadable or lack a column."""
