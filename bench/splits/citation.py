"""What a paper cites: the pinned split, the task spec and the harness by hash, the metrics, the data.

A benchmark number is reproducible only with the split (its sha256 covers every case's split and
content fingerprint), the task spec (its sha256 covers metrics, policies, bootstrap), and the
harness version and git revision that computed it. :func:`cite_split` builds the block for a task
and a pinned split with this harness; :func:`cite_receipt` for a stored result, citing the harness
that scored it. :meth:`Citation.text` is the block ``bench cite`` prints and the board shows;
:meth:`Citation.bibtex` holds entries for the harness and for each RICORD collection the task
uses (TCIA asks for the collection DOI and the RICORD paper to be cited).

DOIs: 1a 10.7937/VTW4-X588 and 1c 10.7937/91ah-v663 (TCIA); 1b 10.7937/31V8-4A40 (the DOI
list of the NCI Imaging Data Commons release notes, and a third-party data table that cites
"MIDRC-RICORD-1a / -1b CT ... doi:10.7937/VTW4-X588, doi:10.7937/31V8-4A40"). RICORD paper:
Tsai et al., Radiology 2021, doi 10.1148/radiol.2021203957.
"""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.errors import SplitError
from bench.metrics.registry import METRICS
from bench.provenance import harness
from bench.splits.pinned import load_split
from bench.tasks import TaskSpec, load_task

TCIA = "https://www.cancerimagingarchive.net/"
LICENCE = "CC BY-NC 4.0"
"""The RICORD collections' licence on TCIA (Creative Commons Attribution-NonCommercial 4.0)."""
LICENCE_URL = "https://creativecommons.org/licenses/by-nc/4.0/"


@dataclass(frozen=True)
class DataSource:
    """Where a RICORD collection comes from and on what terms: the one home of these facts
    (the citation, the board's data source box, the reporting appendix and exports read them)."""

    collection: str
    title: str
    year: str
    doi: str
    licence: str = LICENCE
    licence_url: str = LICENCE_URL

    @property
    def doi_url(self) -> str:
        return f"https://doi.org/{self.doi}"

    @property
    def tcia_url(self) -> str:
        """The collection's page on The Cancer Imaging Archive."""
        return f"{TCIA}collection/{self.collection.lower()}/"


DATA_SOURCES = {source.collection: source for source in (
    DataSource("MIDRC-RICORD-1A", "Release 1a - Chest CT Covid+", "2020", "10.7937/VTW4-X588"),
    DataSource("MIDRC-RICORD-1B", "Release 1b - Chest CT Covid-", "2021", "10.7937/31V8-4A40"),
    DataSource("MIDRC-RICORD-1C", "Release 1c - Chest x-ray Covid+", "2021", "10.7937/91ah-v663"),
)}
COLLECTION_DOIS = {name: source.doi for name, source in DATA_SOURCES.items()}
_RICORD_AUTHORS = (
    "Tsai, Emily B. and Simpson, Scott and Lungren, Matthew P. and Hershman, Michelle and "
    "Roshkovan, Leonid and Colak, Errol and Erickson, Bradley J. and Shih, George and Stein, Anouk "
    "and Kalpathy-Cramer, Jayashree and Shen, Jody and Hafez, Mona and John, Susan and Rajiah, "
    "Prabhakar and Pogatchnik, Brian P. and Mongan, John and Altinmakas, Emre and Ranschaert, Erik R. "
    "and Kitamura, Felipe C. and Topff, Laurens and Moy, Linda and Kanne, Jeffrey P. and Wu, Carol C."
)


