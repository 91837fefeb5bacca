"""A results store made by the real pipeline, for the case gallery: synthesize, index, prepare, run, score.

The default synthetic collection (seed 0, small, the one the built-in ``synthetic`` splits were
pinned from), evaluated with the process runner: on the 1a validation split threshold-seg and
constant-prior, on the 1a test split threshold-seg (hidden per-case data), and cxr-intensity on
the 1c validation split. The prepared splits and run folders stay where ``bench evaluate`` puts
them (``<work>/prepared``, ``<work>/runs``), as the receipts record.
"""

from dataclasses import dataclass
from pathlib import Path

from bench.data.manifest import write_manifest
from bench.data.ricord import index_download
from bench.data.synth import synthesize
from bench.pipeline.demo import BUILTIN_SUBMISSIONS
from bench.pipeline.evaluate import evaluate
from bench.store import StoredRun
from bench.tasks import load_task

SEG = "ricord-1a-lesion-seg"
CXR = "ricord-1c-cxr-appearance"
RUNS = [(SEG, "threshold-seg", "validation"), (SEG, "constant-prior", "validation"),
        (SEG, "threshold-seg", "test"), (CXR, "cxr-intensity", "validation")]


@dataclass(frozen=True)
class RealStore:
    results: Path
    work: Path
    runs: dict[tuple[str, str, str], StoredRun]
    prepared: dict[tuple[str, str], Path]
    """(task, split) -> the prepared split folder (``input/`` and ``reference/``)."""


def real_store(root: Path) -> RealStore:
    data = root / "data"
    synth = synthesize(data, seed=0, size="small")
    report = index_download(data, annotations=synth.annotations, clinical=synth.clinical)
    write_manifest(report.manifest, data / "manifest.csv")
    runs, prepared = {}, {}
    for task, submission, split in RUNS:
        done = evaluate(BUILTIN_SUBMISSIONS / submission, load_task(task), root=data, split=split,
                        name="synthetic", results=root / "results", runner="process", work=root / "work",
                        workers=1)
        runs[(task, submission, split)] = done.stored
        prepared[(task, split)] = done.prepared_dir
    return RealStore(root / "results", root / "work", runs, prepared)
