"""One seccomp policy for both runners: Docker's default profile with tracing refused.

``seccomp.json`` beside this module is Docker's default profile (moby/profiles,
``seccomp/default.json``, Apache-2.0; see ``seccomp.NOTICE``) with ``ptrace``,
``process_vm_readv`` and ``process_vm_writev`` removed from every allow rule and refused by
an explicit rule. Why: with tracing allowed a submission can stop itself or its own init
under ``PTRACE_TRACEME`` and leave the runtime with a task it no longer reaps (a process
that outlives the container), or stop the sandbox's init so the run hangs until its timeout.

The Docker runner hands the profile to the engine as JSON; the process runner compiles the
same rules with libseccomp (the ``pyseccomp`` bindings) into the BPF program ``bwrap
--seccomp`` loads, taking the rules that apply to a process with no capabilities on this
machine's architecture, as the engine does for a container whose capabilities are all dropped.
"""

import json
import platform
import tempfile
from functools import cache
from importlib import resources
from typing import IO

from bench.errors import RunnerError

REFUSED = ("process_vm_readv", "process_vm_writev", "ptrace")
# Docker's names for the architectures in a rule's includes/excludes, by platform.machine()
_DOCKER_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x",
                "riscv64": "riscv64", "i686": "x86", "armv7l": "arm"}


@cache
def profile() -> dict:
    """The profile (a Docker seccomp profile document), read from the package data."""
    return json.loads(resources.files(__package__).joinpath("seccomp.json").read_text(encoding="utf-8"))


def docker_security_opt() -> str:
    """The ``security_opt`` entry that makes the engine use :func:`profile`."""
    return "seccomp=" + json.dumps(profile(), separators=(",", ":"))


def bpf_program() -> IO[bytes]:
    """The profile compiled to a classic BPF program, in an unlinked temporary file at offset 0.

    Pass its descriptor to ``bwrap --seccomp FD``. Rules naming a capability the sandbox does
    not have, or another architecture, are left out (as the engine leaves them out for a
    container with every capability dropped); a syscall name this libseccomp does not know
    is skipped, as the engine skips it.

    Raises
    ------
    RunnerError
        When the libseccomp bindings or the shared library are missing.
    """
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as error:
        raise RunnerError(
            f"cannot load libseccomp ({error}); install `pyseccomp` and the system library "
            "(Debian: libseccomp2). The process runner needs them to refuse ptrace."
        ) from error
    body = profile()
    operators = {"SCMP_CMP_EQ": sc.EQ, "SCMP_CMP_NE": sc.NE, "SCMP_CMP_LT": sc.LT,
                 "SCMP_CMP_LE": sc.LE, "SCMP_CMP_GT": sc.GT, "SCMP_CMP_GE": sc.GE,
                 "SCMP_CMP_MASKED_EQ": sc.MASKED_EQ}

    def action(rule: dict, name: str, errno_key: str):
        if rule[name] == "SCMP_ACT_ALLOW":
            return sc.ALLOW
        if rule[name] == "SCMP_ACT_ERRNO":
            return sc.ERRNO(rule.get(errno_key, 1))
        raise RunnerError(f"seccomp.json: action {rule[name]!r} is not supported by the process runner")

    arch = _DOCKER_ARCH.get(platform.machine(), platform.machine())
    program = sc.SyscallFilter(action(body, "defaultAction", "defaultErrnoRet"))
    for rule in body["syscalls"]:
        includes, excludes = rule.get("includes", {}), rule.get("excludes", {})
        if includes.get("caps") or includes.get("minKernel"):
            continue
        if includes.get("arches") and arch not in includes["arches"] or arch in excludes.get("arches", ()):
            continue
        arguments = [
            sc.Arg(a["index"], operators[a["op"]], a["value"], a.get("valueTwo", 0))
            for a in rule.get("args") or ()
        ]
        for name in rule["names"]:
            try:
                program.add_rule(action(rule, "action", "errnoRet"), name, *arguments)
            except (RuntimeError, ValueError, OSError):  # a name this libseccomp cannot resolve
                continue
    compiled = tempfile.TemporaryFile()
    program.export_bpf(compiled)
    compiled.seek(0)
    return compiled