@dataclass(frozen=True)
class Citation:
    """The facts a paper cites for one task and split; see :meth:`text` and :meth:`bibtex`."""

    task: str
    task_version: int
    task_sha256: str
    split_name: str
    split: str | None
    split_sha256: str
    harness_version: str
    git_revision: str | None
    collections: tuple[str, ...]
    metrics: tuple[tuple[str, str], ...]
    primary_metric: str
    policies: Mapping[str, Any]
    bootstrap: str
    run_id: str | None = None
    result: str | None = None

    def text(self) -> str:
        """The citation block as plain text (what ``bench cite`` prints)."""
        part = f" ({self.split} split)" if self.split else ""
        lines = [
            f"ricord-bench task {self.task} v{self.task_version}, pinned split {self.split_name}{part}",
            f"  split sha256      {self.split_sha256}",
            f"  task spec sha256  {self.task_sha256}",
            f"  harness           ricord-bench {self.harness_version}, git revision "
            f"{self.git_revision or 'unknown (not run from a git checkout)'}",
        ]
        if self.run_id:
            lines.append(f"  run               {self.run_id}")
        if self.result:
            lines.append(f"  result            {self.result}")
        lines.append("  data              "
                     f"{', '.join(f'{c} (doi:{COLLECTION_DOIS[c]})' for c in self.collections)}")
        lines.append(f"  primary metric    {self.primary_metric}")
        lines.append("  metrics")
        lines += [f"    {name}: {definition}" for name, definition in self.metrics]
        lines.append(f"  policies          {_flat(self.policies)}")
        lines.append(f"  uncertainty       {self.bootstrap}")
        return "\n".join(lines)

    def bibtex(self) -> str:
        """BibTeX for the harness, each RICORD collection of the task, and the RICORD paper."""
        revision = f", git revision {self.git_revision}" if self.git_revision else ""
        entries = [
            "@misc{ricord_bench,\n"
            "  title = {ricord-bench: a reproducible evaluation harness for the {RSNA} {MIDRC-RICORD} "
            "{COVID-19} collections},\n"
            f"  howpublished = {{Software, version {self.harness_version}}},\n"
            f"  note = {{task {self.task} (spec sha256 {self.task_sha256}), split {self.split_name} "
            f"(sha256 {self.split_sha256}){revision}}}\n}}"
        ]
        for collection in self.collections:
            title, year = DATA_SOURCES[collection].title, DATA_SOURCES[collection].year
            key = collection.lower().replace("-", "_")
            entries.append(
                f"@misc{{{key},\n"
                f"  author = {{{_RICORD_AUTHORS}}},\n"
                "  title = {Medical Imaging Data Resource Center ({MIDRC}) - {RSNA} International {COVID} "
                f"Open Research Database ({{RICORD}}) {title} ({{{collection}}})}},\n"
                f"  year = {{{year}}},\n"
                "  publisher = {The Cancer Imaging Archive},\n"
                f"  doi = {{{COLLECTION_DOIS[collection]}}}\n}}"
            )
        entries.append(
            "@article{tsai2021ricord,\n"
            f"  author = {{{_RICORD_AUTHORS}}},\n"
            "  title = {The {RSNA} International {COVID-19} Open Radiology Database ({RICORD})},\n"
            "  journal = {Radiology},\n  volume = {299},\n  number = {1},\n  pages = {E204--E213},\n"
            "  year = {2021},\n  doi = {10.1148/radiol.2021203957}\n}"
        )
        return "\n\n".join(entries)


def cite_split(spec: TaskSpec, name: str, split: str | None = None, *,
               directory: Path | None = None) -> Citation:
    """The citation of task ``spec`` on the pinned split ``name`` (optionally one part of it), this harness.

    Raises
    ------
    SplitError
        When ``<task>/splits/<name>.json`` is missing or fails its checks.
    """
    pinned = load_split(spec.id, name, directory=directory)
    running = harness()
    return _citation(spec, pinned.name, split, pinned.sha256, running["version"], running["git_revision"])


def cite_board(spec: TaskSpec, name: str, split: str | None, split_sha256: str) -> Citation:
    """The citation of task ``spec`` on the split ``name`` with hash ``split_sha256``, this harness.

    For a board built from stored runs: the split is named by the hash the runs recorded, so
    the pinned split file need not be at hand (it may have been pinned on another machine).
    """
    running = harness()
    return _citation(spec, name, split, split_sha256, running["version"], running["git_revision"])


def data_sources(spec: TaskSpec) -> tuple[DataSource, ...]:
    """The data source of every RICORD collection task ``spec`` draws on, in the task's order."""
    return tuple(DATA_SOURCES[name] for name in spec.collections if name in DATA_SOURCES)


