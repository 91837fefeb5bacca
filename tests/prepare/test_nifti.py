"""bench.prepare.nifti: igzip writes that nibabel reads back byte-for-byte the same, one-shot reads
equal to nibabel's, content hashes independent of memory order, int16 HU without float temporaries."""

import gzip
import hashlib

import nibabel as nib
import numpy as np
import pytest

from bench.prepare import nifti

AFFINE = np.diag([-0.7, -0.7, 1.25, 1.0])


def _mask(shape=(9, 7, 5), seed=3) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) > 0.7).astype(np.uint8)


def test_save_is_deterministic_has_no_timestamp_and_reads_back_in_nibabel(tmp_path):
    rng = np.random.default_rng(0)
    image = nifti.ct_image(rng.normal(-400, 300, (5, 8, 6)).astype(np.float32), np.eye(4))
    first, second = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    nifti.save(image, first)
    nifti.save(image, second)
    raw = first.read_bytes()
    assert raw == second.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # gzip magic, MTIME = 0
    assert gzip.decompress(raw) == image.to_bytes()  # nibabel's own NIfTI bytes, another compressor
    back = nib.load(first)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(image.dataobj))
    np.testing.assert_allclose(back.affine, image.affine)


def _ct(rng):
    return nifti.ct_image(rng.integers(-1024, 3000, (40, 64, 48)), np.eye(4))


def _mask_on_ct(rng):
    return nifti.mask_image(rng.random((40, 64, 48)) > 0.9, nifti.ct_image(np.zeros((40, 64, 48)), AFFINE))


@pytest.mark.parametrize("make", [_ct, _mask_on_ct])
def test_save_depends_on_the_nifti_bytes_alone_not_on_how_they_are_written(tmp_path, make, monkeypatch):
    """Compressed in fixed pieces: nibabel's bytes handed over in other slices give the same file,
    and one piece is exactly the one-shot igzip of ``to_bytes()``."""
    from isal import igzip

    image = make(np.random.default_rng(4))
    nifti.save(image, tmp_path / "x.nii.gz")
    raw = image.to_bytes()
    one_shot = igzip.compress(raw, compresslevel=nifti.GZIP_LEVEL, mtime=0)
    assert (tmp_path / "x.nii.gz").read_bytes() == one_shot
    monkeypatch.setattr(nifti, "GZIP_CHUNK", 4096)  # several pieces
    nifti.save(image, tmp_path / "pieces.nii.gz")
    for size in (1000, 4096, 10**6):
        with open(tmp_path / f"by-{size}.nii.gz", "wb") as handle:
            stream = nifti._GzipStream(handle)
            for start in range(0, len(raw), size):
                stream.write(raw[start:start + size])
            stream.finish()
        assert (tmp_path / f"by-{size}.nii.gz").read_bytes() == (tmp_path / "pieces.nii.gz").read_bytes()
    assert gzip.decompress((tmp_path / "pieces.nii.gz").read_bytes()) == raw


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_read_volume_equals_nibabel(tmp_path, suffix):
    path = tmp_path / f"mask{suffix}"
    nib.save(nib.Nifti1Image(_mask(), AFFINE), path)
    data, header, affine = nifti.read_volume(path)
    image = nib.load(path)
    expected = np.asanyarray(image.dataobj)
    assert data.dtype == expected.dtype and data.shape == expected.shape and data.flags.f_contiguous
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_array_equal(affine, image.affine)
    assert header.get_zooms() == image.header.get_zooms()


def test_read_volume_applies_scaling_and_reads_nifti2_through_nibabel(tmp_path):
    scaled = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), AFFINE)
    scaled.header.set_slope_inter(0.5, 10.0)
    nib.save(scaled, tmp_path / "scaled.nii.gz")
    data, _, _ = nifti.read_volume(tmp_path / "scaled.nii.gz")
    np.testing.assert_array_equal(data, np.asanyarray(nib.load(tmp_path / "scaled.nii.gz").dataobj))
    assert data[0, 0, 1] == 10.5
    nib.save(nib.Nifti2Image(_mask(), AFFINE), tmp_path / "two.nii.gz")
    data, _, _ = nifti.read_volume(tmp_path / "two.nii.gz")
    np.testing.assert_array_equal(data, _mask())


def test_read_volume_refuses_truncated_and_non_gzip_files(tmp_path):
    path = tmp_path / "mask.nii.gz"
    nifti.save(nifti.mask_image(_mask().transpose(2, 1, 0), nib.Nifti1Image(_mask(), AFFINE)), path)
    whole = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(whole[:-10]))
    with pytest.raises(OSError, match="truncated NIfTI file"):
        nifti.read_volume(path)
    path.write_bytes(b"\x1f\x8bnot gzip at all")
    with pytest.raises(OSError):
        nifti.read_volume(path)


def test_mask_sha256_is_the_documented_digest_in_any_memory_order_or_dtype():
    mask = _mask()
    expected = hashlib.sha256(b"9x7x5:" + mask.tobytes(order="F")).hexdigest()
    for variant in (mask, np.asfortranarray(mask), np.ascontiguousarray(mask), mask.astype(bool),
                    np.asfortranarray(mask.astype(bool)), mask.astype(np.int64)):
        assert nifti.mask_sha256(variant) == expected


def test_ct_image_rounds_and_clips_to_int16_like_the_formula():
    hu = np.array([[[-40000.2, -1024.5, -0.5], [0.49, 1.5, 2.5]], [[40000.0, 3.7, -3.7], [0, 1, 2]]],
                  dtype=np.float32)
    data = np.asanyarray(nifti.ct_image(hu, np.eye(4)).dataobj)
    expected = np.clip(np.rint(hu), -32768, 32767).astype(np.int16).transpose(2, 1, 0)
    assert data.dtype == np.int16
    np.testing.assert_array_equal(data, expected)
    stored = np.arange(-12, 12, dtype=np.int16).reshape(2, 3, 4)
    np.testing.assert_array_equal(np.asanyarray(nifti.ct_image(stored, np.eye(4)).dataobj),
                                  stored.transpose(2, 1, 0))
