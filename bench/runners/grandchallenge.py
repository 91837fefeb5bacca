"""The Grand Challenge interface: an unchanged Grand Challenge algorithm container, run once per case.

Grand Challenge gives each job (one archive item, here one case) a fresh container whose
``/input`` holds one file per image socket, ``images/<socket slug>/<uuid>.mha``, and
``inputs.json``, the list of socket values; the container writes ``/output/images/<slug>/*.mha``
for an image output and ``/output/<slug>.json`` for a value. This module is the mapping between
that layout and ours, in one place:

- :func:`sockets` names the sockets of a task (the table below, also in docs/submissions.md);
- :func:`lay_out_case` writes one case's ``/input`` from the prepared NIfTI
  (:mod:`bench.runners.mha`: same grid, RAS to LPS);
- :func:`run_cases` runs the container once per case through the runner's own executor, so
  every case gets exactly the lockdown of a native run, and splits the run's time budget;
- :func:`convert_case` turns one case's ``/output`` back into our outputs (``masks/<case_id>.nii.gz``,
  rows of ``predictions.csv``), which the one collection rule
  (:func:`bench.runners.collect.collect_outputs`) then judges as it judges a native run.

==============  ==========================================  =========================================
task kind       input socket (by modality)                  output socket(s)
==============  ==========================================  =========================================
segmentation    CT: ``ct-image``                            ``covid-19-lesion-segmentation`` (image)
classification  CT: ``ct-image``; CXR: ``chest-x-ray``      per head: binary ``<head>-probability``
                                                            (a number, the positive class), else
                                                            ``<head>-probabilities`` (an object
                                                            ``{class: probability}``)
==============  ==========================================  =========================================

Time: the task's ``timeout_s`` is the budget of the whole run, as for a native run, so both
interfaces get the same time. Each case gets a fair share of what is left (the remaining time
divided by the cases not yet run, in whole seconds, at least 1), so a case that hangs loses its
share only and the cases after it still run; a case that finishes early leaves its time to the
others. A case reached with less than a second left is not run (``missing``, with that reason).
"""

import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib

from bench.io import write_bytes
from bench.prepare.nifti import save as save_nifti
from bench.runners.collect import Budget, OutputInvalid, mask_byte_cap, read_output_file, stray_entries
from bench.runners.mha import MhaInvalid, itk_to_nifti, nifti_to_itk, read_mha_bytes, write_mha
from bench.runners.record import CaseStatus, Rejected
from bench.runners.result import ExecOutcome, Sweep, describe_end
from bench.runners.staging import InputCase
from bench.runners.streams import CappedLog
from bench.tasks import Head, Limits, TaskSpec
from bench.text import clean_reason, display_name
from bench.trees import remove_tree, walk_entries

log = logging.getLogger(__name__)

INTERFACE = "grand-challenge"
_VALUE_MAX_BYTES = 1 << 16
"""Most bytes read from one ``<slug>.json`` output: a number or a small object."""


@dataclass(frozen=True)
class Socket:
    """A Grand Challenge component interface: where its value sits under ``/input`` or ``/output``."""

    slug: str
    title: str
    kind: str
    super_kind: str
    relative_path: str

    def to_json(self) -> dict:
        """The socket as ``inputs.json`` gives it under ``interface``."""
        return {"title": self.title, "slug": self.slug, "kind": self.kind, "super_kind": self.super_kind,
                "relative_path": self.relative_path, "description": "", "default_value": None,
                "look_up_table": None, "overlay_segments": []}


@dataclass(frozen=True)
class Sockets:
    """The sockets of a task: one image input, and the outputs (one image, or one value per head)."""

    input: Socket
    outputs: tuple[Socket, ...]
    heads: tuple[Head, ...] = ()

    def to_json(self) -> dict:
        return {"inputs": [self.input.to_json()], "outputs": [socket.to_json() for socket in self.outputs]}


_INPUTS = {
    "CT": Socket("ct-image", "CT Image", "Image", "Image", "images/ct-image"),
    "CXR": Socket("chest-x-ray", "Chest X-Ray", "Image", "Image", "images/chest-x-ray"),
}
SEGMENTATION_OUTPUT = Socket("covid-19-lesion-segmentation", "COVID-19 Lesion Segmentation", "Segmentation",
                             "Image", "images/covid-19-lesion-segmentation")


def head_socket(head: Head) -> Socket:
    """The output socket of one classification head: a number for a binary head, else an object."""
    if len(head.classes) == 2:
        slug = f"{head.name}-probability"
        return Socket(slug, f"{head.name.capitalize()} probability", "Float", "Value", f"{slug}.json")
    slug = f"{head.name}-probabilities"
    return Socket(slug, f"{head.name.capitalize()} probabilities", "Anything", "Value", f"{slug}.json")


