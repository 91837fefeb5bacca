"""Task specifications: the model of ``<id>/task.yaml``, its loader and where tasks live.

A task declares everything that decides a score: which collections and labels form the
target, the input and output contract a submission sees, the metrics and the primary one,
the policies for missing predictions and empty masks, how entries are ranked, the bootstrap,
the subgroups, and the run limits. The spec's sha256 goes into every receipt, so a score
can always be traced back to the exact definition that produced it.

Tasks live in two folders, each holding ``<id>/task.yaml`` and ``<id>/splits/<name>.json``:
the user's (:func:`user_tasks_dir`: ``--tasks-dir``, ``$BENCH_TASKS_DIR`` or the platform's
user data folder) and the built-in one shipped as package data (:data:`BUILTIN_TASKS`).
Lookups try the user's folder first; everything bench writes (a newly pinned split) goes to
the user's folder, so an installed package and a source checkout are never written.
"""

import os
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bench.errors import TaskSpecError
from bench.io import read_yaml_model, sha256_json
from bench.metrics.registry import METRICS

COLLECTIONS = ("MIDRC-RICORD-1A", "MIDRC-RICORD-1B", "MIDRC-RICORD-1C")
SPLITS = ("train", "validation", "test")
TASKS_ENV = "BENCH_TASKS_DIR"
"""Environment variable naming the user's tasks folder (see :func:`user_tasks_dir`)."""
#: Appearance classes from least to most COVID-typical: the ordinal scale of the tie rule.
APPEARANCE_ORDER = ("negative", "atypical", "indeterminate", "typical")
#: Severity grades in increasing order.
GRADE_ORDER = ("mild", "moderate", "severe")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadingProtocol(_Spec):
    """How the readers' labels of a study become its reference (applied by bench.data.protocol).

    The defaults are RICORD's protocol: three radiologists, majority vote, adjudication of the
    disputed studies (Tsai et al., Radiology 2021), as the real 1c export records it: one MD.ai
    label group per reader, an ``Adjudication`` group, a ``Default group`` whose labels are
    no reader's, and ``Invalid Study`` flags. ``appearance`` and ``grade`` map each class to
    the label names that vote for it, spelled exactly as the 1a and 1c exports spell them
    (note the two spaces in ``Mild Opacities  (1-2 lung zones)``). ``vote: latest``: a group
    votes with its latest label of a family by ``createdAt``; ``tie_rule: lower_median``: a
    tied top count goes to the lower median of the tied values on the ordinal scale.
    """

    adjudication_groups: list[str] = ["Adjudication"]
    non_reader_groups: list[str] = ["Default group"]
    invalid_label: str = "Invalid Study"
    vote: Literal["latest"] = "latest"
    tie_rule: Literal["lower_median"] = "lower_median"
    appearance: dict[Literal[APPEARANCE_ORDER], list[str]] = {  # type: ignore[valid-type]
        "typical": ["Typical Appearance", "Typical"],
        "indeterminate": ["Indeterminate Appearance", "Indeterminate"],
        "atypical": ["Atypical Appearance", "Atypical"],
        "negative": ["Negative for Pneumonia", "Negative for pneumonia"],
    }
    grade: dict[Literal[GRADE_ORDER], list[str]] = {  # type: ignore[valid-type]
        "mild": ["Mild Opacities  (1-2 lung zones)"],
        "moderate": ["Moderate Opacities (3-4 lung zones)"],
        "severe": ["Severe Opacities (>4 lung zones)"],
    }

    @model_validator(mode="after")
    def _check(self) -> "ReadingProtocol":
        names = [n for names in (*self.appearance.values(), *self.grade.values()) for n in names]
        repeated = sorted({n for n in names if names.count(n) > 1} | ({self.invalid_label} & set(names)))
        if repeated:
            raise ValueError(f"label name(s) {repeated} vote for more than one class")
        both = sorted(set(self.adjudication_groups) & set(self.non_reader_groups))
        if both:
            raise ValueError(f"group(s) {both} are both adjudication and non-reader groups")
        return self

    def vocabulary(self) -> dict[str, tuple[str, str]]:
        """Exact label name -> (family, class): ``("appearance", "typical")``, ``("grade", "mild")``."""
        return {name: (family, value)
                for family, classes in (("appearance", self.appearance), ("grade", self.grade))
                for value, names in classes.items() for name in names}

    @cached_property
    def sha256(self) -> str:
        """sha256 of the protocol's canonical JSON; the manifest records it per row."""
        return sha256_json(self.model_dump(mode="json"))


