"""ricord-bench: a reproducible evaluation harness for the RSNA MIDRC-RICORD collections.

The public API: one entry point per pipeline stage, importable from the top level. Each name
is imported only when first used (PEP 562 module ``__getattr__``), so ``import bench`` and
``bench --help`` do not load numpy, pandas or the Docker SDK. The stages, in order::

    synthesize / index_download / read_manifest     data: a download -> manifest
    load_task / list_tasks / user_tasks_dir         the task specs and where they live
    BUILTIN_TASKS / BUILTIN_SUBMISSIONS             the tasks and reference submissions shipped
    pin_split / load_split / verify_split           splits: pinned, citable, checkable
    prepare_split / read_reference                  prepare: container inputs + the reference
    load_submission / run_submission                run: Docker or a local process
    score_run / score_and_store / score_case        score: a run, or one pair of masks
    score_predictions                               score predictions made anywhere (notebooks)
    Store / build_leaderboard                       the results store and the static site
    evaluate / rescore_store / run_demo             the pipeline in one call

Every failure a user can cause raises a :class:`BenchError` with a message saying what to do.
docs/api.md walks through the whole pipeline. A quick look, using the built-in tasks:

>>> import bench
>>> bench.list_tasks()
['ricord-1a-lesion-seg', 'ricord-1c-cxr-appearance', 'ricord-ct-covid-cls']
>>> spec = bench.load_task("ricord-1a-lesion-seg")
>>> spec.kind, spec.primary_key
('segmentation', 'dice')
>>> split = bench.load_split("ricord-1a-lesion-seg", "synthetic")
>>> len(split.case_ids("test"))
5
>>> import numpy as np
>>> ref = np.zeros((8, 8, 8), dtype=bool)
>>> ref[2:6, 2:6, 2:6] = True
>>> pred = np.zeros_like(ref)
>>> pred[2:6, 2:6, 3:6] = True
>>> scores = bench.score_case(pred, ref, spacing_mm=(1.0, 1.0, 1.0))
>>> round(scores.dice, 4)  # 2 * 48 / (48 + 64)
0.8571
"""

import importlib

_EXPORTS = {
    "synthesize": "bench.data.synth",
    "index_download": "bench.data.ricord",
    "read_manifest": "bench.data.manifest",
    "BUILTIN_TASKS": "bench.tasks",
    "TaskSpec": "bench.tasks",
    "load_task": "bench.tasks",
    "list_tasks": "bench.tasks",
    "user_tasks_dir": "bench.tasks",
    "PinnedSplit": "bench.splits.pinned",
    "load_split": "bench.splits.pinned",
    "read_split": "bench.splits.pinned",
    "pin_split": "bench.splits.pin",
    "verify_split": "bench.splits.verify",
    "prepare_split": "bench.prepare.materialize",
    "read_reference": "bench.prepare.reference",
    "load_submission": "bench.runners.submission",
    "run_submission": "bench.runners.run",
    "score_run": "bench.scoring.score",
    "score_and_store": "bench.scoring.score",
    "score_case": "bench.metrics.segmentation",
    "score_predictions": "bench.scoring.predictions",
    "Store": "bench.store",
    "build_leaderboard": "bench.leaderboard.site",
    "evaluate": "bench.pipeline.evaluate",
    "rescore_store": "bench.pipeline.rescore",
    "run_demo": "bench.pipeline.demo",
    "BUILTIN_SUBMISSIONS": "bench.pipeline.demo",
    "BenchError": "bench.errors",
}
"""Public name -> the module that defines it (the one table of the top-level API)."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import a public name on first use and keep it, so later lookups are plain attributes.

    ``__version__`` too: reading the installed metadata imports ``importlib.metadata``, which
    costs more than the rest of ``import bench``.
    """
    if name == "__version__":
        value = _installed_version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    globals()[name] = value
    return value


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ricord-bench")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.1.0+src"


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | {"__version__"})
