"""A reporting appendix generated from the task spec, its pinned split and the stored receipts.

Why: a challenge paper has to answer the BIAS checklist (Maier-Hein et al., Nature
Communications 2020) and a model paper CLAIM 2024 (Tejani et al., Radiology: AI 2024) and
TRIPOD+AI (Collins et al., BMJ 2024). Most of what their evaluation items ask is already
declared in ``task.yaml``, the split file and the receipts; copying it by hand is where papers
go wrong. :func:`build_appendix` fills every item the harness knows and marks the rest
**missing**, saying what the organizer must add. Items are named by their topic as the
checklists word them; CLAIM item numbers are those of the 2024 update.
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from bench.io import write_text
from bench.metrics.registry import METRICS
from bench.splits.citation import COLLECTION_DOIS, LICENCE, TCIA, cite_split
from bench.splits.pinned import PinnedSplit, load_split
from bench.store import Store, StoredRun
from bench.tasks import TaskSpec
from bench.trees import claim_files, record_files


@dataclass(frozen=True)
class Item:
    """One checklist item: filled from the harness's records, or missing with what to add."""

    checklist: str
    topic: str
    text: str
    filled: bool


@dataclass(frozen=True)
class Appendix:
    """Every item of the three checklists that concern evaluation, for one task."""

    task: str
    title: str
    items: tuple[Item, ...]

    @property
    def missing(self) -> tuple[Item, ...]:
        return tuple(item for item in self.items if not item.filled)

    def markdown(self) -> str:
        """The appendix as Markdown: one section per checklist, a line per item."""
        lines = [f"# Reporting appendix: {self.title} (`{self.task}`)", "",
                 f"{len(self.items) - len(self.missing)} of {len(self.items)} items filled from the "
                 "harness's records; the others are marked MISSING with what to add.", ""]
        for checklist in dict.fromkeys(item.checklist for item in self.items):
            lines += [f"## {checklist}", ""]
            for item in (i for i in self.items if i.checklist == checklist):
                mark = "" if item.filled else "**MISSING**: "
                lines.append(f"- **{item.topic}**: {mark}{item.text}")
            lines.append("")
        return "\n".join(lines)

    def html(self) -> str:
        """The appendix as a standalone HTML page (every value escaped)."""
        env = jinja2.Environment(loader=jinja2.PackageLoader("bench.leaderboard", "templates"),
                                 autoescape=True, undefined=jinja2.StrictUndefined)
        checklists = list(dict.fromkeys(item.checklist for item in self.items))
        return env.get_template("appendix.html").render(appendix=self, checklists=checklists)


def _missing(checklist: str, topic: str, what: str) -> Item:
    return Item(checklist, topic, what, False)


def _data_sources(spec: TaskSpec) -> str:
    parts = [f"{name} (doi:{COLLECTION_DOIS[name]})" if name in COLLECTION_DOIS else name
             for name in spec.collections]
    return (f"{', '.join(parts)}, {spec.modality}, from The Cancer Imaging Archive ({TCIA}); licence "
            f"{LICENCE} (TCIA data usage policy for the MIDRC-RICORD collections).")


def _reference_standard(spec: TaskSpec) -> str:
    reading = spec.reading
    if spec.kind == "segmentation":
        target = spec.target
        text = (f"masks rasterized from the MD.ai polygon labels {', '.join(target.labels)}, readers "
                f"combined by {target.readers}")
    else:
        text = "study labels " + "; ".join(f"{h.name}: {', '.join(h.classes)} (manifest column {h.column})"
                                           for h in spec.heads)
    return (f"{text}. Reading protocol: one vote per reader label group (its latest label); adjudication "
            f"groups {list(reading.adjudication_groups)} decide where they label; groups "
            f"{list(reading.non_reader_groups)} are no readers; ties broken by {reading.tie_rule!r}; a study "
            f"marked {reading.invalid_label!r} by the adjudicator or a majority of readers is left out.")


def _split(spec: TaskSpec, split: PinnedSplit) -> str:
    counts = {part: len(split.cases(part)) for part in ("train", "validation", "test")}
    strategy = spec.split
    return (f"procedure {split.strategy.get('procedure')} "
            f"(patient-grouped by {strategy.group_by}, stratified "
            f"by {', '.join(strategy.stratify)}, seed {strategy.seed}, fractions "
            f"{dict(strategy.fractions)}); pinned as {split.name!r}, sha256 {split.sha256}; cases "
            f"{counts}.")


def _metrics(spec: TaskSpec) -> str:
    names = spec.metrics or [m for head in spec.heads for m in head.metrics]
    described = "; ".join(f"{name}: {METRICS[name].description}" for name in dict.fromkeys(names))
    options = f" Options {dict(spec.metric_options)}." if spec.metric_options else ""
    return f"primary {spec.primary_metric}. {described}.{options} Formulas: docs/metrics.md."


def _policies(spec: TaskSpec) -> str:
    policies = spec.policies
    return (f"missing prediction: {policies.missing_prediction}; empty masks: both empty "
            f"{policies.empty_mask.both_empty}, one empty distance {policies.empty_mask.one_empty_distance}. "
            "Every case stays in the per-case table with its status and reason.")


def _uncertainty(spec: TaskSpec) -> str:
    boot = spec.bootstrap
    return (f"percentile bootstrap, {boot.resamples} resamples, seed {boot.seed}, {boot.confidence:.0%} "
            f"intervals, clustered by {boot.cluster or 'case'}, stratified: {boot.stratify}; rank intervals "
            "and tied groups on the same resamples; minimum detectable difference per board at 80% power "
            "(bench.ranking.power); definition sensitivity with Kendall's tau (bench.ranking.sensitivity).")


