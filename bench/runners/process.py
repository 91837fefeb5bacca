"""The process runner: the container contract as a local command, for developers without Docker.

The submission's ``command`` runs from its folder with ``BENCH_INPUT`` and ``BENCH_OUTPUT``
set. Where bubblewrap (``bwrap``) is installed it runs in a sandbox: every namespace unshared
(so no network), user 65534, only the system folders, the Python installation, the submission
folder (read-only, at ``/submission``), the input snapshot (read-only, at ``/input``), the
output folder (at ``/output``) and a size-limited ``/tmp`` visible. Without bwrap the command
runs as the calling user with full access to the host, and the run says so plainly
(``isolated: false``); it would own the snapshot's files, so the images the snapshot
hard-linked are first replaced by private copies (writing through a link would change the
prepared original). In both cases ``setrlimit`` bounds address space, file size and core
dumps, and a wall-clock timeout kills the whole process group.
"""

import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.errors import RunnerError, SubmissionError
from bench.runners.result import ExecOutcome, describe_end
from bench.runners.staging import SUBMISSION_UID, detach_links
from bench.runners.submission import Submission
from bench.tasks import Limits, parse_memory_bytes

log = logging.getLogger(__name__)

NOT_ISOLATED = (
    "NOT ISOLATED: bubblewrap (bwrap) is not installed, so the command ran as the calling user "
    "with the host's network and files; install bubblewrap or use the Docker runner for "
    "untrusted code"
)
ISOLATED = (
    "bubblewrap sandbox: all namespaces unshared (no network), uid 65534, input read-only, "
    "only system folders, Python and the submission visible; setrlimit on memory and file size"
)
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SYSTEM_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
)


def bwrap_path() -> str | None:
    """The bubblewrap executable, or None when it is not installed or disabled (``BENCH_NO_BWRAP=1``)."""
    if os.environ.get("BENCH_NO_BWRAP") == "1":
        return None
    return shutil.which("bwrap")


def resolve_command(submission: Submission) -> tuple[str, ...]:
    """The submission's command with ``{python}`` replaced by this interpreter.

    Raises
    ------
    SubmissionError
        When the submission has no ``command`` in submission.yaml.
    """
    if submission.command is None or submission.directory is None:
        raise SubmissionError(
            f"{submission.source}: no 'command' in submission.yaml; the process runner needs "
            "one (e.g. command: ['{python}', 'predict.py'])."
        )
    return tuple(part.replace("{python}", sys.executable) for part in submission.command)


def bwrap_arguments(
    bwrap: str,
    submission_dir: Path,
    input_dir: Path,
    output_dir: Path,
    limits: Limits,
    command: tuple[str, ...],
) -> list[str]:
    """The full ``bwrap ... -- command`` argument list."""
    arguments = [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--uid",
        str(SUBMISSION_UID),
        "--gid",
        str(SUBMISSION_UID),
        "--hostname",
        "submission",
    ]
    for folder in _SYSTEM_DIRS:
        path = Path(folder)
        if path.is_symlink():
            arguments += ["--symlink", os.readlink(path), folder]
        elif path.is_dir():
            arguments += ["--ro-bind", folder, folder]
    for extra in _SYSTEM_FILES:
        arguments += ["--ro-bind-try", extra, extra]
    # /tmp first: a Python installation or submission that lives under /tmp is bound on top of it
    tmpfs_bytes = str(limits.tmpfs_mb * 1024 * 1024)
    arguments += ["--proc", "/proc", "--dev", "/dev", "--size", tmpfs_bytes, "--tmpfs", "/tmp"]
    for prefix in _python_roots():
        arguments += ["--ro-bind", prefix, prefix]
    arguments += ["--ro-bind", str(submission_dir), "/submission", "--ro-bind", str(input_dir), "/input"]
    arguments += ["--bind", str(output_dir), "/output", "--chdir", "/submission", "--"]
    return arguments + list(command)


