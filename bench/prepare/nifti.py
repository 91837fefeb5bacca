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
"""

import hashlib
import os

import nibabel as nib
import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
INT16_RANGE = (np.iinfo(np.int16).min, np.iinfo(np.int16).max)


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
    """A CT volume ``(z, y, x)`` in HU as an int16 NIfTI image in the convention above."""
    hu = np.clip(np.rint(hu_zyx), *INT16_RANGE).astype(np.int16)
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
    """
    array = np.asarray(data).astype(np.uint8, copy=False)
    digest = hashlib.sha256("x".join(str(n) for n in array.shape).encode() + b":")
    digest.update(array.tobytes(order="F"))
    return digest.hexdigest()


def save(image: nib.Nifti1Image, path: str | os.PathLike) -> None:
    """Write ``image`` (gzip without a timestamp, so equal images give equal bytes)."""
    nib.save(image, os.fspath(path))