#: RICORD's reading protocol: the default of every task and of ``bench data index``.
RICORD_PROTOCOL = ReadingProtocol()


class SegmentationTarget(_Spec):
    """Which polygon labels form the foreground, and how several readers are combined."""

    labels: Annotated[list[str], Field(min_length=1)]
    readers: Literal["union", "majority"] = "union"

    @property
    def other_readers(self) -> str:
        """The combination the task does not use, for the definition-sensitivity variant."""
        return "majority" if self.readers == "union" else "union"


class Head(_Spec):
    """One classification output: a manifest label column and its classes, in order.

    The submission writes one probability column per class (named by the class); the
    classes of all heads of a task must be distinct so that the columns are.
    """

    name: str
    column: str
    classes: Annotated[list[str], Field(min_length=2)]
    positive: str | None = None
    threshold: float = 0.5
    ordinal: bool = False
    metrics: Annotated[list[str], Field(min_length=1)]

    @model_validator(mode="after")
    def _check(self) -> "Head":
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"head {self.name!r}: classes repeat: {self.classes}")
        if len(self.classes) == 2 and self.positive not in self.classes:
            raise ValueError(f"head {self.name!r}: a binary head needs 'positive', one of {self.classes}")
        _check_metric_names(self.metrics, "classification", where=f"head {self.name!r}")
        return self


class EmptyMaskPolicy(_Spec):
    """Values for cases whose reference or prediction mask is empty (see bench.metrics)."""

    both_empty: Literal["perfect"] = "perfect"
    one_empty_distance: Literal["diagonal"] | float = "diagonal"


class Policies(_Spec):
    """How cases without a usable prediction are scored; applied uniformly, printed on the board.

    ``missing_prediction``: ``worst`` scores a missing mask with every metric at its worst
    value (:func:`bench.metrics.segmentation.worst_case_scores`), whatever the reference holds,
    so that writing nothing never earns a perfect score on a case with an empty reference;
    ``empty_mask`` scores it as an empty prediction (then the empty-mask policy applies);
    ``chance`` scores a missing probability row as the uniform distribution; ``exclude``
    leaves the case out of the aggregate (counted and shown).
    """

    missing_prediction: Literal["worst", "empty_mask", "chance", "exclude"]
    empty_mask: EmptyMaskPolicy = EmptyMaskPolicy()