def sockets(spec: TaskSpec) -> Sockets:
    """The Grand Challenge sockets of ``spec`` (see the module's table)."""
    if spec.kind == "segmentation":
        return Sockets(_INPUTS[spec.modality], (SEGMENTATION_OUTPUT,))
    return Sockets(_INPUTS[spec.modality], tuple(head_socket(head) for head in spec.heads), tuple(spec.heads))


def lay_out_case(socket: Socket, image: Path, destination: Path, case_uuid: str) -> None:
    """Write one case's ``/input``: ``<relative_path>/<uuid>.mha`` and ``inputs.json``, world-readable."""
    folder = destination
    for part in ("", *socket.relative_path.split("/")):
        folder = folder / part if part else folder
        folder.mkdir(mode=0o755)
        os.chmod(folder, 0o755)  # whatever the umask: the submission runs as another user
    name = f"{case_uuid}.mha"
    write_mha(nifti_to_itk(image), folder / name)
    os.chmod(folder / name, 0o644)
    values = [{"pk": 1, "interface": socket.to_json(), "value": None, "file": None,
               "image": {"pk": case_uuid, "name": name}}]
    (destination / "inputs.json").write_text(json.dumps(values, indent=2), encoding="utf-8")
    os.chmod(destination / "inputs.json", 0o644)


@dataclass
class Converted:
    """What :func:`convert_case` made of one case's ``/output``.

    ``problem`` is the case's status when the Grand Challenge layer already decides it (no output
    file, an unreadable ``.mha``, a value that is not a number...); None when the converted
    output goes to the collection rule. ``row`` holds the class probabilities of a
    classification case; ``rejected`` the entries of its ``/output`` outside the contract.
    """

    problem: CaseStatus | None = None
    row: dict[str, float] | None = None
    rejected: list[Rejected] = field(default_factory=list)


def convert_case(
    spec: TaskSpec, task_sockets: Sockets, case: InputCase, case_output: Path, snapshot: Path,
    converted: Path, budget: Budget, scratch: Path,
) -> Converted:
    """Turn one case's Grand Challenge ``/output`` into our output for it.

    Segmentation: the one ``.mha`` under ``images/<slug>/`` becomes ``converted/masks/<case_id>.nii.gz``
    on the grid it declares (LPS to RAS), pixel type kept. Classification: each head's
    ``<slug>.json`` becomes that head's class probabilities. Files are read without following
    symlinks and within ``budget``; values and grids are not judged here but by the collection
    rule, except what only this layer can say (no file, two files, not JSON, not a number).
    """
    result = Converted()
    try:
        if spec.kind == "segmentation":
            expected = _convert_mask(task_sockets.outputs[0], case, case_output, snapshot, converted, budget,
                                     scratch, spec.limits.output_entries)
        else:
            expected, result.row = _convert_values(task_sockets, case_output, budget)
    except OutputInvalid as invalid:
        result.problem = CaseStatus(case.case_id, invalid.status, clean_reason(str(invalid)))
        expected = set()
    stray, _, notice = stray_entries(case_output, expected, spec.limits.output_entries)
    judged = set()  # the files of a case whose status already names them are not listed twice
    if result.problem:
        judged = _named_outputs(task_sockets, case_output, spec.limits.output_entries)
    # recorded as collect_outputs records them: a name of any bytes as printable text, reasons capped
    result.rejected = [Rejected(display_name(f"{case.case_id}/{item.path}"), clean_reason(item.reason))
                       for item in (*notice, *stray) if item.path not in judged]
    return result


def _named_outputs(task_sockets: Sockets, case_output: Path, limit: int) -> set[str]:
    """Paths of the output sockets' files, already judged by the case's status (not listed twice)."""
    names = set()
    for socket in task_sockets.outputs:
        if socket.super_kind == "Value":
            names.add(socket.relative_path)
        else:
            names |= {f"{socket.relative_path}/{'/'.join(parts)}"
                      for parts in _below(case_output, socket, limit)}
    return names


def _below(case_output: Path, socket: Socket, limit: int) -> list[tuple[str, ...]]:
    """Entries below the socket's folder, as path parts within it.

    Found by walking ``/output`` itself, which never follows a link: a folder on the way that is
    a symlink (``images`` pointing at ``/etc``) is never entered, not even to list it.
    """
    prefix = tuple(socket.relative_path.split("/"))
    return [entry.parts[len(prefix):] for entry in walk_entries(case_output, limit=limit)
            if entry.parts[:len(prefix)] == prefix and len(entry.parts) > len(prefix)]


