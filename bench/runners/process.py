"""The process runner: the container contract as a local command, for developers without Docker.

The submission's ``command`` runs from its folder with ``BENCH_INPUT`` and ``BENCH_OUTPUT``
set, in a bubblewrap (``bwrap``) sandbox held to what the Docker runner enforces:

- every namespace but the user one unshared (no network, own pid namespace with bwrap as its
  init, ``--die-with-parent`` so the whole namespace dies with the harness);
- host uid 65534: as root, bwrap keeps only CAP_SETUID/SETGID/SETPCAP and ``setpriv`` drops
  to 65534:65534 with no capabilities and no-new-privs before the command starts (a user
  namespace would map the sandbox user to host root); as another user, a user namespace
  maps the caller, and ``--disable-userns`` stops a nested one;
- the same seccomp policy as the containers (:mod:`bench.runners.seccomp`, compiled to BPF
  for ``bwrap --seccomp``): no ptrace, no new namespaces, no mount;
- nothing writable but size-capped tmpfs: the root and ``/dev`` are remounted read-only,
  ``/tmp`` and ``/dev/shm`` are tmpfs of ``tmpfs_mb``, ``/output`` is the run's capped area;
  only the system folders, the Python installation, the submission folder (at
  ``/submission``) and the input snapshot are visible, all read-only;
- stdout and stderr read through pipes and capped as they stream (:mod:`bench.runners.streams`);
- at the deadline the sandbox is SIGKILLed, which ends its pid namespace; afterwards the
  harness looks for any process still in that namespace, kills it and records the check.

The whole tree's pids and memory are bounded by a cgroup (:mod:`bench.runners.confine`) when one
can be made (root, cgroup v1 or v2 with those controllers). When none can, untrusted code is
refused (:func:`no_cgroup_message`) unless asked with ``unsafe=True`` (``bench run
--unsafe-no-sandbox``): the sandbox then runs with per-process limits only, and processes are bounded by
``RLIMIT_NPROC`` on the sandbox's host user, set to the tasks that user already has plus ``pids``;
``isolation`` says so. Memory is bounded with ``setrlimit`` in both modes: ``RLIMIT_AS`` (address
space) without GPUs; with GPUs ``RLIMIT_DATA`` instead (private writable memory: heap and
anonymous mappings), because CUDA reserves tens of GiB of address space it never touches and does
not start under an address-space cap. File size and core dumps are capped in both. ``--gpus``
binds the NVIDIA device nodes (:mod:`bench.runners.devices`); ``python`` (``bench run --python``)
runs the submission's ``{python}`` with the developer's own interpreter (a venv or conda
environment), whose installation is bound read-only, found from the path alone (the interpreter is
never run on the host). Without bubblewrap the runner refuses to run unless asked with
``unsafe=True`` (``bench run --unsafe-no-sandbox``): the command then runs as the calling user
with the host's network and files, only its process group is killed at the deadline (a process
that calls ``setsid`` survives), and the run records ``isolated: false``.
"""

import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.errors import RunnerError, SubmissionError
from bench.runners.confine import Confinement, confine
from bench.runners.devices import GpuBinding, gpu_binding
from bench.runners.result import ExecOutcome, Sweep, describe_end, kill_until_gone
from bench.runners.seccomp import bpf_program
from bench.runners.staging import SUBMISSION_UID, detach_links
from bench.runners.streams import CappedLog, drain
from bench.runners.submission import Submission
from bench.tasks import Limits, parse_memory_bytes

log = logging.getLogger(__name__)

