"""The NIfTI convention of every prepared image and mask, in one place.

CT (3D)
    NIfTI-1, data array ``(i, j, k)`` = (DICOM column x, DICOM row y, slice z increasing along the
    slice normal, i.e. row direction x column direction of ImageOrientationPatient). The affine
    maps ``(i, j, k)`` to RAS+ millimetres: DICOM patient LPS with x and y negated. ``get_zooms()``
    is (column spacing, row spacing, slice spacing) in mm. Values int16 Hounsfield units
    (stored value x RescaleSlope + RescaleIntercept, rounded, clipped to the int16 range), no
    scaling in the header. sform and qform codes 1 (scanner), units mm.
Chest radiographs (2D)
    NIfTI-1, data array ``(i, j)`` = (column, row): ``data[i, j]`` is the pixel at DICOM row ``j``,
    column ``i``, so ``data.T`` is the image as stored in the DICOM. Values float32 after the
    modality LUT and the VOI LUT, MONOCHROME1 inverted (higher = denser, as in MONOCHROME2).
    A radiograph has no 3D patient geometry, so the affine only carries the pixel spacing:
    ``diag(column spacing, row spacing, 1, 1)`` (mm); no left/right or up/down is asserted.
    ``get_zooms()`` is (column spacing, row spacing).
Masks
    uint8 0/1 with the image's shape and affine.

Arrays are handed to nibabel as transposed views of the ``(z, y, x)`` arrays: Fortran-ordered
in ``(i, j, k)``, which is NIfTI's on-disk order, so nothing is copied to reorder.

Every free-text header field (``descrip``, ``aux_file``, ``intent_name``, ``db_name``) is blank:
nothing about the case travels in the header.

Speed (``python -m benchmarks.bench_score``, ``benchmarks.bench_prepare``): :func:`save` compresses
with python-isal (ISA-L's igzip, level :data:`GZIP_LEVEL`), several times faster than zlib at
nibabel's level and smaller; :func:`read_volume` decompresses a file in one call instead of
streaming it through ``gzip.GzipFile``, and returns the voxels as a read-only view of the
decompressed bytes.
"""

import hashlib
import io
import os

import nibabel as nib
import numpy as np
from isal import igzip, isal_zlib

from bench.data.hu import hu_into

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ct_affine_ras(affine_lps_zyx: np.ndarray) -> np.ndarray:
    """RAS affine of ``(i, j, k) = (x, y, z)`` from the LPS affine of ``(z, y, x)`` indices."""
    return LPS_TO_RAS @ np.asarray(affine_lps_zyx, dtype=float)[:, [2, 1, 0, 3]]