def cite_receipt(receipt: Mapping[str, Any], spec: TaskSpec) -> Citation:
    """The citation of a stored result: its split and task hashes and the harness that scored it.

    ``spec`` gives the metric definitions; when its sha256 differs from the receipt's, the
    receipt's hash is cited (the number was computed under that spec).
    """
    scored_by = receipt.get("harness", {})
    citation = _citation(spec, receipt["split"]["name"], receipt["split"]["split"],
                         receipt["split"]["sha256"],
                         str(scored_by.get("version", "unknown")), scored_by.get("git_revision"))
    return replace(citation, task_sha256=receipt["task"]["sha256"], run_id=receipt.get("run_id"))


def cite_result(path: str | os.PathLike, *, directory: Path | None = None) -> Citation:
    """The citation of the stored result in ``path`` (the folder holding ``receipt.json``).

    The primary metric's value and interval from ``scores.json`` are part of the block.

    Raises
    ------
    SplitError
        No readable ``receipt.json`` in ``path`` (e.g. a ``bench run`` folder not scored yet).
    """
    folder = Path(path)
    try:
        receipt = json.loads((folder / "receipt.json").read_text(encoding="utf-8"))
        task_id = receipt["task"]["id"]
        missing = [key for key in ("name", "split", "sha256") if key not in receipt["split"]]
        if missing or "sha256" not in receipt["task"]:
            raise KeyError(", ".join(missing) or "task.sha256")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SplitError(
            f"{folder}: no readable receipt.json with split and task hashes "
            f"({type(error).__name__}: {error}). "
            "Cite a scored result (results/<task>/.../<run_id>, written by `bench score`), or a task and "
            "split with --task and --name."
        ) from error
    citation = cite_receipt(receipt, load_task(task_id, directory=directory))
    try:
        scores = json.loads((folder / "scores.json").read_text(encoding="utf-8"))
        entry = scores["metrics"][scores["primary_metric"]]
    except (OSError, ValueError, KeyError, TypeError):
        return citation
    interval = ""
    if isinstance(entry.get("ci_low"), int | float) and isinstance(entry.get("ci_high"), int | float):
        interval = f" [{entry['ci_low']:.4g}, {entry['ci_high']:.4g}]"
    value = entry.get("value")
    text = f"{scores['primary_metric']} = {value:.4g}{interval}" if isinstance(value, int | float) else None
    return replace(citation, result=text)


def metric_definitions(spec: TaskSpec) -> tuple[tuple[str, str], ...]:
    """``(metric key, definition)`` for every metric the task reports, with the task's options."""
    tolerance = spec.metric_options.get("tolerance_mm")
    definitions = []
    for key in spec.metric_keys:
        name = key.split(".")[-1]
        text = METRICS[name].description
        if name in ("nsd", "nsd_area") and tolerance is not None:
            text += f" (tolerance_mm = {tolerance:g})"
        if name in ("sensitivity", "specificity"):
            head = next(h for h in spec.heads if key.startswith(f"{h.name}."))
            text += f" (threshold {head.threshold:g} on P({head.positive}))"
        definitions.append((key, f"{text}; {METRICS[name].direction or 'descriptive'}"
                                 f"{' is better' if METRICS[name].direction else ''}"))
    return tuple(definitions)


def _citation(spec: TaskSpec, name: str, split: str | None, split_sha256: str, version: str,
              revision: str | None) -> Citation:
    b = spec.bootstrap
    cluster = f", clustered by {b.cluster}" if b.cluster else ""
    return Citation(
        task=spec.id, task_version=spec.version, task_sha256=spec.sha256, split_name=name, split=split,
        split_sha256=split_sha256, harness_version=version, git_revision=revision,
        collections=tuple(spec.collections), metrics=metric_definitions(spec),
        primary_metric=spec.primary_key,
        policies=spec.policies.model_dump(mode="json"),
        bootstrap=f"{round(b.confidence * 100)}% percentile bootstrap, {b.resamples} resamples{cluster}, "
                  f"seed {b.seed}",
    )


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> str:
    parts = []
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            parts.append(_flat(value, f"{prefix}{key}."))
        else:
            parts.append(f"{prefix}{key}={value}")
    return ", ".join(parts)