def _python_roots() -> list[str]:
    """Folders the interpreter needs outside /usr: the venv and its base installation."""
    roots = set()
    for candidate in (
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        str(Path(os.path.realpath(sys.executable)).parents[1]),
    ):
        path = os.path.realpath(candidate)
        if not any(path == d or path.startswith(d + "/") for d in _SYSTEM_DIRS):
            roots.add(path)
    if os.path.realpath(sys.prefix) != sys.prefix:
        roots.add(sys.prefix)
    # keep only outermost folders: bwrap binds each once
    ordered = sorted(roots)
    return [r for r in ordered if not any(r != o and r.startswith(o + "/") for o in ordered)]


def run_process(
    submission: Submission, input_dir: Path, output_dir: Path, limits: Limits
) -> tuple[ExecOutcome, bool, tuple[str, ...]]:
    """Run the submission's command under the contract; return (outcome, isolated, command).

    Raises
    ------
    SubmissionError
        Without a ``command``.
    RunnerError
        When the command cannot be started at all (not found, not executable).
    """
    command = resolve_command(submission)
    if limits.gpus:
        log.warning("the process runner does not allocate GPUs; the command sees whatever the host has")
    bwrap = bwrap_path()
    with tempfile.TemporaryDirectory(prefix="bench-process-") as scratch:
        if bwrap is not None:
            argv = bwrap_arguments(bwrap, submission.directory, input_dir, output_dir, limits, command)
            environment = _environment("/input", "/output", "/tmp", limits)
            cwd = None
        else:
            log.warning(NOT_ISOLATED)
            if detached := detach_links(input_dir):
                log.info("copied %d hard-linked inputs: the command runs as their owner", detached)
            argv = list(command)
            environment = _environment(str(input_dir), str(output_dir), scratch, limits)
            cwd = submission.directory
        outcome = _execute(argv, environment, cwd, limits, Path(scratch))
    return outcome, bwrap is not None, command


def _environment(input_dir: str, output_dir: str, tmp: str, limits: Limits) -> dict[str, str]:
    threads = str(max(1, int(limits.cpus)))
    return {
        "BENCH_INPUT": input_dir,
        "BENCH_OUTPUT": output_dir,
        "HOME": tmp,
        "TMPDIR": tmp,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
    }


def _limit_resources(limits: Limits) -> None:
    """Runs in the child before exec: address space, file size and core-dump limits."""
    memory = parse_memory_bytes(limits.memory)
    for name, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_FSIZE, limits.output_mb * 1024 * 1024),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(name, (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)


def _execute(
    argv: list[str], environment: dict, cwd: Path | None, limits: Limits, scratch: Path
) -> ExecOutcome:
    stdout_path, stderr_path = scratch / "stdout", scratch / "stderr"
    started = time.monotonic()
    timed_out = False
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=environment,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=lambda: _limit_resources(limits),
            )  # noqa: PLW1509
        except OSError as error:
            raise RunnerError(
                f"cannot start {argv[0]!r}: {error.strerror}. Check the command in submission.yaml."
            ) from error
        try:
            exit_code = child.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            log.warning(
                "process %d passed its %d s timeout; killing its process group", child.pid, limits.timeout_s
            )
            os.killpg(child.pid, signal.SIGKILL)
            exit_code = child.wait()
    duration = time.monotonic() - started
    stdout = _read_capped(stdout_path)
    stderr = _read_capped(stderr_path)
    return ExecOutcome(
        exit_code=exit_code,
        timed_out=timed_out,
        oom_killed=False,
        duration_s=duration,
        stdout=stdout,
        stderr=stderr,
        error=describe_end(exit_code, timed_out, False, limits),
    )


def _read_capped(path: Path, cap_bytes: int = 4 << 20) -> bytes:
    with open(path, "rb") as handle:
        head = handle.read(cap_bytes)
        size = os.fstat(handle.fileno()).st_size
        if size <= cap_bytes:
            return head
        handle.seek(size - cap_bytes // 2)
        return head[: cap_bytes // 2] + handle.read()
