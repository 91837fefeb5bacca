"""Output collection on hand-made output folders: every rule, one case at a time."""

import gzip
import os
import zlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bench.runners.collect import OutputInvalid, collect_outputs, read_output_file
from bench.runners.staging import InputCase
from bench.tasks import load_task
from bench.trees import remove_tree
from tests.helpers.runner_inputs import CT_AFFINE, CT_SHAPE

SEG = load_task("ricord-1a-lesion-seg")
CXR = load_task("ricord-1c-cxr-appearance")
CLS = load_task("ricord-ct-covid-cls")
CAP = 64 * 1024 * 1024


def _nifti_bytes(data, affine=CT_AFFINE, *, compress=True, slope=None):
    image = nib.Nifti1Image(data, affine)
    if slope is not None:
        image.header.set_slope_inter(slope, 0)
    raw = image.to_bytes()
    return gzip.compress(raw, mtime=0) if compress else raw


@pytest.fixture
def seg_case_dirs(tmp_path):
    """An input folder with one CT per case, an empty output folder and a destination."""
    inputs = tmp_path / "input"
    (inputs / "images").mkdir(parents=True)
    cases = []
    for index in range(12):
        case_id = f"C{index:02d}"
        nib.save(
            nib.Nifti1Image(np.zeros(CT_SHAPE, np.int16), CT_AFFINE), inputs / "images" / f"{case_id}.nii.gz"
        )
        cases.append(InputCase(case_id, f"images/{case_id}.nii.gz"))
    output = tmp_path / "output"
    (output / "masks").mkdir(parents=True)
    return inputs, output, tmp_path / "kept", tuple(cases)


def test_segmentation_rules_case_by_case(seg_case_dirs, tmp_path):
    inputs, output, kept, cases = seg_case_dirs
    masks = output / "masks"
    good = np.zeros(CT_SHAPE, np.uint8)
    good[10:20, 10:20, 3:6] = 1
    (masks / "C00.nii.gz").write_bytes(_nifti_bytes(good))  # ok
    (masks / "C01.nii.gz").write_bytes(_nifti_bytes(good.astype(bool).astype(np.int16), compress=False))  # ok
    (masks / "C02.nii.gz").write_bytes(_nifti_bytes(np.zeros((48, 48, 11), np.uint8)))  # wrong shape
    shifted = CT_AFFINE.copy()
    shifted[0, 3] += 0.01
    (masks / "C03.nii.gz").write_bytes(_nifti_bytes(good, shifted))  # wrong affine
    (masks / "C04.nii.gz").write_bytes(_nifti_bytes(good.astype(np.float32)))  # float dtype
    (masks / "C05.nii.gz").write_bytes(_nifti_bytes(good * 2))  # not binary
    (masks / "C06.nii.gz").write_bytes(_nifti_bytes(good, slope=2.0))  # scaled
    (masks / "C07.nii.gz").write_bytes(b"\x1f\x8b garbage")  # broken gzip
    (masks / "C08.nii.gz").write_bytes(gzip.compress(b"not a nifti header at all" * 20))  # not NIfTI
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    (masks / "C09.nii.gz").write_bytes(bomb.compress(b"\0" * (16 << 20)) + bomb.flush())  # decompression bomb
    (masks / "C10.nii.gz").symlink_to(inputs / "images" / "C10.nii.gz")  # symlink
    # C11: missing
    result = collect_outputs(SEG, cases, output, inputs, kept, cap_bytes=CAP)
    statuses = {c.case_id: (c.status, c.reason) for c in result.cases}
    assert statuses["C00"] == ("ok", "") and statuses["C01"] == ("ok", "")
    expected = {
        "C02": "shape (48, 48, 11) differs",
        "C03": "affine differs",
        "C04": "not an integer type",
        "C05": "not binary",
        "C06": "intensity scaling",
        "C07": "not a valid gzip",
        "C08": "not a readable NIfTI-1",
        "C09": "decompresses to more than",
        "C10": "symlink",
    }
    for case_id, fragment in expected.items():
        assert statuses[case_id][0] == "malformed" and fragment in statuses[case_id][1], statuses[case_id]
    assert statuses["C11"] == ("missing", "no masks/C11.nii.gz")
    assert sorted(p.name for p in (kept / "masks").iterdir()) == ["C00.nii.gz", "C01.nii.gz"]
    assert (kept / "masks/C00.nii.gz").read_bytes() == (masks / "C00.nii.gz").read_bytes()


