"""A Grand Challenge algorithm container, unchanged, on the real Docker engine: threshold-seg packaged
the Grand Challenge way (``submission-gc.yaml``: reads ``/input/images/ct-image/<uuid>.mha``, writes
``/output/images/covid-19-lesion-segmentation/output.mha``) scores exactly as the native threshold-seg
on the same prepared cases of the synthetic collection; and a container that fails on some cases
loses only those."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from bench import BUILTIN_SUBMISSIONS
from bench.data.manifest import write_manifest
from bench.data.ricord import index_download
from bench.data.synth import synthesize
from bench.pipeline.evaluate import prepared_split
from bench.runners import read_run, run_submission
from bench.runners.simpleitk_image import SIMPLEITK_IMAGE, build_simpleitk_image
from bench.scoring.score import score_run
from bench.splits.pin import pin_split
from bench.tasks import BUILTIN_TASKS, load_task

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SEG = "ricord-1a-lesion-seg"
THRESHOLD_SEG = BUILTIN_SUBMISSIONS / "threshold-seg"


@pytest.fixture(scope="module")
def simpleitk_image(client, base_image):
    """The base image plus the harness's SimpleITK (built once, no network), for FROM lines."""
    return build_simpleitk_image(client=client)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The test part of a split pinned on the synthetic collection, prepared: (folder, tasks dir)."""
    base = tmp_path_factory.mktemp("gc-synthetic")
    root = base / "data"
    synth = synthesize(root, seed=0, size="small")
    report = index_download(root, annotations=synth.annotations, clinical=synth.clinical)
    write_manifest(report.manifest, root / "manifest.csv")
    tasks = base / "tasks"
    shutil.copytree(BUILTIN_TASKS, tasks)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCH_TASKS_DIR", str(tasks))
        spec = load_task(SEG)
        pin_split(spec, root / "manifest.csv", root=root, name="gc-test", annotations=list(synth.annotations))
        folder, _ = prepared_split(spec, root=root, name="gc-test", split="test", work=base / "work")
    return folder, tasks, root, base / "work"


def test_a_grand_challenge_container_scores_as_the_native_one(simpleitk_image, prepared, tmp_path,
                                                               monkeypatch):
    folder, tasks, _, _ = prepared
    monkeypatch.setenv("BENCH_TASKS_DIR", str(tasks))
    spec = load_task(SEG)
    native = run_submission(THRESHOLD_SEG, spec, folder / "input", tmp_path / "native", runner="docker")
    grand = run_submission(THRESHOLD_SEG / "submission-gc.yaml", spec, folder / "input", tmp_path / "gc",
                           runner="docker")
    cases = [case.case_id for case in native.cases]
    assert len(cases) >= 2
    assert native.counts["ok"] == grand.counts["ok"] == len(cases), (native.cases, grand.cases)
    assert grand.error is None and grand.exit_code == 0 and grand.isolated
    assert "one such container per case" in grand.isolation

    body = json.loads((tmp_path / "gc" / "run.json").read_text())
    assert body["interface"] == "grand-challenge" and read_run(tmp_path / "gc") == grand
    assert json.loads((tmp_path / "native" / "run.json").read_text())["interface"] == "native"
    record = body["grand_challenge"]
    assert [s["slug"] for s in record["inputs"]] == ["ct-image"]
    assert [s["slug"] for s in record["outputs"]] == ["covid-19-lesion-segmentation"]
    assert [job["case_id"] for job in record["cases"]] == sorted(cases)
    assert len({job["uuid"] for job in record["cases"]}) == len(cases)
    assert all(job["exit_code"] == 0 and job["error"] is None for job in record["cases"])
    assert sum(job["timeout_s"] <= spec.limits.timeout_s for job in record["cases"]) == len(cases)
    assert grand.image["id"] != native.image["id"]

    for case_id in cases:  # the same voxels on the same grid, so every metric agrees
        ours = nib.load(native.mask_path(case_id))
        theirs = nib.load(grand.mask_path(case_id))
        assert np.array_equal(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))
        assert np.allclose(ours.affine, theirs.affine, atol=1e-4)

    native_scores = score_run(spec, native.run_dir, folder / "reference", workers=1)
    gc_scores = score_run(spec, grand.run_dir, folder / "reference", workers=1)
    columns = [c for c in native_scores.per_case.columns if c in ("case_id", "status", *spec.metrics)]
    assert {"dice", "hd95", "nsd"} <= set(columns)
    left = native_scores.per_case[columns].set_index("case_id").sort_index()
    right = gc_scores.per_case[columns].set_index("case_id").sort_index()
    assert (left["status"] == "ok").all()
    assert left.equals(right), (left, right)
    assert native_scores.scores["metrics"] == gc_scores.scores["metrics"]


def test_a_grand_challenge_tarball_is_evaluated_with_the_interface_given(client, simpleitk_image, prepared,
                                                                       tmp_path, monkeypatch):
    """As an organizer receives it: `docker save` output, no submission.yaml; the interface is given."""
    from bench.pipeline.evaluate import evaluate
    from bench.runners.submission import load_submission

    folder, tasks, root, work = prepared
    monkeypatch.setenv("BENCH_TASKS_DIR", str(tasks))
    spec = load_task(SEG)
    built = run_submission(THRESHOLD_SEG / "submission-gc.yaml", spec, folder / "input", tmp_path / "build",
                           runner="docker")
    tarball = tmp_path / "algorithm.tar"
    with open(tarball, "wb") as handle:
        for chunk in client.images.get(built.image["id"]).save(named=False):
            handle.write(chunk)
    common = {"root": root, "name": "gc-test", "split": "test", "results": tmp_path / "results", "work": work,
              "runner": "docker", "workers": 1}
    grand = evaluate(tarball, spec, team="GC team", entry="algorithm", interface="grand-challenge", **common)
    native = evaluate(THRESHOLD_SEG, spec, **common)
    assert json.loads((grand.run_dir / "run.json").read_text())["interface"] == "grand-challenge"
    columns = [c for c in native.stored.per_case.columns if c in ("case_id", "status", *spec.metrics)]
    assert (native.stored.per_case["status"] == "ok").all()
    assert native.stored.per_case[columns].equals(grand.stored.per_case[columns])
    assert load_submission(tarball, team="t", entry="e").interface == "native"  # never guessed


FLAKY = '''
import sys, time
from pathlib import Path
import SimpleITK as sitk
(path,) = Path("/input/images/ct-image").glob("*.mha")
image = sitk.ReadImage(str(path))
total = int(sitk.GetArrayFromImage(image).astype("int64").sum())
behaviour = dict(item.split("=") for item in sys.argv[1:]).get(str(total), "empty")
print(total, behaviour, flush=True)
if behaviour == "crash":
    sys.exit(3)
if behaviour == "hang":
    time.sleep(3600)
if behaviour == "garbage":
    Path("/output/images/covid-19-lesion-segmentation").mkdir(parents=True)
    Path("/output/images/covid-19-lesion-segmentation/a.mha").write_text("not an image")
    sys.exit(0)
mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
mask.CopyInformation(image)
Path("/output/images/covid-19-lesion-segmentation").mkdir(parents=True)
sitk.WriteImage(mask, "/output/images/covid-19-lesion-segmentation/empty.mha")
'''


def test_a_failing_case_is_marked_and_the_others_carry_on(simpleitk_image, tmp_path):
    """One case crashes, one hangs past its share of the time, one writes garbage; the last is fine."""
    from tests.helpers.runner_inputs import write_prepared

    inputs = write_prepared(tmp_path / "prepared", SEG, n_cases=4)
    cases = json.loads((inputs / "cases.json").read_text())["cases"]
    totals = [int(np.asanyarray(nib.load(inputs / c["image"]).dataobj).astype(np.int64).sum()) for c in cases]
    assert len(set(totals)) == 4
    behaviours = dict(zip(totals[:3], ("crash", "hang", "garbage"), strict=True))
    folder = tmp_path / "flaky"
    folder.mkdir()
    (folder / "inference.py").write_text(FLAKY)
    arguments = ", ".join(json.dumps(f"{total}={what}") for total, what in behaviours.items())
    (folder / "Dockerfile").write_text(
        f"FROM {SIMPLEITK_IMAGE}\nCOPY inference.py /opt/algorithm/\n"
        f'ENTRYPOINT ["python3", "/opt/algorithm/inference.py", {arguments}]\n'
    )
    (folder / "submission.yaml").write_text(
        "name: flaky\nteam: tests\ninterface: grand-challenge\ndocker: {context: ., dockerfile: Dockerfile}\n"
    )
    result = run_submission(folder, load_task(SEG), inputs, tmp_path / "run", runner="docker",
                            limits={"timeout_s": 60})
    status = {case.case_id: case for case in result.cases}
    assert status["CASE-000"].status == "missing" and "exited with code 3" in status["CASE-000"].reason
    assert status["CASE-001"].status == "missing" and "timeout" in status["CASE-001"].reason
    assert status["CASE-002"].status == "malformed" and "a.mha" in status["CASE-002"].reason
    assert status["CASE-003"].status == "ok", status["CASE-003"]
    assert result.timed_out and result.exit_code == 3
    assert result.error.startswith("2 of 4 cases failed (first: CASE-000")
    record = json.loads((tmp_path / "run/run.json").read_text())["grand_challenge"]
    jobs = {job["case_id"]: job for job in record["cases"]}
    assert jobs["CASE-000"]["timeout_s"] in (14, 15)  # a fair share: 60 s over 4 cases
    # what the crash left over is shared by the three cases after it; the hang uses its share up
    assert jobs["CASE-001"]["timed_out"] and 15 <= jobs["CASE-001"]["timeout_s"] <= 20
    assert jobs["CASE-003"]["timeout_s"] >= 14
    assert jobs["CASE-003"]["exit_code"] == 0
    stdout = (tmp_path / "run/logs/stdout.txt").read_text()
    assert all(f"=== case CASE-00{i}" in stdout for i in range(4)) and f"{totals[3]} empty" in stdout