def _ranking(spec: TaskSpec) -> str:
    ranking = spec.ranking
    return (f"{ranking.method} by the {ranking.aggregate} (alpha {ranking.alpha}); entries whose rank "
            "intervals overlap the leader's are one tied group.")


def _subgroups(spec: TaskSpec) -> str:
    sub = spec.subgroups
    return (f"{', '.join(sub.attributes)} (age bands {list(sub.age_band_edges)}), each with a bootstrap "
            f"interval; groups under {sub.min_size} cases are shown without a score.")


def _entries(runs: Iterable[StoredRun]) -> tuple[str, bool]:
    rows = []
    for run in runs:
        receipt = run.receipt
        image = receipt.get("image") or {}
        how = image.get("digest") or image.get("id") or " ".join(receipt.get("command") or []) or receipt.get(
            "runner", "")
        shown_name = receipt.get("submission", {}).get("name") or run.submission
        rows.append(f"{shown_name} ({receipt.get('split', {}).get('split')}, harness "
                    f"{receipt.get('harness', {}).get('version')}, {how})")
    if not rows:
        return "no stored result yet: run `bench evaluate` and build the appendix with --results.", False
    return "; ".join(rows) + ".", True


def build_appendix(spec: TaskSpec, *, name: str, results: str | os.PathLike | None = None,
                   directory: Path | None = None) -> Appendix:
    """The appendix of ``spec`` with its pinned split ``name`` and, if given, the store's receipts."""
    split = load_split(spec.id, name, directory=directory)
    runs = [run for run in Store(results).runs(spec.id)] if results is not None else []
    entries, have_entries = _entries(runs)
    citation = cite_split(spec, name, directory=directory)
    bias, claim, tripod = "BIAS (Maier-Hein et al. 2020)", "CLAIM 2024", "TRIPOD+AI (2024)"
    items = [
        Item(bias, "Data sources", _data_sources(spec), True),
        Item(bias, "Reference annotation and reader protocol", _reference_standard(spec), True),
        Item(bias, "Data split and its hash", _split(spec, split), True),
        Item(bias, "Metrics, with formulas and options", _metrics(spec), True),
        Item(bias, "Missing data and empty masks", _policies(spec), True),
        Item(bias, "Ranking method", _ranking(spec), True),
        Item(bias, "Uncertainty and robustness of the ranking", _uncertainty(spec), True),
        Item(bias, "Subgroups", _subgroups(spec), True),
        Item(bias, "Submissions and image digests", entries, have_entries),
        Item(bias, "Harness and task spec by hash",
             f"ricord-bench {citation.harness_version} "
             f"(git {citation.git_revision or 'not a checkout'}); task "
             f"spec sha256 {spec.sha256}.", True),
        _missing(bias, "Organizers, funding and conflicts of interest",
                 "the organizing team, funders and how conflicts were handled."),
        _missing(bias, "Annotator qualifications and training",
                 "who the RICORD readers were (RICORD: RSNA-recruited radiologists) and their instructions."),
        _missing(bias, "Challenge schedule and submission rules",
                 "phases, dates and submission limits (the challenge definition, when used)."),
        Item(claim, "Data sources (item 7)", _data_sources(spec), True),
        Item(claim, "Handling of missing data (item 13)", _policies(spec), True),
        Item(claim, "Definition of ground truth (item 14)", _reference_standard(spec), True),
        _missing(claim, "Source and qualifications of annotators (item 16)",
                 "reader qualifications and preparation."),
        _missing(claim, "Inter- and intra-rater variability (item 18)",
                 "reader agreement (per-reader labels are in the manifest's reader table)."),
        Item(claim, "Data partitions (item 20)", _split(spec, split), True),
        Item(claim, "Performance metrics", _metrics(spec), True),
        Item(claim, "Statistical measures of significance and uncertainty", _uncertainty(spec), True),
        Item(claim, "Robustness or sensitivity analysis",
             "every board re-ranked under each defensible metric definition and policy (Kendall's tau "
             "and every rank flip on the board).", True),
        _missing(claim, "Failure analysis", "a look at the cases each model gets wrong."),
        _missing(claim, "External validation", "whether any test data come from sites outside training."),
        Item(tripod, "Outcome and its assessment", _reference_standard(spec), True),
        Item(tripod, "Sample size", _split(spec, split), True),
        Item(tripod, "Missing data", _policies(spec), True),
        Item(tripod, "Model performance measures",
             _metrics(spec) + (" Calibration: slope and intercept (logistic recalibration) with a "
                               "reliability diagram for probability outputs." if spec.kind == "classification"
                               else ""), True),
        Item(tripod, "Fairness: performance in subgroups", _subgroups(spec), True),
        _missing(tripod, "Intended use and clinical setting", "the clinical question and target population."),
    ]
    return Appendix(spec.id, spec.title, tuple(items))


def write_appendix(appendix: Appendix, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``appendix.md`` and ``appendix.html`` into ``out`` (atomically, one file at a time).

    An existing appendix is replaced only when the harness wrote it (:func:`bench.trees.claim_files`).
    """
    out = Path(out)
    markdown, html = out / "appendix.md", out / "appendix.html"
    claim_files([markdown, html])
    out.mkdir(parents=True, exist_ok=True)
    write_text(markdown, appendix.markdown() + "\n")
    write_text(html, appendix.html())
    record_files([markdown, html])
    return markdown, html