def _convert_mask(socket: Socket, case: InputCase, case_output: Path, snapshot: Path, converted: Path,
                  budget: Budget, scratch: Path, limit: int) -> set[str]:
    files = [parts[0] for parts in _below(case_output, socket, limit)
             if len(parts) == 1 and parts[0].endswith(".mha")]
    if not files:
        raise OutputInvalid(f"no {socket.relative_path}/*.mha", status="missing")
    if len(files) > 1:
        raise OutputInvalid(f"{len(files)} .mha files in {socket.relative_path}/; one is expected")
    relative = f"{socket.relative_path}/{files[0]}"
    shape = tuple(nib.load(snapshot / case.image).shape)
    raw_cap = mask_byte_cap(shape)
    data = read_output_file(case_output, relative, max_bytes=min(budget.cap_bytes, raw_cap), budget=budget)
    try:
        image = read_mha_bytes(data, shape=shape, scratch=scratch)
    except MhaInvalid as invalid:
        raise OutputInvalid(f"{relative}: {invalid}") from invalid
    (converted / "masks").mkdir(parents=True, exist_ok=True)
    save_nifti(itk_to_nifti(image), converted / "masks" / f"{case.case_id}.nii.gz")
    return {relative}


def _convert_values(task_sockets: Sockets, case_output: Path, budget: Budget) -> tuple[set[str], dict]:
    row: dict[str, float] = {}
    for socket, head in zip(task_sockets.outputs, task_sockets.heads, strict=True):
        data = read_output_file(case_output, socket.relative_path, max_bytes=_VALUE_MAX_BYTES, budget=budget)
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise OutputInvalid(f"{socket.relative_path}: not JSON ({error})") from error
        except RecursionError as error:  # '[' nested thousands deep: the decoder recurses per level
            raise OutputInvalid(f"{socket.relative_path}: JSON nested too deep to read") from error
        row.update(_head_probabilities(socket, head, value))
    return {socket.relative_path for socket in task_sockets.outputs}, row


def _head_probabilities(socket: Socket, head: Head, value) -> dict[str, float]:
    if socket.kind == "Float":
        if not _is_number(value):
            raise OutputInvalid(f"{socket.relative_path}: {value!r:.60} is not a number (the probability "
                                f"of {head.positive!r})")
        other = next(c for c in head.classes if c != head.positive)
        return {head.positive: float(value), other: 1 - float(value)}
    if not isinstance(value, dict) or set(value) != set(head.classes):
        keys = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise OutputInvalid(f"{socket.relative_path}: expected an object with exactly the keys "
                            f"{list(head.classes)}, got {keys!r:.100}")
    wrong = [c for c in head.classes if not _is_number(value[c])]
    if wrong:
        raise OutputInvalid(f"{socket.relative_path}: {wrong[0]} = {value[wrong[0]]!r:.60} is not a number")
    return {c: float(value[c]) for c in head.classes}


def _is_number(value) -> bool:
    """A JSON number that converts to a float (a 4,000-digit integer raises OverflowError)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


@dataclass(frozen=True)
class CaseRun:
    """One case's job: its uuid, the time it was given, and how its container ended (None: not run)."""

    case_id: str
    uuid: str
    timeout_s: int
    outcome: ExecOutcome | None

    @property
    def failed(self) -> str | None:
        """Why the job failed (Grand Challenge then keeps none of its outputs), or None."""
        if self.outcome is None:
            return "not run: the run's time budget was used up by the cases before it"
        if self.outcome.error:
            return f"the container of this case {self.outcome.error}"
        return None

    def to_json(self) -> dict:
        outcome = self.outcome
        return {"case_id": self.case_id, "uuid": self.uuid, "timeout_s": self.timeout_s,
                "exit_code": outcome.exit_code if outcome else None,
                "timed_out": outcome.timed_out if outcome else False,
                "oom_killed": outcome.oom_killed if outcome else False,
                "duration_s": round(outcome.duration_s, 3) if outcome else 0.0,
                "error": self.failed}


@dataclass(frozen=True)
class GrandChallengeRun:
    """All cases' jobs: the run's combined outcome, per-case statuses that override collection, the record."""

    outcome: ExecOutcome
    problems: dict[str, CaseStatus]
    rejected: tuple[Rejected, ...]
    record: dict


Executor = Callable[[Path, Path, Limits], ExecOutcome]
"""Runs the submission once with the given ``/input`` and ``/output`` folders and limits."""


