"""The synthetic collection (seed 0, small) indexed and pinned once per test session.

Shared by the splits, verify and prepare tests; each module wraps :func:`synthetic` in a
session fixture. Building it takes a few tens of seconds, so the tests using it are ``slow``.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.data.ricord import index_download
from bench.data.synth import synthesize
from bench.splits.pin import pin_split
from bench.splits.pinned import PinnedSplit
from bench.tasks import BUILTIN_TASKS, list_tasks, load_task

TASKS = ("ricord-1a-lesion-seg", "ricord-ct-covid-cls", "ricord-1c-cxr-appearance")


@dataclass(frozen=True)
class Synthetic:
    root: Path
    manifest: Path
    tasks: Path
    splits: dict[str, PinnedSplit]


_built: dict[str, Synthetic] = {}


def copy_task_specs(target: Path) -> Path:
    """The built-in task.yaml files, without their pinned splits, under ``target``."""
    for task_id in list_tasks(BUILTIN_TASKS):
        (target / task_id).mkdir(parents=True)
        shutil.copyfile(BUILTIN_TASKS / task_id / "task.yaml", target / task_id / "task.yaml")
    return target


def synthetic(tmp_path_factory) -> Synthetic:
    """Synthesize seed 0, index it as docs/splits.md does, pin every task as ``synthetic``."""
    if "seed0" not in _built:
        base = tmp_path_factory.mktemp("splits-synthetic")
        root = base / "synth"
        report = synthesize(root, seed=0)
        clinical = sorted(p for p in report.clinical if p.suffix == ".csv")
        index = index_download(root, annotations=list(report.annotations), clinical=clinical)
        manifest = root / "manifest.csv"
        index.write(manifest)  # the manifest, its reader table and its report, as `bench data index` does
        tasks = copy_task_specs(base / "tasks")
        splits = {task_id: pin_split(load_task(task_id, directory=tasks), manifest, root=root,
                                     name="synthetic", directory=tasks) for task_id in TASKS}
        _built["seed0"] = Synthetic(root=root, manifest=manifest, tasks=tasks, splits=splits)
    return _built["seed0"]
