"""One error hierarchy. A user error's message is one sentence: the thing, its value, the fix."""

# The exit status of a command for a user's mistake (a bad flag, file or request).
EXIT_USAGE = 2


class DagsterAirflowError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigurationError(DagsterAirflowError):
    """A DAG, a step request, a runner or a storage is configured wrongly."""


class PluginError(DagsterAirflowError):
    """A runner or storage plugin is missing, duplicated or broken."""


class CodeLocationError(DagsterAirflowError):
    """A Dagster code location cannot be loaded, or does not hold the job."""


class RunConfigError(DagsterAirflowError):
    """A run config does not fit the job."""


class StorageError(DagsterAirflowError):
    """An intermediate storage cannot be reached or is missing an object."""


class OutputNotFoundError(StorageError):
    """An intermediate output is not in the storage."""


class AssetPartitionNotFoundError(OutputNotFoundError, FileNotFoundError):
    """A partition of an asset that an input reads was never materialized: a FileNotFoundError,
    as Dagster's own IO managers raise for it."""


class StepFailedError(DagsterAirflowError):
    """A Dagster step failed; the message carries the step's error and its cause."""


class RunnerError(DagsterAirflowError):
    """A runner could not start, follow or stop a step."""


class StepUpForRetryError(StepFailedError):
    """A Dagster step failed and Dagster retries it: the task fails into Airflow's next try.

    ``seconds_to_wait`` is Dagster's delay before that try (None: at once); the operator's retry
    policy hands it to Airflow.
    """

    def __init__(self, message: str, seconds_to_wait: float | None = None) -> None:
        super().__init__(message)
        self.seconds_to_wait = seconds_to_wait


def yaml_problem(exc: Exception) -> str:
    """A YAML parser's error on one line: what is wrong and where ("line 2, column 1")."""
    problem = getattr(exc, "problem", None) or str(exc)
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


class UntrustedFolderError(ConfigurationError):
    """A folder whose contents another user could change (files.trusted_folder refused it)."""
