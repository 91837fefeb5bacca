"""The Grand Challenge layout and conversion: NIfTI (RAS) to .mha (LPS) and back with real SimpleITK
files, inputs.json, the sockets per task, the conversion of outputs judged by the one collection rule,
the per-case time shares; and the process runner running the GC threshold-seg in bubblewrap."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from bench import BUILTIN_SUBMISSIONS
from bench.errors import RunnerError, SubmissionError
from bench.runners import run_submission
from bench.runners.collect import Budget, collect_outputs
from bench.runners.grandchallenge import convert_case, lay_out_case, run_cases, sockets
from bench.runners.mha import MhaInvalid, itk_to_nifti, nifti_affine, nifti_to_itk, read_mha_bytes
from bench.runners.process import bwrap_path
from bench.runners.result import ExecOutcome, describe_end
from bench.runners.staging import read_inputs
from bench.runners.submission import load_submission
from bench.tasks import load_task
from bench.trees import remove_tree
from tests.helpers.runner_fixtures import make_adversaries
from tests.helpers.runner_inputs import write_prepared

SEG, CLS, CXR = "ricord-1a-lesion-seg", "ricord-ct-covid-cls", "ricord-1c-cxr-appearance"
THRESHOLD_SEG = BUILTIN_SUBMISSIONS / "threshold-seg"


def _oblique_affine() -> np.ndarray:
    """A rotated, axis-flipped, anisotropic grid: every sign and axis of the RAS/LPS conversion matters."""
    angle = 0.4
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-0.7, 0.9, 2.5])
    affine[:3, 3] = [-187.65, 123.45, -300.5]
    return affine


def _nifti(path, values, affine):
    nib.save(nib.Nifti1Image(values, affine), path)
    return nib.load(path)


# --- orientation --------------------------------------------------------------------------------


def test_nifti_to_itk_agrees_with_simpleitks_own_nifti_reader(tmp_path):
    values = np.random.default_rng(0).integers(-1000, 400, (7, 6, 5)).astype(np.int16)
    stored = _nifti(tmp_path / "ct.nii.gz", values, _oblique_affine())
    ours = nifti_to_itk(tmp_path / "ct.nii.gz")
    theirs = sitk.ReadImage(str(tmp_path / "ct.nii.gz"))
    assert ours.GetSize() == theirs.GetSize() == (7, 6, 5)
    assert np.allclose(ours.GetOrigin(), theirs.GetOrigin(), atol=1e-5)
    assert np.allclose(ours.GetSpacing(), theirs.GetSpacing(), atol=1e-6)
    assert np.allclose(ours.GetDirection(), theirs.GetDirection(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs))
    # the same voxel lands on the same point: nibabel's RAS point with x and y negated is ITK's LPS one
    for index in ((0, 0, 0), (6, 0, 0), (1, 4, 3), (6, 5, 4)):
        ras = stored.affine @ [*index, 1]
        assert np.allclose(ours.TransformIndexToPhysicalPoint(index), [-ras[0], -ras[1], ras[2]], atol=1e-4)
        assert ours.GetPixel(index) == values[index]


def test_a_mask_written_on_the_mha_grid_comes_back_on_the_nifti_grid(tmp_path):
    stored = _nifti(tmp_path / "ct.nii.gz", np.zeros((7, 6, 5), np.int16), _oblique_affine())
    sitk.WriteImage(nifti_to_itk(tmp_path / "ct.nii.gz"), str(tmp_path / "ct.mha"))
    image = sitk.ReadImage(str(tmp_path / "ct.mha"))  # what a GC container does
    mask = np.zeros((5, 6, 7), np.uint8)  # SimpleITK's (z, y, x) order
    mask[1, 2, 3] = 1
    result = sitk.GetImageFromArray(mask)
    result.CopyInformation(image)
    sitk.WriteImage(result, str(tmp_path / "mask.mha"), useCompression=True)
    data = (tmp_path / "mask.mha").read_bytes()
    back = itk_to_nifti(read_mha_bytes(data, shape=(7, 6, 5), scratch=tmp_path))
    assert np.allclose(back.affine, stored.affine, atol=1e-6)
    voxels = np.asanyarray(back.dataobj)
    assert voxels.dtype == np.uint8 and voxels[3, 2, 1] == 1 and voxels.sum() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.mha", "ct.nii.gz", "mask.mha"]


def test_nifti_affine_inverts_the_geometry_in_2d():
    affine = np.diag([-0.2, -0.3, 1.0, 1.0])
    affine[:2, 3] = [10.0, -20.0]
    image = sitk.Image(4, 3, sitk.sitkFloat32)
    image.SetSpacing((0.2, 0.3))
    image.SetOrigin((-10.0, 20.0))
    image.SetDirection((1.0, 0.0, 0.0, 1.0))
    assert np.allclose(nifti_affine(image.GetSpacing(), image.GetOrigin(), image.GetDirection()), affine)


# --- reading what a submission wrote ------------------------------------------------------------


def _mha(tmp_path, size=(4, 3, 2)):
    image = sitk.Image(size, sitk.sitkUInt8)
    sitk.WriteImage(image, str(tmp_path / "m.mha"), useCompression=False)
    return (tmp_path / "m.mha").read_bytes()


def test_an_mha_pointing_at_another_file_is_never_read(tmp_path):
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"\x01" * 24)
    data = _mha(tmp_path)
    head, _, _ = data.partition(b"ElementDataFile = LOCAL\n")
    hostile = head + f"ElementDataFile = {secret}\n".encode()
    with pytest.raises(MhaInvalid, match="must be in the .mha itself"):
        read_mha_bytes(hostile, shape=(4, 3, 2), scratch=tmp_path)


@pytest.mark.parametrize(
    ("data", "shape", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n" * 10, (4, 3, 2), "not a MetaImage"),
        (None, (4, 3, 3), r"size \(4, 3, 2\) differs from the input image's \(4, 3, 3\)"),
    ],
    ids=["png", "wrong-size"],
)
def test_unreadable_or_wrong_grid_mha_is_refused_before_its_pixels(tmp_path, data, shape, reason):
    with pytest.raises(MhaInvalid, match=reason):
        read_mha_bytes(_mha(tmp_path) if data is None else data, shape=shape, scratch=tmp_path)


def test_a_truncated_mha_is_malformed_not_a_crash(tmp_path):
    with pytest.raises(MhaInvalid, match="SimpleITK cannot read it"):
        read_mha_bytes(_mha(tmp_path, size=(40, 30, 20))[:-100], shape=(40, 30, 20), scratch=tmp_path)


# --- layout and sockets -------------------------------------------------------------------------


def test_sockets_per_task():
    seg, cls, cxr = (sockets(load_task(t)) for t in (SEG, CLS, CXR))
    assert seg.input.relative_path == "images/ct-image"
    assert [s.relative_path for s in seg.outputs] == ["images/covid-19-lesion-segmentation"]
    assert [(s.slug, s.kind) for s in cls.outputs] == [("covid-probability", "Float")]
    assert cxr.input.slug == "chest-x-ray"
    assert [(s.relative_path, s.kind) for s in cxr.outputs] == [
        ("appearance-probabilities.json", "Anything"), ("severity-probabilities.json", "Anything")]


def test_a_case_is_laid_out_as_grand_challenge_does(tmp_path):
    inputs = write_prepared(tmp_path / "prepared", CXR, n_cases=1)
    case_uuid = str(uuid.uuid4())
    destination = tmp_path / "input"
    lay_out_case(sockets(load_task(CXR)).input, inputs / "images/CASE-000.nii.gz", destination, case_uuid)
    files = sorted(p.relative_to(destination).as_posix() for p in destination.rglob("*") if p.is_file())
    assert files == [f"images/chest-x-ray/{case_uuid}.mha", "inputs.json"]
    assert all(os.stat(p).st_mode & 0o777 in (0o644, 0o755) for p in destination.rglob("*"))
    values = json.loads((destination / "inputs.json").read_text())
    assert len(values) == 1 and values[0]["image"] == {"pk": case_uuid, "name": f"{case_uuid}.mha"}
    assert values[0]["interface"]["slug"] == "chest-x-ray" and values[0]["interface"]["super_kind"] == "Image"
    assert values[0]["value"] is None and values[0]["file"] is None
    image = sitk.ReadImage(str(destination / f"images/chest-x-ray/{case_uuid}.mha"))
    source = nib.load(inputs / "images/CASE-000.nii.gz")
    assert image.GetDimension() == 2 and image.GetSize() == source.shape
    assert np.array_equal(sitk.GetArrayFromImage(image).T, np.asanyarray(source.dataobj))


# --- conversion, then the one collection rule ---------------------------------------------------


def _collect(spec, inputs, outputs_by_case, tmp_path):
    """Convert each case's GC output folder, collect the converted outputs; {case: (status, reason)}.

    The entries each conversion rejected are put under the key ``"rejected"``."""
    prepared = read_inputs(inputs)
    converted, scratch = tmp_path / "converted", tmp_path / "scratch"
    converted.mkdir()
    scratch.mkdir()
    problems, rows, rejected = {}, {}, []
    for case in prepared.cases:
        result = convert_case(spec, sockets(spec), case, outputs_by_case[case.case_id], inputs, converted,
                              Budget(1 << 30), scratch)
        rejected += [(item.path, item.reason) for item in result.rejected]
        if result.problem:
            problems[case.case_id] = result.problem
        elif result.row:
            rows[case.case_id] = result.row
    if spec.kind == "classification":
        from bench.runners.grandchallenge import _write_predictions

        _write_predictions(spec, rows, converted / "predictions.csv")
    collection = collect_outputs(spec, prepared.cases, converted, inputs, tmp_path / "kept",
                                 cap_bytes=1 << 30)
    return {**{c.case_id: (problems.get(c.case_id, c).status, problems.get(c.case_id, c).reason)
               for c in collection.cases}, "rejected": rejected}


def _case_outputs(tmp_path, names):
    folders = {}
    for name in names:
        folders[name] = tmp_path / "out" / name
        folders[name].mkdir(parents=True)
    return folders


def test_segmentation_outputs_are_converted_and_judged(tmp_path):
    inputs = write_prepared(tmp_path / "prepared", SEG, n_cases=5)
    out = _case_outputs(tmp_path, [f"CASE-00{i}" for i in range(5)])
    masks = {}
    for i in range(5):
        image = sitk.ReadImage(str(inputs / f"images/CASE-00{i}.nii.gz"))
        masks[i] = sitk.Cast(image > -600, sitk.sitkUInt8)
        (out[f"CASE-00{i}"] / "images/covid-19-lesion-segmentation").mkdir(parents=True)
    target = "images/covid-19-lesion-segmentation"
    sitk.WriteImage(masks[0], str(out["CASE-000"] / target / "mask.mha"), useCompression=True)
    sitk.WriteImage(masks[1], str(out["CASE-001"] / target / "a.mha"))
    sitk.WriteImage(masks[1], str(out["CASE-001"] / target / "b.mha"))
    shifted = masks[2]
    shifted.SetOrigin(tuple(np.add(shifted.GetOrigin(), (0.5, 0, 0))))
    sitk.WriteImage(shifted, str(out["CASE-002"] / target / "m.mha"))
    os.symlink("/etc/passwd", out["CASE-003"] / target / "m.mha")
    (out["CASE-004"] / "results.json").write_text("{}")
    elsewhere = tmp_path / "host" / "covid-19-lesion-segmentation"  # a host folder holding a valid mask
    elsewhere.mkdir(parents=True)
    sitk.WriteImage(masks[4], str(elsewhere / "m.mha"))
    remove_tree(out["CASE-004"] / "images")
    os.symlink(elsewhere.parent, out["CASE-004"] / "images")
    statuses = _collect(load_task(SEG), inputs, out, tmp_path)
    assert statuses["CASE-000"] == ("ok", "")
    assert statuses["CASE-001"][0] == "malformed" and "2 .mha files" in statuses["CASE-001"][1]
    assert statuses["CASE-002"][0] == "malformed" and "affine differs" in statuses["CASE-002"][1]
    assert statuses["CASE-003"][0] == "malformed" and "symlink" in statuses["CASE-003"][1]
    assert statuses["CASE-004"] == ("missing", "no images/covid-19-lesion-segmentation/*.mha")
    assert statuses["rejected"] == [("CASE-004/images", "symlink; never followed, not kept"),
                                    ("CASE-004/results.json", "not part of the output contract; not kept")]
    kept = nib.load(tmp_path / "kept/masks/CASE-000.nii.gz")
    truth = sitk.GetArrayFromImage(masks[0]).T
    assert np.array_equal(np.asanyarray(kept.dataobj), truth)
    assert np.allclose(kept.affine, nib.load(inputs / "images/CASE-000.nii.gz").affine, atol=1e-5)


def test_classification_values_are_converted_and_judged(tmp_path):
    inputs = write_prepared(tmp_path / "prepared", CXR, n_cases=6)
    out = _case_outputs(tmp_path, [f"CASE-00{i}" for i in range(6)])
    severity = {"mild": 0.2, "moderate": 0.3, "severe": 0.5}
    appearance = {
        "CASE-000": {"typical": 0.7, "indeterminate": 0.1, "atypical": 0.1, "negative": 0.1},
        "CASE-001": {"typical": 0.7, "indeterminate": 0.1, "atypical": 0.1},
        "CASE-002": {"typical": "high", "indeterminate": 0.1, "atypical": 0.1, "negative": 0.1},
        "CASE-003": {"typical": 0.9, "indeterminate": 0.1, "atypical": 0.1, "negative": 0.1},
        "CASE-005": {"typical": float("nan"), "indeterminate": 0.1, "atypical": 0.1, "negative": 0.1},
    }
    for case_id, folder in out.items():
        (folder / "severity-probabilities.json").write_text(json.dumps(severity))
        if case_id in appearance:
            (folder / "appearance-probabilities.json").write_text(json.dumps(appearance[case_id]))
    statuses = _collect(load_task(CXR), inputs, out, tmp_path)
    assert statuses["CASE-000"] == ("ok", "")
    assert statuses["CASE-001"][0] == "malformed" and "exactly the keys" in statuses["CASE-001"][1]
    assert statuses["CASE-002"][0] == "malformed" and "'high' is not a number" in statuses["CASE-002"][1]
    assert statuses["CASE-003"][0] == "malformed" and "sum to 1.2" in statuses["CASE-003"][1]
    assert statuses["CASE-004"] == ("missing", "no appearance-probabilities.json")
    assert statuses["CASE-005"][0] == "malformed" and "not finite" in statuses["CASE-005"][1]
    kept = (tmp_path / "kept/predictions.csv").read_text().splitlines()
    assert len(kept) == 2 and kept[1].startswith("CASE-000,0.7,")


def test_a_binary_head_takes_the_probability_of_its_positive_class(tmp_path):
    inputs = write_prepared(tmp_path / "prepared", CLS, n_cases=3)
    out = _case_outputs(tmp_path, ["CASE-000", "CASE-001", "CASE-002"])
    (out["CASE-000"] / "covid-probability.json").write_text("0.8")
    (out["CASE-001"] / "covid-probability.json").write_text("true")
    (out["CASE-002"] / "covid-probability.json").write_text("{not json")
    statuses = _collect(load_task(CLS), inputs, out, tmp_path)
    assert statuses["CASE-000"] == ("ok", "")
    assert "True is not a number" in statuses["CASE-001"][1]
    assert statuses["CASE-002"][0] == "malformed" and "not JSON" in statuses["CASE-002"][1]
    kept = (tmp_path / "kept/predictions.csv").read_text().splitlines()
    assert kept[0] == "case_id,negative,positive"
    assert [float(v) for v in kept[1].split(",")[1:]] == pytest.approx([0.2, 0.8])


# --- one container per case: failures and time shares -------------------------------------------


def _outcome(limits, exit_code=0, timed_out=False, duration=0.5):
    return ExecOutcome(exit_code=exit_code, timed_out=timed_out, oom_killed=False, duration_s=duration,
                       stdout=b"out\n", stderr=b"", error=describe_end(exit_code, timed_out, False, limits))


def test_each_case_gets_a_fresh_layout_and_a_share_of_what_is_left(tmp_path):
    spec = load_task(CLS)
    inputs = write_prepared(tmp_path / "prepared", CLS, n_cases=4)
    output_dir, converted = tmp_path / "output", tmp_path / "converted"
    output_dir.mkdir()
    now = [100.0]  # the run's clock, advanced by each fake container's duration
    seen = []

    def execute(case_input, case_output, limits):
        seen.append((sorted(p.name for p in case_input.rglob("*.mha")), limits.timeout_s))
        if len(seen) == 1:  # crashes after 1 s
            now[0] += 1
            return _outcome(limits, exit_code=2, duration=1)
        if len(seen) == 2:  # hangs: killed at its share
            now[0] += limits.timeout_s
            return _outcome(limits, exit_code=None, timed_out=True, duration=limits.timeout_s)
        now[0] += 12.5
        (case_output / "covid-probability.json").write_text("0.25")
        return _outcome(limits, duration=12.5)

    run = run_cases(spec, read_inputs(inputs).cases, inputs, tmp_path / "work", output_dir, converted,
                    spec.limits.model_copy(update={"timeout_s": 40}), execute, clock=lambda: now[0])
    # 40 s over 4 cases; the crash leaves 39 s to 3 cases; the hang takes its 13 s, leaving 26 s to 2;
    # the third leaves 13.5 s to the last
    assert [share for _, share in seen] == [10, 13, 13, 13]
    assert all(len(names) == 1 for names, _ in seen) and len({n[0] for n, _ in seen}) == 4
    assert run.problems["CASE-000"].reason == "the container of this case exited with code 2"
    assert run.problems["CASE-001"].reason == ("the container of this case killed after the 13 s "
                                               "wall-clock timeout")
    assert set(run.problems) == {"CASE-000", "CASE-001"}
    jobs = run.record["cases"]
    assert [job["timeout_s"] for job in jobs] == [10, 13, 13, 13] and jobs[1]["timed_out"]
    assert run.record["time_budget_s"] == 40 and len({job["uuid"] for job in jobs}) == 4
    assert run.outcome.exit_code == 2 and run.outcome.timed_out and run.outcome.duration_s == 39
    assert run.outcome.error.startswith("2 of 4 cases failed (first: CASE-000: the container")
    assert (converted / "predictions.csv").read_text().splitlines()[1:] == ["CASE-002,0.75,0.25",
                                                                             "CASE-003,0.75,0.25"]
    assert not (tmp_path / "work" / "input").exists()  # each case's /input is removed after it


def test_cases_reached_after_the_budget_are_not_run(tmp_path):
    spec = load_task(CLS)
    inputs = write_prepared(tmp_path / "prepared", CLS, n_cases=4)
    (tmp_path / "output").mkdir()
    now, shares = [0.0], []

    def execute(case_input, case_output, limits):
        shares.append(limits.timeout_s)
        now[0] += 1.6 if shares[1:] else 1.0  # the second overruns its second while being killed
        return _outcome(limits, exit_code=None, timed_out=True, duration=1)

    run = run_cases(spec, read_inputs(inputs).cases, inputs, tmp_path / "work", tmp_path / "output",
                    tmp_path / "converted", spec.limits.model_copy(update={"timeout_s": 3}), execute,
                    clock=lambda: now[0])
    assert shares == [1, 1]  # 3 s over 4 cases: at least a second each while there is one
    assert [run.problems[f"CASE-00{i}"].reason.startswith("not run: the run's time budget was used up")
            for i in range(4)] == [False, False, True, True]
    assert [job["timeout_s"] for job in run.record["cases"]] == [1, 1, 0, 0]
    assert run.outcome.error.startswith("4 of 4 cases failed")


# --- submission.yaml and the runners ------------------------------------------------------------


def test_interface_is_validated_with_a_clear_error(tmp_path):
    (tmp_path / "submission.yaml").write_text("name: x\nteam: t\nimage: x:1\ninterface: kaggle\n")
    with pytest.raises(SubmissionError, match=r"interface.*'native' or 'grand-challenge'"):
        load_submission(tmp_path)
    with pytest.raises(SubmissionError, match="interface 'kaggle' is not one of native, grand-challenge"):
        load_submission("x:1", team="t", entry="e", interface="kaggle")
    assert load_submission("x:1", team="t", entry="e").interface == "native"
    told = load_submission("x:1", team="t", entry="e", interface="grand-challenge")
    assert told.interface == "grand-challenge"
    gc = load_submission(THRESHOLD_SEG / "submission-gc.yaml")
    assert (gc.name, gc.interface, gc.dockerfile) == ("threshold-seg-gc", "grand-challenge", "Dockerfile.gc")
    assert load_submission(THRESHOLD_SEG).interface == "native"


def test_the_process_runner_without_bubblewrap_refuses_the_interface(tmp_path, monkeypatch):
    inputs = write_prepared(tmp_path / "prepared", SEG, n_cases=1)
    monkeypatch.setenv("BENCH_NO_BWRAP", "1")
    with pytest.raises(RunnerError, match="fixed paths.*bubblewrap"):
        run_submission(THRESHOLD_SEG / "submission-gc.yaml", load_task(SEG), inputs, tmp_path / "run",
                       runner="process", unsafe_no_sandbox=True)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap is not installed")
def test_the_process_runner_runs_the_gc_container_code_per_case_in_bubblewrap(tmp_path):
    inputs = write_prepared(tmp_path / "prepared", SEG, n_cases=2)
    spec = load_task(SEG)
    native = run_submission(THRESHOLD_SEG, spec, inputs, tmp_path / "native", runner="process")
    grand = run_submission(THRESHOLD_SEG / "submission-gc.yaml", spec, inputs, tmp_path / "gc",
                           runner="process")
    assert grand.counts == native.counts == {"ok": 2, "missing": 0, "malformed": 0}
    assert grand.isolated and grand.interface == "grand-challenge"
    assert len(grand.grand_challenge["cases"]) == 2
    for case in native.cases:
        assert np.array_equal(np.asanyarray(nib.load(native.mask_path(case.case_id)).dataobj),
                              np.asanyarray(nib.load(grand.mask_path(case.case_id)).dataobj))


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap is not installed")
def test_bench_run_takes_the_interface_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    inputs = write_prepared(tmp_path / "prepared", SEG, n_cases=1)
    command = ["run", str(THRESHOLD_SEG / "submission-gc.yaml"), "--task", SEG, "--inputs", str(inputs),
               "--runner", "process"]
    refused = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "bad"), "--interface", "kaggle"])
    assert refused.exit_code == 2
    assert "interface 'kaggle' is not one of native, grand-challenge" in refused.output
    # the folder's file says grand-challenge; --interface native runs the same command the native way,
    # where it finds no /input/inputs.json: the case is missing, the run recorded as native
    native = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "native"), "--interface", "native"])
    assert native.exit_code == 0, native.output
    body = json.loads((tmp_path / "native/run.json").read_text())
    assert body["interface"] == "native" and body["grand_challenge"] is None
    assert body["counts"]["missing"] == 1 and body["exit_code"] != 0
    answer = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "gc")])
    assert answer.exit_code == 0 and "1 ok" in answer.output, answer.output
    assert json.loads((tmp_path / "gc/run.json").read_text())["interface"] == "grand-challenge"


def test_a_header_that_overflows_simpleitks_parser_is_read_without_it(tmp_path):
    """The attack: a ``Name`` of 300 characters made SimpleITK's MetaImage reader crash the
    process that read it. Read in a child process, so a regression fails this test only."""
    long_name = b"ObjectType = Image\nName = " + b"A" * 300 + b"\n"
    data = _mha(tmp_path).replace(b"ObjectType = Image\n", long_name)
    (tmp_path / "hostile.mha").write_bytes(data)
    script = ("import sys, SimpleITK as sitk; from pathlib import Path; from bench.runners.mha import "
              "read_mha_bytes; image = read_mha_bytes(Path(sys.argv[1]).read_bytes(), shape=(4, 3, 2), "
              "scratch=Path(sys.argv[2])); print(image.GetSize(), sitk.GetArrayFromImage(image).sum())")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "hostile.mha"), str(tmp_path)],
                          capture_output=True, text=True, check=False, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-500:]}"
    assert done.stdout.split() == ["(4,", "3,", "2)", "0"]


def _run_gc_adversary(tmp_path, name: str, task: str) -> tuple[dict, str]:
    """``bench run`` of adversary ``name`` as a Grand Challenge container on two cases of ``task``
    (process runner, real bubblewrap): its run.json and what it printed, after checking that it
    exited 0 and left nothing beside the run."""
    folder = make_adversaries(tmp_path / "adversaries")[name]
    (folder / "submission.yaml").write_text(
        (folder / "submission.yaml").read_text() + "interface: grand-challenge\n")
    inputs = write_prepared(tmp_path / "prepared", task, n_cases=2)
    answer = subprocess.run([sys.executable, "-m", "bench", "run", str(folder), "--task", task, "--inputs",
                             str(inputs), "--out", str(tmp_path / "runs/run"), "--runner", "process"],
                            capture_output=True, text=True, check=False, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert answer.returncode == 0, f"exit {answer.returncode}: {answer.stderr[-800:]}"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run"]
    return json.loads((tmp_path / "runs/run/run.json").read_text()), answer.stdout


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap is not installed")
def test_a_gc_container_writing_an_overflowing_mha_header_is_recorded(tmp_path):
    body, _ = _run_gc_adversary(tmp_path, "mha-overflow", SEG)
    assert [case["status"] for case in body["cases"]] == ["ok", "ok"]  # empty masks on the right grid


def test_a_probability_too_large_for_a_float_is_malformed_not_a_crash(tmp_path):
    """The attack: a 4,000-digit integer is valid JSON (under Python's 4,300-digit limit) but
    ``float()`` of it raises OverflowError, which the conversion did not expect."""
    inputs = write_prepared(tmp_path / "prepared", CLS, n_cases=2)
    out = _case_outputs(tmp_path, ["CASE-000", "CASE-001"])
    (out["CASE-000"] / "covid-probability.json").write_text("1" + "0" * 4000)
    (out["CASE-001"] / "covid-probability.json").write_text("0.25")
    statuses = _collect(load_task(CLS), inputs, out, tmp_path)
    assert statuses["CASE-000"][0] == "malformed" and "is not a number" in statuses["CASE-000"][1]
    assert statuses["CASE-001"] == ("ok", "")


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap is not installed")
def test_a_gc_container_writing_json_nested_too_deep_is_recorded(tmp_path):
    body, _ = _run_gc_adversary(tmp_path, "json-nesting", CLS)
    assert [case["status"] for case in body["cases"]] == ["malformed", "malformed"]
    assert all("nested too deep" in case["reason"] for case in body["cases"])


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap is not installed")
def test_a_gc_container_leaving_a_file_named_with_any_bytes_is_recorded(tmp_path):
    body, printed = _run_gc_adversary(tmp_path, "gc-hostile-names", CLS)
    assert "\x1b" not in printed
    assert [case["status"] for case in body["cases"]] == ["ok", "ok"]
    assert {r["path"] for r in body["rejected"]} == {f"CASE-00{i}/\\xff\\xfe\\x1b[2J[red]x" for i in range(2)}