NOT_ISOLATED = (
    "NOT ISOLATED (--unsafe-no-sandbox): bubblewrap is not used, so the command ran as the calling "
    "user with the host's network and files, and a process that left its process group may outlive "
    "the run; never do this with code you did not write"
)
ISOLATED = (
    "bubblewrap sandbox: network, pid, ipc, uts and cgroup namespaces unshared, host uid 65534 without "
    "capabilities, seccomp (Docker's default, ptrace refused, no new namespaces), read-only root and "
    "/dev, size-capped /tmp and /dev/shm, input read-only, output capped, streams capped, file size "
    "limited, the whole pid namespace killed at the deadline"
)
NO_SANDBOX = (
    "bubblewrap (bwrap) is not installed, so the process runner cannot contain the submission. "
    "Install bubblewrap (Debian: apt-get install bubblewrap) or use the Docker runner. To run your "
    "own code anyway, without any isolation (your user, your network, your files; a daemon it starts "
    "may outlive the run), pass --unsafe-no-sandbox."
)
UNCONFINED = "NOT for the whole tree"
"""In ``isolation`` when the sandbox had no pids and memory cgroup (``--unsafe-no-sandbox``)."""
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SYSTEM_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
)
# what bwrap keeps as root: just enough for setpriv to become 65534 and drop the bounding set
_ROOT_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")


def describe_sandbox(limits: Limits, gpus: GpuBinding, roots: list[str], confinement: Confinement | None,
                     why_not: str = "") -> str:
    """Exactly what the sandbox of one run allows: the fixed rules, then pids and memory, GPUs, Python.

    ``confinement``: the sandbox's cgroup (:mod:`bench.runners.confine`), or None, ``why_not``
    saying why there is none.
    """
    if gpus.indexes:
        memory = (f"RLIMIT_DATA {limits.memory} (private writable memory; GPU runs, as CUDA reserves "
                  "address space it does not use)")
    else:
        memory = f"RLIMIT_AS {limits.memory} (address space)"
    if confinement is not None:
        memory += (f" per process, and {limits.memory} with swap included for the whole tree in "
                   f"{confinement.describe()} (OOM-killed past it); pids: pids.max {limits.pids}")
    else:
        memory += (f" per process only, {UNCONFINED} (no cgroup: {why_not}; run with "
                   f"--unsafe-no-sandbox); pids: RLIMIT_NPROC of the sandbox's host user, {limits.pids} more "
                   "than it had at the start (every process of that user on the host counts)")
    python = ", ".join(roots) if roots else "the system's, under /usr"
    return f"{ISOLATED}; memory: {memory}; {gpus.describe()}; Python installation read-only: {python}"


def no_cgroup_message(why_not: str) -> str:
    """Why the process runner refuses untrusted code without a pids and memory cgroup, and what to do."""
    return (
        f"the process runner cannot put the sandbox in a pids and memory cgroup: {why_not}. Without "
        "one, memory is limited per process only, so a submission that starts many processes can take "
        "the machine's memory. Run bench as root (cgroup v1, or cgroup v2 with the pids and memory "
        "controllers), or use the Docker runner. To run your own code anyway, with bubblewrap but "
        "per-process memory limits and an RLIMIT_NPROC bound on processes only, pass --unsafe-no-sandbox."
    )


def bwrap_path() -> str | None:
    """The bubblewrap executable, or None when it is not installed or disabled (``BENCH_NO_BWRAP=1``)."""
    if os.environ.get("BENCH_NO_BWRAP") == "1":
        return None
    return shutil.which("bwrap")


def resolve_python(python: str | os.PathLike | None) -> str:
    """The interpreter ``{python}`` stands for: ``python`` (a path, or a name on PATH), else this one.

    Raises
    ------
    RunnerError
        ``python`` is not an executable file.
    """
    if python is None:
        return sys.executable
    found = shutil.which(str(python))
    if found is None or not os.path.isfile(found):
        raise RunnerError(
            f"--python {python}: not an executable file. Pass the interpreter of your environment, "
            "e.g. /opt/conda/envs/nnunet/bin/python or ~/venvs/monai/bin/python."
        )
    return os.path.abspath(found)


