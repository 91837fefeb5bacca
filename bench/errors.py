"""One exception hierarchy for every failure a user can act on.

Library code raises a subclass of :class:`BenchError` whose message says what failed,
where (file, case or UID), what it got, what it expected, and what to do. The CLI turns
any ``BenchError`` into that message and a non-zero exit code in one place; it never
shows a traceback for them.
"""


class BenchError(Exception):
    """Base class: a failure with a message written for the user."""

    exit_code = 2


class DataError(BenchError):
    """A RICORD download (DICOM, annotations, clinical sheet) cannot be read as expected."""


class DicomError(DataError):
    """A DICOM file or series is unreadable, incomplete or geometrically inconsistent."""


class AnnotationError(DataError):
    """The MD.ai annotation export is malformed or refers to data that is not there."""


class ClinicalSheetError(DataError):
    """The clinical spreadsheet is missing, unreadable or lacks expected columns."""


class ManifestError(DataError):
    """A manifest file is missing, malformed or lacks a needed column."""


class SplitError(BenchError):
    """A pinned split cannot be made, read or verified."""


class TaskSpecError(BenchError):
    """A task.yaml is missing or invalid."""


class PrepareError(BenchError):
    """A split cannot be materialized into container inputs and a reference."""


class SubmissionError(BenchError):
    """A submission (directory, image tarball, submission.yaml) is malformed."""


class RunnerError(BenchError):
    """The container engine or process sandbox cannot run a submission at all."""


class ScoringError(BenchError):
    """Predictions cannot be scored against a reference (hash mismatch, bad run dir)."""


class StoreError(BenchError):
    """The results store is unreadable or a result cannot be written."""


class LeaderboardError(BenchError):
    """The static leaderboard cannot be built from the store."""


class MetricInputError(ScoringError, ValueError):
    """Arrays or options handed to a metric are invalid (shape, spacing, range, NaN)."""


class UnknownMetricError(MetricInputError, KeyError):
    """A metric name that the registry does not know (a KeyError too, as for any lookup)."""


class RankingError(LeaderboardError, ValueError):
    """A ranking scheme got invalid options (method, aggregate, direction, alpha) or inputs."""


class ImageBuildError(RunnerError):
    """A container image (the local base image or a submission's image) cannot be built or loaded."""


class ClusterError(BenchError):
    """Parallel work cannot run: the dask scheduler is unreachable, lacks workers, or workers keep dying."""


class ChallengeError(BenchError):
    """A challenge definition is invalid, or an attempt breaks its rules (the message says which)."""


class OutputExistsError(BenchError):
    """An output path holds something the harness did not write; it is never replaced."""


_IO_ADVICE = {
    "ENOSPC": "the disk is full; free space there or point the command at another disk",
    "EDQUOT": "the disk quota is used up; free space there or point the command at another disk",
    "EACCES": "permission denied; check the owner and mode of that path, or choose a path you may write",
    "EPERM": "operation not permitted; check the owner and mode of that path, or choose another path",
    "EROFS": "the filesystem is read-only; choose a writable path",
    "EMFILE": "too many open files; raise the limit (ulimit -n) and try again",
    "ENAMETOOLONG": "the path is too long; choose a shorter path",
}


def io_error_message(error: OSError) -> str:
    """A message for an I/O error no library code turned into a :class:`BenchError`: the path and what to do.

    Disk full, permission denied and their kin reach the CLI's one error path
    (:class:`bench.cli._BenchGroup`) as plain ``OSError``; the user gets this line, never a
    traceback. Whatever was written atomically before the error is rolled back by the writer.
    """
    import errno

    code = errno.errorcode.get(error.errno or 0, "")
    where = " and ".join(str(name) for name in (error.filename, error.filename2) if name) or "a file"
    advice = _IO_ADVICE.get(code, "check the path and the disk, then run the command again")
    return f"{error.strerror or error} ({code or type(error).__name__}) on {where}: {advice}."