def run_cases(
    spec: TaskSpec,
    cases: tuple[InputCase, ...],
    snapshot: Path,
    work: Path,
    output_dir: Path,
    converted: Path,
    limits: Limits,
    execute: Executor,
    *,
    on_case: Callable[[int, str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> GrandChallengeRun:
    """Run ``execute`` once per case in the Grand Challenge layout; convert each case's outputs.

    ``snapshot`` is the run's input snapshot (the NIfTI images); ``work`` a private folder of the
    harness for each case's ``/input`` (written before the case, removed after it) and scratch;
    ``output_dir`` the run's capped output area, holding one ``<uuid>/`` per case mounted as its
    ``/output``; ``converted`` receives our outputs for the collection rule. ``on_case`` is
    called with (index, case id) before each case; ``clock`` tells the time the budget is spent by.
    """
    task_sockets = sockets(spec)
    budget = Budget(limits.output_mb * 1024 * 1024)
    deadline = clock() + limits.timeout_s
    scratch = work / "scratch"
    scratch.mkdir(parents=True, mode=0o700)
    stdout, stderr = CappedLog(), CappedLog()
    runs: list[CaseRun] = []
    problems: dict[str, CaseStatus] = {}
    rejected: list[Rejected] = []
    rows: dict[str, dict[str, float]] = {}
    ordered = sorted(cases, key=lambda c: c.case_id)
    for index, case in enumerate(ordered):
        if on_case is not None:
            on_case(index, case.case_id)
        case_uuid = str(uuid.uuid4())
        remaining = deadline - clock()
        share = max(1, math.floor(remaining / (len(ordered) - index)))
        if remaining < 1:
            runs.append(CaseRun(case.case_id, case_uuid, 0, None))
            problems[case.case_id] = CaseStatus(case.case_id, "missing", runs[-1].failed)
            continue
        case_input, case_output = work / "input", output_dir / case_uuid
        lay_out_case(task_sockets.input, snapshot / case.image, case_input, case_uuid)
        case_output.mkdir(mode=0o777)
        os.chmod(case_output, 0o777)
        try:
            outcome = execute(case_input, case_output, limits.model_copy(update={"timeout_s": share}))
        finally:
            remove_tree(case_input)
        run = CaseRun(case.case_id, case_uuid, share, outcome)
        runs.append(run)
        for log_, data, what in ((stdout, outcome.stdout, "stdout"), (stderr, outcome.stderr, "stderr")):
            log_.feed(f"=== case {case.case_id} (job {case_uuid}): {what} ===\n".encode())
            log_.feed(data)
        if run.failed:
            log.info("case %s: %s", case.case_id, run.failed)
            problems[case.case_id] = CaseStatus(case.case_id, "missing", run.failed)
            continue
        result = convert_case(spec, task_sockets, case, case_output, snapshot, converted, budget, scratch)
        rejected += result.rejected
        if result.problem is not None:
            problems[case.case_id] = result.problem
        elif result.row is not None:
            rows[case.case_id] = result.row
    if spec.kind == "classification":
        _write_predictions(spec, rows, converted / "predictions.csv")
    record = {**task_sockets.to_json(), "time_budget_s": limits.timeout_s,
              "cases": [run.to_json() for run in runs]}
    return GrandChallengeRun(_combined(runs, limits, stdout, stderr), problems, tuple(rejected), record)


def _write_predictions(spec: TaskSpec, rows: dict[str, dict[str, float]], path: Path) -> None:
    """The probabilities as ``predictions.csv`` (``repr`` of each float, so nothing is rounded)."""
    lines = [",".join(spec.output_columns)]
    lines += [",".join([case_id, *(repr(row[c]) for c in spec.output_columns[1:])])
              for case_id, row in sorted(rows.items())]
    write_bytes(path, ("\n".join(lines) + "\n").encode())


def _combined(runs: list[CaseRun], limits: Limits, stdout: CappedLog, stderr: CappedLog) -> ExecOutcome:
    """The run's outcome from its cases': the first failure's exit code and reason, any timeout or OOM."""
    ran = [run.outcome for run in runs if run.outcome is not None]
    failed = [run for run in runs if run.failed]
    exit_code = next((o.exit_code for o in ran if o.exit_code != 0), 0 if ran else None)
    error = None
    if failed:
        error = f"{len(failed)} of {len(runs)} cases failed (first: {failed[0].case_id}: {failed[0].failed})"
    sweeps = [o.survivors for o in ran if o.survivors is not None]
    survivors = None
    if sweeps:
        survivors = Sweep(checked=all(s.checked for s in sweeps), survivors=sum(s.survivors for s in sweeps),
                          killed=sum(s.killed for s in sweeps),
                          detail=f"{sweeps[0].detail} (checked after each of the {len(sweeps)} cases)")
    return ExecOutcome(
        exit_code=exit_code,
        timed_out=any(o.timed_out for o in ran),
        oom_killed=any(o.oom_killed for o in ran),
        duration_s=sum(o.duration_s for o in ran),
        stdout=stdout.value(),
        stderr=stderr.value(),
        error=error or (describe_end(exit_code, False, False, limits) if ran else "no case was run"),
        survivors=survivors,
    )