def resolve_command(submission: Submission, python: str | None = None) -> tuple[str, ...]:
    """The submission's command with ``{python}`` replaced by ``python`` (default: this interpreter).

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
    interpreter = python or sys.executable
    return tuple(part.replace("{python}", interpreter) for part in submission.command)


def bwrap_arguments(
    bwrap: str,
    submission_dir: Path,
    input_dir: Path,
    output_dir: Path,
    limits: Limits,
    command: tuple[str, ...],
    *,
    seccomp_fd: int,
    info_fd: int,
    as_root: bool,
    python: str | None = None,
    gpus: GpuBinding = GpuBinding(),  # noqa: B008
) -> list[str]:
    """The full ``bwrap ... -- command`` argument list (see the module docstring for the why)."""
    arguments = [bwrap]
    if as_root:
        # no user namespace: one would map the sandbox user to host root
        arguments += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup"]
        arguments += ["--cap-drop", "ALL"]
        for capability in _ROOT_CAPS:
            arguments += ["--cap-add", capability]
    else:
        arguments += ["--unshare-all", "--unshare-user", "--disable-userns",
                      "--uid", str(SUBMISSION_UID), "--gid", str(SUBMISSION_UID)]
    arguments += ["--die-with-parent", "--new-session", "--hostname", "submission"]
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
    arguments += ["--proc", "/proc", "--dev", "/dev"]
    arguments += ["--perms", "01777", "--size", tmpfs_bytes, "--tmpfs", "/tmp"]
    arguments += ["--perms", "01777", "--size", tmpfs_bytes, "--tmpfs", "/dev/shm"]
    for host, inside in gpus.nodes:
        arguments += ["--dev-bind", host, inside]
    if gpus.indexes:
        arguments += ["--ro-bind-try", "/sys", "/sys"]
    for prefix in python_roots(python or sys.executable):
        # bwrap running as root makes missing parents 0700, which uid 65534 cannot traverse
        for parent in reversed(Path(prefix).parents[:-1]):
            arguments += ["--perms", "0755", "--dir", str(parent)]
        arguments += ["--ro-bind", prefix, prefix]
    arguments += ["--ro-bind", str(submission_dir), "/submission", "--ro-bind", str(input_dir), "/input"]
    arguments += ["--bind", str(output_dir), "/output"]
    arguments += ["--remount-ro", "/", "--remount-ro", "/dev"]
    arguments += ["--seccomp", str(seccomp_fd), "--info-fd", str(info_fd), "--chdir", "/submission", "--"]
    if as_root:
        arguments += [_setpriv(), "--reuid", str(SUBMISSION_UID), "--regid", str(SUBMISSION_UID),
                      "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    return arguments + list(command)


def _setpriv() -> str:
    path = shutil.which("setpriv")
    if path is None or not any(path.startswith(d + "/") for d in _SYSTEM_DIRS):
        raise RunnerError(
            "setpriv (util-linux) is not installed under /usr; the process runner needs it to drop "
            "to uid 65534 inside the sandbox when bench runs as root."
        )
    return path


def python_roots(executable: str) -> list[str]:
    """Folders an interpreter needs outside the system folders, found from its path alone.

    ``<prefix>/bin/python`` gives the environment (a venv, a conda environment), the resolved
    symlink gives the installation it was made from, and a venv's ``pyvenv.cfg`` ``home`` names
    that installation's bin folder too. Each is bound read-only under its own path.
    """
    given = Path(os.path.abspath(executable))
    real = Path(os.path.realpath(executable))
    candidates = {given.parents[1], real.parents[1]}
    config = given.parents[1] / "pyvenv.cfg"
    if config.is_file():
        for line in config.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                candidates.add(Path(value.strip()).parent)
    roots = set()
    for candidate in candidates:
        for path in {str(candidate), os.path.realpath(candidate)}:
            if path != "/" and not any(path == d or path.startswith(d + "/") for d in _SYSTEM_DIRS):
                roots.add(path)
    # keep only outermost folders: bwrap binds each once
    ordered = sorted(roots)
    return [r for r in ordered if not any(r != o and r.startswith(o + "/") for o in ordered)]


def run_process(
    submission: Submission,
    input_dir: Path,
    output_dir: Path,
    limits: Limits,
    *,
    unsafe: bool = False,
    python: str | os.PathLike | None = None,
) -> tuple[ExecOutcome, bool, str, tuple[str, ...]]:
    """Run the submission's command under the contract; return (outcome, isolated, isolation, command).

    ``isolation`` states exactly what the sandbox allowed (:func:`describe_sandbox`). ``python``
    replaces this interpreter for ``{python}`` (its installation is bound read-only).

    Raises
    ------
    SubmissionError
        Without a ``command``.
    RunnerError
        When bubblewrap is missing and ``unsafe`` is False, ``python`` is not an interpreter, the
        GPUs asked for are not there, or the command cannot be started at all.
    """
    interpreter = resolve_python(python)
    command = resolve_command(submission, interpreter)
    gpus = gpu_binding(limits.gpus)
    bwrap = bwrap_path()
    if bwrap is None and not unsafe:
        raise RunnerError(NO_SANDBOX)
    if bwrap is None:
        log.warning(NOT_ISOLATED)
        if detached := detach_links(input_dir):
            log.info("copied %d hard-linked inputs: the command runs as their owner", detached)
        # inside the run's staging folder, so the run's lease covers it if the harness is killed
        scratch = input_dir.parent / "scratch"
        scratch.mkdir(mode=0o700)
        environment = _environment(str(input_dir), str(output_dir), str(scratch), limits, interpreter, gpus)
        outcome = _execute(list(command), environment, submission.directory, limits, (),
                           nproc=tasks_of(os.getuid()) + limits.pids)
        return outcome, False, NOT_ISOLATED, command
    confinement, why_not = confine(pids=limits.pids, memory_bytes=parse_memory_bytes(limits.memory))
    if confinement is None and not unsafe:
        raise RunnerError(no_cgroup_message(why_not))
    if confinement is None:
        log.warning("no cgroup for the sandbox (%s): memory per process only, processes by RLIMIT_NPROC; "
                    "--unsafe-no-sandbox was passed", why_not)
    as_root = os.geteuid() == 0
    info_read, info_write = os.pipe()
    with bpf_program() as program:
        argv = bwrap_arguments(
            bwrap, submission.directory, input_dir, output_dir, limits, command,
            seccomp_fd=program.fileno(), info_fd=info_write, as_root=as_root,
            python=interpreter, gpus=gpus,
        )
        environment = _environment("/input", "/output", "/tmp", limits, interpreter, gpus)
        nproc = None if confinement is not None else (
            tasks_of(SUBMISSION_UID if as_root else os.getuid()) + limits.pids)
        outcome = _execute(argv, environment, None, limits, (program.fileno(), info_write), info_read,
                           confinement, nproc)
    isolation = describe_sandbox(limits, gpus, python_roots(interpreter), confinement, why_not)
    return outcome, True, isolation, command


def tasks_of(uid: int) -> int:
    """Tasks (threads, which RLIMIT_NPROC counts) of host processes whose real uid is ``uid``."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:  # gone meanwhile
            continue
        if int(fields.get("Uid", "-1 ").split()[0]) == uid:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


