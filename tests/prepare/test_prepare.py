"""prepare_split on the synthetic collection: input tree without labels, DICOM geometry, reference hash."""

import gzip
import hashlib
import json
import re
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data.dicom import scan_headers
from bench.errors import PrepareError, SplitError
from bench.prepare.caseids import SALT_PATH
from bench.prepare.materialize import prepare_split
from bench.prepare.reference import read_reference
from bench.tasks import load_task
from bench.trees import MARKER
from tests.helpers.splits_fixtures import synthetic

pytestmark = pytest.mark.slow

SEG, CLS, CXR = "ricord-1a-lesion-seg", "ricord-ct-covid-cls", "ricord-1c-cxr-appearance"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """The default image cache (``$BENCH_CACHE_DIR``) of every test is its own folder."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "default-cache"))


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    return synthetic(tmp_path_factory)


@pytest.fixture(scope="session")
def prepared(synth, tmp_path_factory):
    """The test split of every task, prepared once with a shared cache."""
    base = tmp_path_factory.mktemp("prepared")
    return {task_id: prepare_split(load_task(task_id, directory=synth.tasks), "synthetic", "test",
                                   root=synth.root, out=base / task_id, cache_dir=base / "cache",
                                   directory=synth.tasks)
            for task_id in (SEG, CLS, CXR)}


def _manifest(synth) -> pd.DataFrame:
    return pd.read_csv(synth.manifest, dtype=str, keep_default_na=False).set_index("case_id")


@pytest.mark.parametrize("task_id", [SEG, CLS, CXR])
def test_input_tree_holds_no_label_data(synth, prepared, task_id):
    result = prepared[task_id]
    spec = load_task(task_id, directory=synth.tasks)
    manifest = _manifest(synth)
    sources = [result.source_case_ids[c] for c in result.case_ids]
    # strings that would identify a case's collection, patient or study (task.json is public text)
    forbidden = set()
    for source in sources:
        row = manifest.loc[source]
        forbidden |= {source, row.patient_id, row.study_uid, row.series_uid}
    files = sorted(p.relative_to(result.input_dir).as_posix()
                   for p in result.input_dir.rglob("*") if p.is_file())
    harness_files = ("cases.json", "task.json", MARKER)
    assert files == sorted([*harness_files, *(f"images/{c}.nii.gz" for c in result.case_ids)])
    for name in files:
        assert name in harness_files or re.fullmatch(r"images/case-[0-9a-f]{12}\.nii\.gz", name)
        data = (result.input_dir / name).read_bytes()
        if name.endswith(".gz"):
            data = gzip.decompress(data)
            header = nib.load(result.input_dir / name).header
            for field in ("descrip", "aux_file", "intent_name", "db_name"):
                assert header[field].item() == b"", (name, field)
        for text in forbidden | ({"MIDRC", "RICORD", "1A", "1B"} if name != "task.json" else set()):
            assert text.encode() not in data, (name, text)
    cases = json.loads((result.input_dir / "cases.json").read_text())
    # the split it was prepared from, by name and hash (runs are bound to it), and no label
    assert set(cases) == {"schema_version", "task", "split", "split_name", "split_sha256", "cases"}
    assert [set(c) for c in cases["cases"]] == [{"case_id", "image"}] * len(result.case_ids)
    assert [c["case_id"] for c in cases["cases"]] == sorted(result.case_ids)
    assert json.loads((result.input_dir / "task.json").read_text()) == spec.public_dict()
    assert not any(p.is_relative_to(result.input_dir) for p in result.reference_dir.rglob("*"))
    # readable by the unprivileged user a container runs as
    for path in [result.input_dir, *result.input_dir.rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path


def _inversion_table(task_id: str, split_file: dict, cases_json: dict) -> dict[str, str]:
    """What a participant can compute from public files: candidate opaque id -> manifest case_id.

    Every string of every split-file case (ids, UIDs, strata, fingerprints), alone and prefixed
    with the task id, hashed with sha256, sha1 and md5, read from both ends, 12 hex long.
    """
    table = {}
    for case in split_file["cases"]:
        strings = [value for value in case.values() if isinstance(value, str)]
        strings += [*case["strata"].values(), *case["fingerprint"].values()]
        for text in strings:
            for message in (text, f"{task_id}/{text}", f"{task_id}:{text}", f"{cases_json['split']}/{text}"):
                for algorithm in ("sha256", "sha1", "md5"):
                    digest = hashlib.new(algorithm, message.encode()).hexdigest()
                    for part in (digest[:12], digest[-12:]):
                        table[f"case-{part}"] = case["case_id"]
    return table


@pytest.mark.parametrize("task_id", [SEG, CLS, CXR])
def test_prepared_ids_cannot_be_inverted_from_public_files(synth, prepared, task_id):
    """The split file names every case's collection and strata (for 1c the label itself):
    an opaque id that could be recomputed from it would hand out the test labels."""
    result = prepared[task_id]
    split_file = json.loads((synth.tasks / task_id / "splits" / "synthetic.json").read_text())
    cases_json = json.loads((result.input_dir / "cases.json").read_text())
    table = _inversion_table(task_id, split_file, cases_json)
    assert len(table) > 100 * len(split_file["cases"])
    prepared_ids = [case["case_id"] for case in cases_json["cases"]]
    assert prepared_ids and not set(prepared_ids) & set(table)
    # the attack that worked before the salt: the opaque id was "case-" + sha256("<task>/<case_id>")[:12]
    unsalted = {"case-" + hashlib.sha256(f"{task_id}/{c['case_id']}".encode()).hexdigest()[:12]
                for c in split_file["cases"]}
    assert unsalted <= set(table) and not unsalted & set(prepared_ids)
    # the salt itself reaches neither the input tree, nor the split file, nor the reference
    salt = (synth.root / SALT_PATH).read_text().strip()
    for tree in (result.input_dir, result.reference_dir, synth.tasks / task_id):
        for path in tree.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert salt.encode() not in (gzip.decompress(data) if path.suffix == ".gz" else data), path


def test_the_salt_is_kept_with_the_download_and_decides_the_ids(synth, prepared, tmp_path):
    salt_path = synth.root / SALT_PATH
    assert salt_path.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[0-9a-f]{32}\n", salt_path.read_text())
    # the index and verify walks skip the hidden folder: the salt is no "not a DICOM file"
    assert not [item for item, _ in scan_headers(synth.root).skipped if ".ricord-bench" in item]
    first = prepared[CXR]
    spec = load_task(CXR, directory=synth.tasks)
    own = tmp_path / "organizer" / "salt"
    other = prepare_split(spec, "synthetic", "test", root=synth.root, out=tmp_path / "other",
                          salt_file=own, directory=synth.tasks)
    assert own.is_file() and own.read_text() != salt_path.read_text()
    # no cache_dir: the library's default is the CLI's, $BENCH_CACHE_DIR
    assert len(list((tmp_path / "default-cache" / "nifti-v3").iterdir())) == len(other.case_ids)
    assert not set(other.case_ids) & set(first.case_ids)
    assert sorted(other.source_case_ids.values()) == sorted(first.source_case_ids.values())
    again = prepare_split(spec, "synthetic", "test", root=synth.root, out=tmp_path / "again",
                          salt_file=own, directory=synth.tasks)
    assert again.case_ids == other.case_ids and again.reference_sha256 == other.reference_sha256
    with pytest.raises(PrepareError, match="inside the container input tree"):
        prepare_split(spec, "synthetic", "test", root=synth.root, out=tmp_path / "leak",
                      salt_file=tmp_path / "leak" / "input" / "salt", directory=synth.tasks)
    short = tmp_path / "short"
    short.write_text("0123\n")
    with pytest.raises(PrepareError, match="at least 32 lowercase hex digits"):
        prepare_split(spec, "synthetic", "test", root=synth.root, out=tmp_path / "bad", salt_file=short,
                      directory=synth.tasks)


def test_prepared_ct_grid_matches_the_dicom_geometry(synth, prepared):
    result = prepared[SEG]
    manifest = _manifest(synth)
    for case_id in result.case_ids:
        row = manifest.loc[result.source_case_ids[case_id]]
        slices = [pydicom.dcmread(p) for p in sorted((synth.root / row.series_dir).iterdir())]
        slices = [ds for ds in slices if ds.SeriesInstanceUID == row.series_uid]
        iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        slices.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float))))
        row_mm, col_mm = (float(v) for v in slices[0].PixelSpacing)
        first = np.array(slices[0].ImagePositionPatient, dtype=float)
        step = np.array(slices[1].ImagePositionPatient, dtype=float) - first
        flip = np.array([-1.0, -1.0, 1.0])  # LPS -> RAS
        image = nib.load(result.input_dir / "images" / f"{case_id}.nii.gz")
        assert image.shape == (int(slices[0].Columns), int(slices[0].Rows), len(slices))
        assert image.get_data_dtype() == np.int16
        zooms = (col_mm, row_mm, np.linalg.norm(step))
        np.testing.assert_allclose(image.header.get_zooms(), zooms, atol=1e-4)
        np.testing.assert_allclose(image.affine[:3, 0], flip * iop[:3] * col_mm, atol=1e-4)
        np.testing.assert_allclose(image.affine[:3, 1], flip * iop[3:] * row_mm, atol=1e-4)
        np.testing.assert_allclose(image.affine[:3, 2], flip * step, atol=1e-4)
        np.testing.assert_allclose(image.affine[:3, 3], flip * first, atol=1e-4)
        k = len(slices) // 2
        hu = slices[k].pixel_array * float(slices[k].RescaleSlope) + float(slices[k].RescaleIntercept)
        np.testing.assert_array_equal(np.asarray(image.dataobj)[:, :, k], np.rint(hu).T.astype(np.int16))
        mask = nib.load(result.reference_dir / "masks" / f"{case_id}.nii.gz")
        assert mask.shape == image.shape and mask.get_data_dtype() == np.uint8
        np.testing.assert_allclose(mask.affine, image.affine, atol=1e-4)
        assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}


def test_prepared_radiograph_follows_the_documented_convention(synth, prepared):
    result = prepared[CXR]
    manifest = _manifest(synth)
    case_id = result.case_ids[0]
    row = manifest.loc[result.source_case_ids[case_id]]
    (path,) = [p for p in (synth.root / row.series_dir).iterdir()
               if pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID == row.series_uid]
    ds = pydicom.dcmread(path)
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    image = nib.load(result.input_dir / "images" / f"{case_id}.nii.gz")
    assert image.shape == (int(ds.Columns), int(ds.Rows))
    assert image.get_data_dtype() == np.float32
    np.testing.assert_allclose(image.header.get_zooms(), (float(spacing[1]), float(spacing[0])), atol=1e-6)
    np.testing.assert_allclose(image.affine, np.diag([float(spacing[1]), float(spacing[0]), 1, 1]), atol=1e-6)
    data = np.asarray(image.dataobj).T  # back to (rows, columns) as stored
    stored = ds.pixel_array.astype(float)
    correlation = np.corrcoef(data.ravel(), stored.ravel())[0, 1]
    # a monotone LUT keeps the order of values; MONOCHROME1 is inverted to bright = dense
    assert correlation > 0.9 if ds.PhotometricInterpretation == "MONOCHROME2" else correlation < -0.9


def test_reference_matches_the_split_and_its_own_hash(synth, prepared):
    for task_id, result in prepared.items():
        reference = read_reference(result.reference_dir)
        assert reference.split_sha256 == synth.splits[task_id].sha256
        assert reference.reference_sha256 == result.reference_sha256
        assert reference.case_ids == list(result.case_ids)
        document = json.loads((result.reference_dir / "reference.json").read_text())
        claimed = document.pop("reference_sha256")
        body = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert hashlib.sha256(body).hexdigest() == claimed
    labels = read_reference(prepared[CXR].reference_dir).cases
    manifest = _manifest(synth)
    for row in labels.itertuples():
        for column in ("appearance", "grade"):
            value = getattr(row, column)
            assert ("" if pd.isna(value) else value) == manifest.loc[row.source_case_id, column]
    covid = read_reference(prepared[CLS].reference_dir).cases
    assert set(covid.covid) == {"positive", "negative"}


def test_read_reference_refuses_an_edited_label_or_mask(prepared, tmp_path):
    cls = tmp_path / "cls"
    shutil.copytree(prepared[CLS].reference_dir, cls)
    document = json.loads((cls / "reference.json").read_text())
    case = document["cases"][0]
    case["covid"] = "negative" if case["covid"] == "positive" else "positive"
    (cls / "reference.json").write_text(json.dumps(document))
    with pytest.raises(PrepareError, match="does not match its content"):
        read_reference(cls)
    seg = tmp_path / "seg"
    shutil.copytree(prepared[SEG].reference_dir, seg)
    mask_path = next((seg / "masks").iterdir())
    mask = nib.load(mask_path)
    data = np.asarray(mask.dataobj).copy()
    data[0, 0, 0] = 1 - data[0, 0, 0]
    nib.save(nib.Nifti1Image(data, mask.affine, mask.header), mask_path)
    with pytest.raises(PrepareError, match="the mask was changed"):
        read_reference(seg)


def test_a_second_prepare_takes_every_image_from_the_cache(synth, prepared, tmp_path):
    first = prepared[SEG]
    again = prepare_split(load_task(SEG, directory=synth.tasks), "synthetic", "test", root=synth.root,
                          out=tmp_path / "again", cache_dir=first.out.parent / "cache", directory=synth.tasks)
    assert again.cache_hits == len(again.case_ids) == len(first.case_ids)
    assert again.reference_sha256 == first.reference_sha256
    for case_id in first.case_ids:
        name = f"images/{case_id}.nii.gz"
        assert (again.input_dir / name).read_bytes() == (first.input_dir / name).read_bytes()
        # copied out of the cache, never linked: an image's links and inode tell nothing of its history
        assert (again.input_dir / name).stat().st_ino != (first.input_dir / name).stat().st_ino
        assert (again.input_dir / name).stat().st_nlink == 1
        assert (again.input_dir / name).stat().st_mode & 0o777 == 0o644


def test_input_image_metadata_tells_nothing_of_the_label(synth, prepared):
    """The attack: ``stat`` of the input images. The shared cache already held the CT COVID
    test cases the 1a segmentation task had converted (all COVID positive); linked out of it,
    they had one link more, an older inode and an older modification time than the negatives
    converted for this task, which a submission reads through its bind mount."""
    result = prepared[CLS]
    assert result.cache_hits > 0  # the attack's precondition: some images came from the cache
    reference = json.loads((result.reference_dir / "reference.json").read_text())
    label = {case["case_id"]: case["covid"] for case in reference["cases"]}
    stats = {case_id: (result.input_dir / "images" / f"{case_id}.nii.gz").stat()
             for case_id in result.case_ids}
    assert {info.st_nlink for info in stats.values()} == {1}
    assert len(set(label.values())) == 2  # positives (some from the cache) and negatives
    by_age = sorted(result.case_ids, key=lambda case_id: stats[case_id].st_mtime_ns)
    assert by_age == sorted(result.case_ids)  # written in opaque id order, whatever the cache held


def test_out_layouts_that_would_expose_the_reference_are_refused(synth, prepared):
    spec = load_task(CLS, directory=synth.tasks)
    with pytest.raises(PrepareError, match="inside the container input tree"):
        prepare_split(spec, "synthetic", "test", root=synth.root, out=prepared[CLS].input_dir / "nested",
                      directory=synth.tasks)
    with pytest.raises(PrepareError, match="already exists"):
        prepare_split(spec, "synthetic", "test", root=synth.root, out=prepared[CLS].out,
                      directory=synth.tasks)


def test_overwrite_replaces_only_a_tree_prepare_wrote(synth, tmp_path):
    spec = load_task(CLS, directory=synth.tasks)
    out = tmp_path / "out"
    (out / "input").mkdir(parents=True)
    (out / "input" / "thesis.tex").write_text("mine")
    with pytest.raises(PrepareError, match=r"input holds files but no readable .*--overwrite replaces only"):
        prepare_split(spec, "synthetic", "test", root=synth.root, out=out, overwrite=True,
                      directory=synth.tasks)
    assert (out / "input" / "thesis.tex").read_text() == "mine"
    (out / "input" / "thesis.tex").unlink()
    first = prepare_split(spec, "synthetic", "test", root=synth.root, out=out, overwrite=True,
                          directory=synth.tasks)
    (first.reference_dir / "NOTES.md").write_text("mine")
    with pytest.raises(PrepareError, match="holds 'NOTES.md', which ricord-bench did not write there"):
        prepare_split(spec, "synthetic", "test", root=synth.root, out=out, overwrite=True,
                      directory=synth.tasks)
    (first.reference_dir / "NOTES.md").unlink()
    again = prepare_split(spec, "synthetic", "test", root=synth.root, out=out, overwrite=True,
                          directory=synth.tasks)
    assert again.reference_sha256 == first.reference_sha256


def test_a_split_case_missing_from_the_manifest_is_named(synth, tmp_path):
    table = pd.read_csv(synth.manifest, dtype=str, keep_default_na=False)
    dropped = synth.splits[CXR].case_ids("test")[0]
    manifest = tmp_path / "manifest.csv"
    table[table.case_id != dropped].to_csv(manifest, index=False)
    with pytest.raises(SplitError, match=re.escape(dropped)):
        prepare_split(load_task(CXR, directory=synth.tasks), "synthetic", "test", root=synth.root,
                      out=tmp_path / "out", manifest=manifest, directory=synth.tasks)


def test_cli_prepare_writes_both_trees(synth, tmp_path):
    result = CliRunner().invoke(app, ["prepare", "--task", CXR, "--name", "synthetic",
                                      "--split", "validation", "--root", str(synth.root),
                                      "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")],
                                env={"BENCH_TASKS_DIR": str(synth.tasks)})
    assert result.exit_code == 0, result.output
    reference = read_reference(tmp_path / "out" / "reference")
    assert f"reference sha256:{reference.reference_sha256}" in result.output
    assert len(reference.case_ids) == len(synth.splits[CXR].cases("validation"))
    assert (tmp_path / "out" / "reference" / "labels.csv").is_file()
    salt = tmp_path / "salt"
    again = CliRunner().invoke(app, ["prepare", "--task", CXR, "--name", "synthetic",
                                     "--split", "validation", "--root", str(synth.root),
                                     "--out", str(tmp_path / "salted"), "--salt-file", str(salt),
                                     "--cache", str(tmp_path / "cache")],
                               env={"BENCH_TASKS_DIR": str(synth.tasks)})
    assert again.exit_code == 0, again.output
    assert salt.is_file()
    salted = read_reference(tmp_path / "salted" / "reference")
    assert sorted(salted.cases.source_case_id) == sorted(reference.cases.source_case_id)
    assert not set(salted.case_ids) & set(reference.case_ids)


def test_prepare_refuses_pixels_that_differ_from_the_pin(synth, tmp_path):
    root = tmp_path / "download"
    shutil.copytree(synth.root, root)
    case = synth.splits[CLS].cases("test")[0]
    manifest = _manifest(synth)
    folder = root / manifest.loc[case.case_id, "series_dir"]
    path = next(p for p in sorted(folder.iterdir())
                if pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID == case.series_uid)
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.copy()
    pixels[0, 0] += 7
    ds.PixelData = pixels.tobytes()
    ds.save_as(path)
    with pytest.raises(PrepareError, match=f"case {case.case_id}: the pixel data .* differ from the pinned"):
        prepare_split(load_task(CLS, directory=synth.tasks), "synthetic", "test", root=root,
                      out=tmp_path / "out", directory=synth.tasks)
    assert not (tmp_path / "out" / "input").exists() and not (tmp_path / "out" / "reference").exists()