class SplitStrategy(_Spec):
    """How a pinned split is drawn: patient-grouped, stratified, seeded, with target fractions."""

    seed: int
    group_by: str = "patient_id"
    stratify: list[str]
    fractions: dict[Literal["train", "validation", "test"], float]

    @field_validator("fractions")
    @classmethod
    def _sums_to_one(cls, fractions: dict[str, float]) -> dict[str, float]:
        if set(fractions) != set(SPLITS):
            raise ValueError(f"fractions needs exactly {list(SPLITS)}, got {sorted(fractions)}")
        if any(value < 0 for value in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-9:
            raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
        return fractions


class Ranking(_Spec):
    """Ranking scheme (see bench.ranking.schemes) and its significance level."""

    method: Literal["aggregate-then-rank", "rank-then-aggregate", "test-then-rank"] = "aggregate-then-rank"
    aggregate: Literal["mean", "median"] = "mean"
    alpha: float = Field(0.05, gt=0, lt=1)


class Bootstrap(_Spec):
    """Percentile bootstrap over cases, or over patients when ``cluster`` names a column."""

    resamples: int = Field(2000, ge=100)
    seed: int
    confidence: float = Field(0.95, gt=0, lt=1)
    cluster: str | None = "patient_id"
    stratify: bool = True


class Subgroups(_Spec):
    """Subgroup analyses: manifest attributes, age band edges in years, minimum group size."""

    attributes: list[Literal["site", "sex", "age_band"]] = ["site", "sex", "age_band"]
    age_band_edges: list[float] = [18, 40, 60, 80]
    min_size: int = Field(5, ge=1)


class Limits(_Spec):
    """Run limits a submission gets, by default; ``bench run`` may override them."""

    timeout_s: int = Field(gt=0)
    memory: str = "8g"
    cpus: float = Field(2, gt=0)
    gpus: int = Field(0, ge=0)
    pids: int = Field(256, ge=16)
    tmpfs_mb: int = Field(1024, ge=1)
    output_mb: int = Field(2048, ge=1)
    #: files, folders and links a submission may leave in /output (the tmpfs's inode count as
    #: root; what output collection examines at most otherwise)
    output_entries: int = Field(10_000, ge=16)

    @field_validator("memory")
    @classmethod
    def _memory_size(cls, memory: str) -> str:
        parse_memory_bytes(memory)
        return memory


class LeaderboardOptions(_Spec):
    """What the public board shows: per-case scores are hidden for the listed splits."""

    hide_per_case_for: list[Literal["train", "validation", "test"]] = ["test"]


#: The DICOM acquisition fields a confound floor may use (read by :mod:`bench.data.acquisition`).
ACQUISITION_FEATURES = ("manufacturer", "model", "kernel", "site", "slice_thickness_mm", "pixel_spacing_mm",
                        "rows", "columns", "study_date")


class ConfoundFloor(_Spec):
    """A built-in reference entry that sees only DICOM header metadata, never pixels.

    Fitted on the train split (scikit-learn logistic regression, one per head, L2 with ``C``) on
    the listed acquisition fields, scored like any entry and drawn on the board as a reference
    line: what the header alone gives away (:mod:`bench.pipeline.confound`).
    """

    features: Annotated[list[Literal[ACQUISITION_FEATURES]],  # type: ignore[valid-type]
                        Field(min_length=1)] = list(ACQUISITION_FEATURES)
    C: float = Field(1.0, gt=0)


class ReaderBand(_Spec):
    """The readers as a reference (:mod:`bench.pipeline.readers`): 1c's leave-one-reader-out band, 1a's
    inter-reader Dice and NSD; and the margin of the classification test.

    Each entry is tested for non-inferiority to the mean reader with a paired bootstrap: it is
    non-inferior when the one-sided ``confidence`` lower bound of (entry - mean reader) on the
    primary metric exceeds ``-margin``.
    """

    margin: float = Field(0.05, gt=0, lt=1)


class TaskSpec(_Spec):
    """A benchmark task as declared in ``<id>/task.yaml``."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    title: str
    description: str
    version: int = 1
    kind: Literal["segmentation", "classification"]
    collections: Annotated[list[Literal[COLLECTIONS]], Field(min_length=1)]  # type: ignore[valid-type]
    modality: Literal["CT", "CXR"]
    target: SegmentationTarget | None = None
    heads: list[Head] = []
    metrics: list[str] = []
    metric_options: dict[str, float] = {}
    primary_metric: str
    policies: Policies
    split: SplitStrategy
    ranking: Ranking = Ranking()
    bootstrap: Bootstrap
    subgroups: Subgroups = Subgroups()
    limits: Limits
    leaderboard: LeaderboardOptions = LeaderboardOptions()
    reading: ReadingProtocol = ReadingProtocol()
    confound_floor: ConfoundFloor | None = None
    reader_band: ReaderBand | None = None

    @model_validator(mode="after")
    def _check_kind(self) -> "TaskSpec":
        if self.kind == "segmentation":
            if self.confound_floor is not None:
                raise ValueError("confound_floor applies to classification tasks only (header metadata "
                                 "cannot draw a mask)")
            if self.target is None or self.heads:
                raise ValueError("a segmentation task needs 'target' and no 'heads'")
            _check_metric_names(self.metrics, "segmentation", where="metrics")
            if self.policies.missing_prediction == "chance":
                raise ValueError("missing_prediction 'chance' applies to classification only")
        else:
            if not self.heads or self.target is not None or self.metrics:
                raise ValueError("a classification task needs 'heads' (with their metrics), "
                                 "no 'target' and no top-level 'metrics'")
            if self.policies.missing_prediction in ("worst", "empty_mask"):
                raise ValueError(f"missing_prediction {self.policies.missing_prediction!r} applies "
                                 "to segmentation only")
            classes = [c for head in self.heads for c in head.classes]
            if len(set(classes)) != len(classes) or "case_id" in classes:
                raise ValueError(f"class names must be distinct across heads and not 'case_id': {classes}")
        if self.primary_metric not in self.metric_keys:
            raise ValueError(f"primary_metric {self.primary_metric!r} is not one of the task's "
                             f"metrics {self.metric_keys}")
        if METRICS[self.primary_metric.split(".")[-1]].direction is None:
            raise ValueError(f"primary_metric {self.primary_metric!r} has no direction; it cannot rank")
        return self

    @property
    def metric_keys(self) -> list[str]:
        """Metric keys as they appear in scores: ``dice`` or ``<head>.<metric>``."""
        if self.kind == "segmentation":
            return list(self.metrics)
        return [f"{head.name}.{metric}" for head in self.heads for metric in head.metrics]

    @property
    def primary_key(self) -> str:
        return self.primary_metric

    @property
    def primary_direction(self) -> str:
        """``higher`` or ``lower``: which way the primary metric is better."""
        return METRICS[self.primary_metric.split(".")[-1]].direction

    @property
    def output_columns(self) -> list[str]:
        """Columns of ``predictions.csv`` for classification tasks: case_id, then every class."""
        return ["case_id"] + [c for head in self.heads for c in head.classes]

    @property
    def label_columns(self) -> list[str]:
        """Manifest columns holding the reference labels."""
        return [head.column for head in self.heads]

    @cached_property
    def sha256(self) -> str:
        """sha256 of the canonical JSON of the whole spec: what receipts cite."""
        return sha256_json(self.model_dump(mode="json"))

    def public_dict(self) -> dict:
        """The part a submission may see (``/input/task.json``): contract and limits, no labels."""
        public = {
            "schema_version": 1,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "version": self.version,
            "kind": self.kind,
            "modality": self.modality,
            "limits": self.limits.model_dump(mode="json"),
            "task_sha256": self.sha256,
        }
        if self.kind == "segmentation":
            public["output"] = {"masks": "masks/<case_id>.nii.gz",
                                "dtype": "uint8 0/1 on the input image grid",
                                "target_labels": list(self.target.labels)}
        else:
            public["output"] = {"predictions": "predictions.csv", "columns": self.output_columns,
                                "heads": [{"name": h.name, "classes": list(h.classes)} for h in self.heads],
                                "rule": "each head's probabilities lie in [0, 1] and sum to 1 (within 1e-3)"}
        return public


def _check_metric_names(names: list[str], kind: str, *, where: str) -> None:
    if not names:
        raise ValueError(f"{where}: at least one metric is needed")
    unknown = [name for name in names if name not in METRICS]
    wrong_kind = [name for name in names if name in METRICS and METRICS[name].kind != kind]
    if unknown:
        known = sorted(name for name, info in METRICS.items() if info.kind == kind)
        raise ValueError(f"{where}: unknown metric(s) {unknown}; known {kind} metrics: {known}")
    if wrong_kind:
        raise ValueError(f"{where}: {wrong_kind} are not {kind} metrics")


def parse_memory_bytes(memory: str) -> int:
    """Bytes in a Docker-style size such as ``512m`` or ``8g``; ValueError for anything else."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = str(memory).strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "")
    if not number.isdigit() or int(number) == 0:
        raise ValueError(f"memory must look like '512m' or '8g', got {memory!r}")
    return int(number) * units.get(unit, 1)


BUILTIN_TASKS = Path(os.fspath(resources.files("bench").joinpath("builtin", "tasks")))
"""The tasks shipped inside the package (``bench/builtin/tasks``): read, never written."""


def user_tasks_dir(directory: str | os.PathLike | None = None) -> Path:
    """The user's tasks folder, where pinned splits and added tasks go.

    ``directory`` when given (the CLI's ``--tasks-dir``), else ``$BENCH_TASKS_DIR``, else the
    platform's user data folder (``~/.local/share/ricord-bench/tasks`` on Linux). Never the
    package: an installed bench may be read-only and is replaced on upgrade.
    """
    if directory is not None:
        return Path(directory)
    if os.environ.get(TASKS_ENV):
        return Path(os.environ[TASKS_ENV])
    return platformdirs.user_data_path("ricord-bench") / "tasks"


def task_folders(directory: str | os.PathLike | None = None) -> tuple[Path, ...]:
    """Where tasks and their pinned splits are looked up, in order: the user's folder, then the
    built-in tasks (one folder when the user's folder is the built-in one).

    >>> task_folders("my-tasks") == (Path("my-tasks"), BUILTIN_TASKS)
    True
    >>> task_folders(BUILTIN_TASKS) == (BUILTIN_TASKS,)
    True
    """
    user = user_tasks_dir(directory)
    return (user,) if user.resolve() == BUILTIN_TASKS.resolve() else (user, BUILTIN_TASKS)


def list_tasks(directory: str | os.PathLike | None = None) -> list[str]:
    """Ids of every task with a ``task.yaml`` in the user's folder or built in, sorted."""
    folders = task_folders(directory)
    return sorted({path.parent.name for folder in folders for path in folder.glob("*/task.yaml")})


def task_yaml(task_id: str, directory: str | os.PathLike | None = None) -> Path:
    """The ``<id>/task.yaml`` that :func:`load_task` reads: the user's, else the built-in one.

    When neither exists, the path it would have in the user's folder.
    """
    candidates = [folder / task_id / "task.yaml" for folder in task_folders(directory)]
    return next((path for path in candidates if path.is_file()), candidates[0])


def load_task(task: str | os.PathLike, *, directory: str | os.PathLike | None = None) -> TaskSpec:
    """Load and validate a task by id (``<id>/task.yaml`` in :func:`task_folders`) or by the
    path of a task.yaml.

    Raises :class:`TaskSpecError` listing every invalid field with its location.
    """
    path = Path(task)
    by_id = not path.suffix
    if by_id:
        path = task_yaml(str(task), directory)
    if not path.is_file():
        known = ", ".join(list_tasks(directory)) or "none"
        where = " or ".join(str(folder) for folder in task_folders(directory))
        raise TaskSpecError(f"task {str(task)!r}: no task.yaml at {path}" + (f" (looked in {where})" if by_id
                            else "") + f". Known tasks: {known}.")
    spec = read_yaml_model(path, TaskSpec, error=TaskSpecError, what="task fields",
                           docs=f"{BUILTIN_TASKS / 'README.md'} for every field")
    in_tasks_dir = path.parent.parent in task_folders(directory)
    if in_tasks_dir and path.parent.name != spec.id:
        raise TaskSpecError(f"{path}: id {spec.id!r} does not match its folder {path.parent.name!r}")
    return spec