def _environment(input_dir: str, output_dir: str, tmp: str, limits: Limits, python: str,
                 gpus: GpuBinding) -> dict[str, str]:
    """The command's whole environment; ``python``'s bin folder leads PATH (its entry points, e.g.
    ``nnUNetv2_predict``, then resolve)."""
    threads = str(max(1, int(limits.cpus)))
    return {
        **gpus.environment,
        "BENCH_INPUT": input_dir,
        "BENCH_OUTPUT": output_dir,
        "HOME": tmp,
        "TMPDIR": tmp,
        "PATH": f"{os.path.dirname(python)}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
    }


def memory_rlimit(limits: Limits) -> int:
    """``RLIMIT_AS`` without GPUs; ``RLIMIT_DATA`` with them (CUDA does not start under an AS cap)."""
    return resource.RLIMIT_DATA if limits.gpus else resource.RLIMIT_AS


def _limit_resources(limits: Limits, nproc: int | None = None) -> None:
    """Runs in the child before exec: memory per process (:func:`memory_rlimit`), file size and
    core-dump limits, and ``RLIMIT_NPROC`` when given (no cgroup). The sandbox's cgroup, when
    there is one, bounds the whole tree on top."""
    bounds = [(memory_rlimit(limits), parse_memory_bytes(limits.memory)),
              (resource.RLIMIT_FSIZE, limits.output_mb * 1024 * 1024), (resource.RLIMIT_CORE, 0)]
    if nproc is not None:
        bounds.append((resource.RLIMIT_NPROC, nproc))
    for name, value in bounds:
        resource.setrlimit(name, (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)


def _execute(
    argv: list[str],
    environment: dict,
    cwd: Path | None,
    limits: Limits,
    pass_fds: tuple[int, ...],
    info_fd: int | None = None,
    confinement: Confinement | None = None,
    nproc: int | None = None,
) -> ExecOutcome:
    """Start ``argv`` (in ``confinement``'s cgroup when given, else under ``nproc``), stream its
    output into capped logs, kill it at the deadline, sweep after."""

    def before_exec():
        _limit_resources(limits, nproc)
        if confinement is not None:
            confinement.join()

    stdout, stderr = CappedLog(), CappedLog()
    started = time.monotonic()
    timed_out = False
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=cwd,
            start_new_session=True,
            pass_fds=pass_fds,
            preexec_fn=before_exec,
        )  # noqa: PLW1509
    except OSError as error:
        if confinement is not None:
            confinement.release()
        raise RunnerError(
            f"cannot start {argv[0]!r}: {error.strerror}. Check the command in submission.yaml."
        ) from error
    finally:
        for fd in pass_fds[1:]:  # the info pipe's write end belongs to bwrap now
            os.close(fd)
    readers = [drain(child.stdout, stdout), drain(child.stderr, stderr)]
    namespace = _Namespace(info_fd) if info_fd is not None else None
    try:
        try:
            exit_code = child.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            log.warning("process %d passed its %d s timeout; killing it", child.pid, limits.timeout_s)
    finally:  # on every way out, a stop signal included: the sandbox, and with it its pid namespace
        _kill_group(child.pid)
        after_kill = child.wait()
    if timed_out:
        exit_code = after_kill
    duration = time.monotonic() - started
    survivors = namespace.sweep() if namespace is not None else Sweep(
        False, 0, 0, "no sandbox: processes that left the command's process group are not tracked")
    oom = False
    if confinement is not None:
        oom = confinement.oom_kills() > 0
        confinement.release()
    for reader in readers:
        reader.join(timeout=10)
    return ExecOutcome(
        exit_code=exit_code,
        timed_out=timed_out,
        oom_killed=oom,
        duration_s=duration,
        stdout=stdout.value(),
        stderr=stderr.value(),
        error=describe_end(exit_code, timed_out, oom, limits),
        survivors=survivors,
    )


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:  # already gone
        pass