def test_masks_folder_as_a_symlink_is_never_followed(seg_case_dirs, tmp_path):
    inputs, output, kept, cases = seg_case_dirs
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    good = np.zeros(CT_SHAPE, np.uint8)
    for case in cases:
        (elsewhere / f"{case.case_id}.nii.gz").write_bytes(_nifti_bytes(good))
    (output / "masks").rmdir()
    (output / "masks").symlink_to(elsewhere)
    result = collect_outputs(SEG, cases, output, inputs, kept, cap_bytes=CAP)
    assert {c.status for c in result.cases} == {"malformed"}
    assert all("masks is a symlink" in c.reason for c in result.cases)
    assert [r.path for r in result.rejected] == ["masks"]
    assert not (kept / "masks").exists()


def test_special_files_and_size_caps(seg_case_dirs):
    inputs, output, kept, cases = seg_case_dirs
    masks = output / "masks"
    os.mkfifo(masks / "C00.nii.gz")
    (masks / "C01.nii.gz").mkdir()
    (masks / "C02.nii.gz").write_bytes(os.urandom(400_000))  # over the per-file cap of a 48x48x12 grid
    good = _nifti_bytes(np.zeros(CT_SHAPE, np.uint8))
    for case in cases[3:]:
        (masks / f"{case.case_id}.nii.gz").write_bytes(good)
    result = collect_outputs(SEG, cases, output, inputs, kept, cap_bytes=CAP)
    reasons = {c.case_id: c.reason for c in result.cases}
    assert "not a regular file (a fifo)" in reasons["C00"]
    assert "not a regular file (a folder)" in reasons["C01"]
    assert "over its size cap" in reasons["C02"]
    assert [c.status for c in result.cases[3:]] == ["ok"] * 9
    # a total cap that holds only three masks: later cases pass it and are rejected, earlier ones kept
    result = collect_outputs(SEG, cases[3:], output, inputs, kept.parent / "kept2", cap_bytes=3 * len(good))
    assert [c.status for c in result.cases] == ["ok"] * 3 + ["malformed"] * 6
    assert "total output cap" in result.cases[-1].reason


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_device_files_are_rejected(seg_case_dirs):
    inputs, output, kept, cases = seg_case_dirs
    os.mknod(output / "masks" / "C00.nii.gz", 0o600 | 0o020000, os.makedev(1, 3))  # like /dev/null
    result = collect_outputs(SEG, cases[:1], output, inputs, kept, cap_bytes=CAP)
    assert "a character device" in result.cases[0].reason