def _image(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    image = nib.Nifti1Image(data, affine)
    header = image.header
    for name in ("descrip", "aux_file", "intent_name", "db_name"):
        header[name] = b""
    header.set_xyzt_units("mm")
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    return image


def ct_image(hu_zyx: np.ndarray, affine_lps_zyx: np.ndarray) -> nib.Nifti1Image:
    """A CT volume ``(z, y, x)`` in HU as an int16 NIfTI image in the convention above.

    An int16 volume (what :func:`bench.data.dicom.load_ct_series` returns) is used as it is;
    anything else is rounded and clipped into a new int16 array by
    :func:`bench.data.hu.hu_into`, one slice at a time, so no full-size float temporary is made
    (a 512 x 512 x 200 float32 volume is 200 MiB per temporary).
    """
    hu_zyx = np.asarray(hu_zyx)
    if hu_zyx.dtype == np.int16:
        hu = hu_zyx
    else:
        hu = np.empty(hu_zyx.shape, dtype=np.int16)
        hu_into(hu_zyx, hu)
    return _image(hu.transpose(2, 1, 0), ct_affine_ras(affine_lps_zyx))


def radiograph_image(pixels_yx: np.ndarray, spacing_mm_yx: tuple[float, float]) -> nib.Nifti1Image:
    """A radiograph ``(y, x)`` as a float32 2D NIfTI image in the convention above."""
    row_mm, col_mm = spacing_mm_yx
    affine = np.diag([float(col_mm), float(row_mm), 1.0, 1.0])
    return _image(np.asarray(pixels_yx, dtype=np.float32).T, affine)


def mask_image(mask_zyx: np.ndarray, like: nib.Nifti1Image) -> nib.Nifti1Image:
    """A boolean mask ``(z, y, x)`` as uint8 0/1 on the grid of the image ``like``."""
    data = np.asarray(mask_zyx, dtype=bool).astype(np.uint8).transpose(2, 1, 0)
    if data.shape != like.shape:
        raise ValueError(f"mask shape {data.shape} (as i, j, k) differs from the image shape {like.shape}")
    return _image(data, like.affine)


def mask_sha256(data: np.ndarray) -> str:
    """sha256 of a mask's content: ``"<I>x<J>x<K>:"`` then its uint8 voxels in NIfTI order (i fastest).

    Taken over the array, not the .nii.gz bytes, so that it does not depend on the compressor.
    A Fortran-ordered uint8 or bool array (what :func:`read_volume` and nibabel return) is hashed
    in place, without a copy.
    """
    array = np.asarray(data)
    array = array.view(np.uint8) if array.dtype == np.bool_ else array.astype(np.uint8, copy=False)
    digest = hashlib.sha256("x".join(str(n) for n in array.shape).encode() + b":")
    digest.update(memoryview(np.asfortranarray(array).T))
    return digest.hexdigest()


GZIP_LEVEL = 2
"""igzip compression level of every written .nii.gz (0-3; ISA-L's default, measured in
``benchmarks.bench_prepare``: faster than zlib level 1 and smaller)."""


def save(image: nib.Nifti1Image, path: str | os.PathLike) -> None:
    """Write ``image`` as .nii.gz: igzip without a timestamp, so equal images give equal bytes.

    The NIfTI bytes are nibabel's own (``to_stream``: the header and data nibabel would write);
    only the compressor differs, and nibabel reads the file back like any gzip file. They are
    compressed as nibabel writes them, in pieces of :data:`GZIP_CHUNK` bytes, straight into the
    file: no full-size copy of the volume (``to_bytes`` made two), and the file depends only on
    those bytes, not on how nibabel slices its writes. Not atomic by itself: callers write into a
    staging folder that is renamed into place.
    """
    with open(path, "wb") as handle:
        stream = _GzipStream(handle)
        image.to_stream(stream)
        stream.finish()


GZIP_CHUNK = 4 * 2**20
"""Bytes of NIfTI handed to the compressor at a time by :func:`save` (ISA-L's output depends on it)."""


class _GzipStream(io.RawIOBase):
    """A write-only stream that gzips (level :data:`GZIP_LEVEL`, mtime 0) into ``handle`` what is
    written to it, :data:`GZIP_CHUNK` bytes at a time. Seeks are allowed only to where it is
    (nibabel seeks to the data offset it has just reached)."""

    def __init__(self, handle):
        super().__init__()
        self._handle = handle
        self._compressor = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)  # 31: gzip, mtime 0
        self._pending = bytearray(GZIP_CHUNK)
        self._filled = 0
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        written = view.nbytes
        while view.nbytes:
            take = min(GZIP_CHUNK - self._filled, view.nbytes)
            self._pending[self._filled:self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == GZIP_CHUNK:
                self._handle.write(self._compressor.compress(self._pending))
                self._filled = 0
        self._position += written
        return written

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self._position + offset}.get(whence)
        if target != self._position:
            raise io.UnsupportedOperation(f"a compressed stream cannot seek (to {offset}, whence {whence})")
        return self._position

    def finish(self) -> None:
        """Compress what is left and write the end of the gzip stream (its CRC and length)."""
        self._handle.write(self._compressor.compress(memoryview(self._pending)[:self._filled]))
        self._handle.write(self._compressor.flush())


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, nib.Nifti1Header, np.ndarray]:
    """The voxels, header and affine of a NIfTI file (.nii.gz or .nii), decompressed in one call.

    Returns the same array as ``numpy.asanyarray(nibabel.load(path).dataobj)`` (shape, dtype and
    values; Fortran order, as on disk), but read-only, and the affine nibabel would give
    (``header.get_best_affine()``). Single-file NIfTI-1 without intensity scaling (every mask and
    image the harness writes, and what segmentation tools write) is read straight from the
    decompressed bytes; anything else (NIfTI-2, scaled data) goes through nibabel.

    Raises
    ------
    OSError
        Unreadable, not gzip despite the gzip magic, or truncated.
    nibabel.filebasedimages.ImageFileError, ValueError
        Not a NIfTI image (from nibabel, as ``nibabel.load`` raises them).
    """
    path = os.fspath(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    data = igzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    del raw
    header = None
    if len(data) >= 348 and data[344:348] == b"n+1\x00":
        header = nib.Nifti1Header.from_fileobj(io.BytesIO(data[:348]))
    if header is None or header.get_slope_inter() not in ((None, None), (1.0, 0.0)):
        image = nib.load(path)
        return np.asanyarray(image.dataobj), image.header, np.asarray(image.affine, dtype=np.float64)
    shape = header.get_data_shape()
    dtype = header.get_data_dtype()
    offset = int(header.get_data_offset())
    count = int(np.prod(shape))
    if offset + count * dtype.itemsize > len(data):
        raise OSError(f"{path}: truncated NIfTI file: the header announces {shape} {dtype} voxels at byte "
                      f"{offset}, but only {len(data)} bytes are there")
    voxels = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape, order="F")
    return voxels, header, np.asarray(header.get_best_affine(), dtype=np.float64)