class _Namespace:
    """The sandbox's pid namespace, learnt from ``bwrap --info-fd`` as soon as bwrap reports it.

    Killing bwrap kills the namespace's init, and the kernel then kills every process in it;
    :meth:`sweep` checks that, by looking for any process of the host still in the namespace.
    """

    def __init__(self, info_fd: int):
        self.inode: str | None = None
        self._thread = threading.Thread(target=self._read, args=(info_fd,), daemon=True)
        self._thread.start()

    def _read(self, info_fd: int) -> None:
        with os.fdopen(info_fd, "rb") as info:
            text = info.read(1 << 16)
        try:
            pid = json.loads(text)["child-pid"]
            self.inode = os.readlink(f"/proc/{pid}/ns/pid")
        except (ValueError, KeyError, OSError):  # bwrap failed, or the sandbox was already gone
            self.inode = None

    def members(self) -> list[int]:
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if os.readlink(f"/proc/{entry.name}/ns/pid") == self.inode:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def sweep(self, attempts: int = 50) -> Sweep:
        self._thread.join(timeout=5)
        if self.inode is None:
            return Sweep(False, 0, 0, "bubblewrap reported no sandbox pid namespace; not checked")
        # the kernel empties the namespace once its init is dead, not at once: a short grace
        for _ in range(20):
            if not (found := self.members()):
                break
            time.sleep(0.05)
        killed = kill_until_gone(self.members, attempts=attempts)
        left = self.members()
        if found:
            detail = f"{len(found)} processes outlived the sandbox, {len(killed)} killed"
        else:
            detail = "no process left"
        detail = f"pid namespace {self.inode}: {detail}" + (f", {len(left)} still alive" if left else "")
        return Sweep(True, len(found), len(killed), detail)