def test_read_output_file_refuses_escapes(tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    (tmp_path / "secret").write_text("host")
    (output / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(OutputInvalid, match="symlink"):
        read_output_file(output, "link", max_bytes=100)
    (output / "up").symlink_to(tmp_path)
    with pytest.raises(OutputInvalid, match="up is a symlink"):
        read_output_file(output, "up/secret", max_bytes=100)
    with pytest.raises(OutputInvalid) as missing:
        read_output_file(output, "nothing/here", max_bytes=100)
    assert missing.value.status == "missing"


def _cases(n=6):
    return tuple(InputCase(f"C{i}", f"images/C{i}.nii.gz") for i in range(n))


def _classify(tmp_path, text, spec=CXR, n=6, cap=CAP):
    output = tmp_path / "output"
    output.mkdir(exist_ok=True)
    (output / "predictions.csv").write_bytes(text.encode() if isinstance(text, str) else text)
    result = collect_outputs(spec, _cases(n), output, tmp_path, tmp_path / "kept", cap_bytes=cap)
    return {c.case_id: (c.status, c.reason) for c in result.cases}, result


def test_classification_rules_row_by_row(tmp_path):
    header = "case_id,typical,indeterminate,atypical,negative,mild,moderate,severe\n"
    rows = (
        "C0,0.7,0.1,0.1,0.1,0.2,0.3,0.5\n"
        "C1,nan,0.1,0.1,0.1,0.2,0.3,0.5\n"
        "C2,0.7,0.1,0.1,0.1,1.2,-0.2,0\n"
        "C3,0.5,0.1,0.1,0.1,0.2,0.3,0.5\n"
        "C4,0.25,0.25,0.25,0.25,abc,0.5,0.5\n"
        "C4,0.25,0.25,0.25,0.25,0.2,0.3,0.5\n"
        " C5 ,0.2500004,0.25,0.25,0.25,0.2,0.3,0.5\n"
        "C9,0.25,0.25,0.25,0.25,0.2,0.3,0.5\n"
    )
    statuses, result = _classify(tmp_path, header + rows)
    assert statuses["C0"] == ("ok", "") and statuses["C5"] == ("ok", "")
    assert statuses["C1"] == ("malformed", "typical is not finite ('nan')")
    assert statuses["C2"] == ("malformed", "mild = 1.2 is outside [0, 1]")
    assert statuses["C3"] == ("malformed", "appearance probabilities sum to 0.8, not 1 (tolerance 0.001)")
    assert statuses["C4"] == ("malformed", "case id appears 2 times in predictions.csv")
    assert [(r.path, r.reason) for r in result.rejected] == [
        ("predictions.csv:C9", "row for a case id that is not in cases.json; ignored")
    ]
    kept = pd.read_csv(tmp_path / "kept/predictions.csv")
    assert kept["case_id"].tolist() == ["C0", "C5"]
    assert list(kept.columns) == CXR.output_columns


def test_classification_columns_in_any_order_but_exactly_the_tasks(tmp_path):
    statuses, _ = _classify(tmp_path, "positive,case_id,negative\n0.9,C1,0.1\n", spec=CLS, n=2)
    assert statuses == {"C0": ("missing", "no row in predictions.csv"), "C1": ("ok", "")}
    statuses, _ = _classify(tmp_path, "case_id,positive\nC1,0.9\n", spec=CLS, n=2)
    assert all(s == "malformed" and "missing ['negative']" in r for s, r in statuses.values())
    statuses, _ = _classify(tmp_path, "case_id,negative,positive,extra\nC1,0.1,0.9,1\n", spec=CLS, n=2)
    assert all("unknown ['extra']" in r for _, r in statuses.values())


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00garbage\x00\xff", b'case_id,"negative\n'])
def test_unparsable_predictions_make_every_case_malformed(tmp_path, content):
    statuses, _ = _classify(tmp_path, content, spec=CLS, n=3)
    assert {s for s, _ in statuses.values()} == {"malformed"}
    assert all(r.startswith("predictions.csv: ") for _, r in statuses.values())
    assert not (tmp_path / "kept/predictions.csv").exists()


def test_predictions_over_the_cap_or_absent(tmp_path):
    statuses, _ = _classify(
        tmp_path, "case_id,negative,positive\n" + "C0,0.5,0.5\n" * 100, spec=CLS, n=1, cap=200
    )
    assert statuses["C0"][0] == "malformed" and "size cap" in statuses["C0"][1]
    (tmp_path / "output/predictions.csv").unlink()
    result = collect_outputs(CLS, _cases(2), tmp_path / "output", tmp_path, tmp_path / "kept2", cap_bytes=CAP)
    assert [c.status for c in result.cases] == ["missing", "missing"]


def test_stray_entries_are_listed_not_kept(tmp_path):
    output = tmp_path / "output"
    (output / "sub").mkdir(parents=True)
    (output / "predictions.csv").write_text("case_id,negative,positive\nC0,0.5,0.5\n")
    (output / "notes.txt").write_text("x")
    (output / "sub" / "model.bin").write_bytes(b"\0")
    (output / "etc").symlink_to("/etc")
    result = collect_outputs(CLS, _cases(1), output, tmp_path, tmp_path / "kept", cap_bytes=CAP)
    assert {(r.path, r.reason.split(";")[0]) for r in result.rejected} == {
        ("etc", "symlink"),
        ("notes.txt", "not part of the output contract"),
        ("sub/model.bin", "not part of the output contract"),
    }
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["predictions.csv"]


def test_prediction_rows_are_read_with_memory_bounded_by_the_cases(tmp_path):
    header = "case_id,negative,positive\n"
    rows = "C0,0.5,0.5\nC0,0.5,0.5\nC0,0.4,0.6\nC1,0.5,0.5,0.1\nC2,0.5\n"
    ghosts = "".join(f"ghost-{i},0.5,0.5\n" for i in range(250))
    statuses, result = _classify(tmp_path, header + rows + ghosts + "C3,0.1,0.9\n", spec=CLS, n=4)
    assert statuses["C0"] == ("malformed", "case id appears 3 times in predictions.csv")
    assert statuses["C1"] == ("malformed", "row has 4 fields, the header 3")
    assert statuses["C2"] == ("malformed", "row has 2 fields, the header 3")
    assert statuses["C3"] == ("ok", "")
    assert [r.path for r in result.rejected] == [f"predictions.csv:ghost-{i}" for i in range(100)]
    assert result.rejected_more == 150


def test_reasons_and_names_are_recorded_capped_and_printable(tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    (output / "predictions.csv").write_text(
        "case_id,negative,positive\nC0,0.5," + "9" * 1_000_000 + "\nC1,0.5,\x1b[2J\n"
    )
    os.close(os.open(os.fsencode(output) + b"/not-utf8-\xff", os.O_WRONLY | os.O_CREAT))
    result = collect_outputs(CLS, _cases(2), output, tmp_path, tmp_path / "kept", cap_bytes=CAP)
    reasons = {c.case_id: c.reason for c in result.cases}
    assert len(reasons["C0"]) <= 300 and "characters cut" in reasons["C0"]
    assert reasons["C1"] == "positive is not a number ('\\x1b[2J')"
    assert [r.path for r in result.rejected] == ["not-utf8-\\xff"]


def test_a_deeply_nested_output_is_listed_without_recursion(tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    (output / "predictions.csv").write_text("case_id,negative,positive\nC0,0.5,0.5\n")
    try:
        descriptor = os.open(output, os.O_RDONLY)
        for _ in range(1500):
            os.mkdir("n", dir_fd=descriptor)
            child = os.open("n", os.O_RDONLY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = child
        os.close(os.open("end", os.O_WRONLY | os.O_CREAT, dir_fd=descriptor))
        os.close(descriptor)
        result = collect_outputs(CLS, _cases(1), output, tmp_path, tmp_path / "kept", cap_bytes=CAP)
    finally:
        remove_tree(output)  # pytest's own clean-up of old temporary folders would recurse
    assert [c.status for c in result.cases] == ["ok"]
    (deep,) = result.rejected
    assert deep.path == "n/n/n/n/...1493 levels.../n/n/n/end"


def test_a_flood_of_entries_is_examined_up_to_the_entry_limit_and_the_valid_output_kept(tmp_path):
    output = tmp_path / "output"
    (output / "flood").mkdir(parents=True)
    (output / "predictions.csv").write_text("case_id,negative,positive\nC0,0.5,0.5\n")
    for k in range(3000):  # no tmpfs refused them (not root): the walk must stop by itself
        (output / "flood" / f"f{k}").touch()
    result = collect_outputs(CLS, _cases(1), output, tmp_path, tmp_path / "kept", cap_bytes=CAP,
                             max_entries=100)
    assert [c.status for c in result.cases] == ["ok"]
    assert (tmp_path / "kept" / "predictions.csv").is_file()
    notice = result.rejected[0]
    assert notice.path == "..." and "more than 100 entries" in notice.reason
    assert "not examined" in notice.reason
    assert len(result.rejected) + result.rejected_more == 1 + 99  # 100 examined: the folder and 99 files


def test_reaching_the_entry_limit_exactly_is_recorded(tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    (output / "predictions.csv").write_text("case_id,negative,positive\nC0,0.5,0.5\n")
    for k in range(15):
        (output / f"x{k}").touch()
    result = collect_outputs(CLS, _cases(1), output, tmp_path, tmp_path / "kept", cap_bytes=CAP,
                             max_entries=16)
    assert result.rejected[0].path == "..." and "holds 16 entries, its limit" in result.rejected[0].reason
    assert len(result.rejected) == 16
