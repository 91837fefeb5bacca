"""NIfTI (RAS) to MetaImage ``.mha`` (ITK, LPS) and back, on the same voxel grid, with SimpleITK.

Our prepared images are NIfTI-1 files read by nibabel: voxel ``(i, j, k)`` maps to a point in
RAS millimetres through the 4x4 ``affine``. ITK images map index ``(i, j, k)`` to a point in LPS
millimetres: ``origin + direction @ diag(spacing) @ index``. RAS and LPS differ by the sign of
the first two axes, so with ``F = diag(-1, -1, 1)``:

    direction @ diag(spacing) = F @ affine[:3, :3],    origin = F @ affine[:3, 3]

and back. Spacing is the length of each column, direction the columns divided by it. The voxel
array keeps its ``(i, j, k)`` meaning; only the memory order differs (SimpleITK's numpy view is
indexed ``(k, j, i)``). The conversion is done here from nibabel's affine rather than by
SimpleITK's own NIfTI reader, so the grid is exactly the one the collection rule
(:func:`bench.runners.collect.check_mask`) compares against.

Reading a ``.mha`` a submission wrote goes through :func:`read_mha_bytes`: the header is parsed
and checked first (pixels in the file itself, ``ElementDataFile = LOCAL``, never another file;
the expected number of dimensions and size; one channel), so SimpleITK is never pointed at a
host file and never allocates more than the expected grid. SimpleITK never reads the
submission's header either: its MetaImage parser copies some fields into fixed buffers (a
``Name`` of 300 characters crashed the harness with a segmentation fault), so the file it reads
is a header written here, from the checked fields alone, followed by the submission's pixels.
"""

import os
import tempfile
from pathlib import Path

import numpy as np

_LPS = np.diag([-1.0, -1.0, 1.0])
_HEADER_MAX_BYTES = 1 << 16
# bytes per pixel of the MetaImage element types; anything else is refused before reading
_ELEMENT_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}


class MhaInvalid(ValueError):
    """A ``.mha`` file that breaks the contract before its pixels are read; the message says how."""


Geometry = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]


def itk_geometry(affine: np.ndarray, ndim: int) -> Geometry:
    """(spacing, origin, direction) in ITK's LPS convention for a NIfTI ``affine`` of an ``ndim``-D image.

    A 2D image (a radiograph) keeps the in-plane part of the affine; its third axis is dropped.
    """
    linear = (_LPS @ np.asarray(affine, dtype=float)[:3, :3])[:ndim, :ndim]
    origin = (_LPS @ np.asarray(affine, dtype=float)[:3, 3])[:ndim]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing == 0):
        raise ValueError(f"affine {affine.tolist()} has a zero-length axis; not a voxel grid")
    direction = linear / spacing
    return tuple(spacing.tolist()), tuple(origin.tolist()), tuple(direction.ravel().tolist())


def nifti_affine(spacing, origin, direction) -> np.ndarray:
    """The NIfTI (RAS) 4x4 affine of an ITK (LPS) geometry; the inverse of :func:`itk_geometry`."""
    ndim = len(spacing)
    linear = np.eye(3)
    linear[:ndim, :ndim] = np.asarray(direction, dtype=float).reshape(ndim, ndim) * np.asarray(spacing)
    translation = np.zeros(3)
    translation[:ndim] = origin
    affine = np.eye(4)
    affine[:3, :3] = _LPS @ linear
    affine[:3, 3] = _LPS @ translation
    return affine


def nifti_to_itk(path: str | os.PathLike):
    """The NIfTI image at ``path`` as a ``SimpleITK.Image`` on the same grid (pixel type kept)."""
    import SimpleITK as sitk

    from bench.prepare.nifti import read_volume

    values, _, affine = read_volume(path)  # nibabel's array and affine, inflated by igzip
    ndim = 2 if values.ndim == 3 and values.shape[2] == 1 and _is_planar(affine) else values.ndim
    values = values.reshape(values.shape[:ndim])
    spacing, origin, direction = itk_geometry(affine, ndim)
    converted = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose()))
    converted.SetSpacing(spacing)
    converted.SetOrigin(origin)
    converted.SetDirection(direction)
    return converted


def _is_planar(affine: np.ndarray) -> bool:
    return bool(np.allclose(np.asarray(affine)[:2, 2], 0) and np.allclose(np.asarray(affine)[2, :2], 0))


def write_mha(image, path: Path) -> None:
    """Write a ``SimpleITK.Image`` as an uncompressed ``.mha`` (faster to read than to inflate)."""
    import SimpleITK as sitk

    sitk.WriteImage(image, str(path), useCompression=False)


def itk_to_nifti(image):
    """A ``SimpleITK.Image`` as a ``nibabel.Nifti1Image`` on the same grid, pixel type kept."""
    import nibabel as nib
    import SimpleITK as sitk

    # (z, y, x) in C order, transposed: (x, y, z) in Fortran order, the order NIfTI stores, no copy
    values = sitk.GetArrayFromImage(image).transpose()
    affine = nifti_affine(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    converted = nib.Nifti1Image(values, affine)
    converted.header.set_xyzt_units("mm")
    return converted


def mha_header(data: bytes) -> tuple[dict[str, str], int]:
    """The ``key = value`` fields of a MetaImage header, up to and including ``ElementDataFile``,
    and the offset of the first byte after that line (where ``LOCAL`` pixels start).

    Raises
    ------
    MhaInvalid
        No ``ElementDataFile`` within the first 64 KiB, or a header line without ``=``.
    """
    fields: dict[str, str] = {}
    position = 0
    while position < min(len(data), _HEADER_MAX_BYTES):
        end = data.find(b"\n", position)
        if end < 0:
            break
        line = data[position:end].decode("latin-1").strip()
        position = end + 1
        if not line:
            continue
        key, separator, value = line.partition("=")
        if not separator:
            raise MhaInvalid(f"not a MetaImage (.mha) header: line {line[:60]!r} is not 'Key = Value'")
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            return fields, position
    raise MhaInvalid("no ElementDataFile in the first 64 KiB; not a MetaImage (.mha) file")


def _numbers(fields: dict[str, str], names: tuple[str, ...], count: int) -> list[float] | None:
    """The first of ``names`` present, as ``count`` finite numbers; None when none is present."""
    for name in names:
        if name in fields:
            try:
                values = [float(word) for word in fields[name].split()]
            except ValueError:
                values = []
            if len(values) != count or not all(np.isfinite(values)):
                raise MhaInvalid(f"{name} {fields[name][:60]!r} is not {count} finite numbers")
            return values
    return None


def _flag(fields: dict[str, str], names: tuple[str, ...], default: bool) -> bool:
    for name in names:
        if name in fields:
            if fields[name].lower() not in ("true", "false"):
                raise MhaInvalid(f"{name} {fields[name][:60]!r} is not True or False")
            return fields[name].lower() == "true"
    return default


def clean_header(fields: dict[str, str], ndim: int) -> bytes:
    """A MetaImage header written here from the checked fields of a submission's header.

    Only what places and decodes the pixels is kept (size, element type, byte order,
    compression, spacing, offset, direction), every value re-written from the numbers parsed
    out of it; names, comments and every other field are dropped.

    Raises
    ------
    MhaInvalid
        ASCII pixel data, a ``HeaderSize``, or a geometry field that is not the right count of
        finite numbers.
    """
    if not _flag(fields, ("BinaryData",), True):
        raise MhaInvalid("BinaryData = False (pixels written as text); write binary pixels")
    if "HeaderSize" in fields:
        raise MhaInvalid("HeaderSize is set; LOCAL pixels must follow the header directly")
    lines = [("ObjectType", "Image"), ("NDims", str(ndim)), ("BinaryData", "True"),
             ("BinaryDataByteOrderMSB",
              str(_flag(fields, ("BinaryDataByteOrderMSB", "ElementByteOrderMSB"), False)))]
    compressed = _flag(fields, ("CompressedData",), False)
    lines.append(("CompressedData", str(compressed)))
    if compressed and "CompressedDataSize" in fields:
        (size,) = _numbers(fields, ("CompressedDataSize",), 1)
        lines.append(("CompressedDataSize", str(int(size))))
    geometry = (("TransformMatrix", ("TransformMatrix", "Rotation", "Orientation"), ndim * ndim),
                ("Offset", ("Offset", "Position", "Origin"), ndim),
                ("ElementSpacing", ("ElementSpacing",), ndim))
    for key, names, count in geometry:
        values = _numbers(fields, names, count)
        if values is not None:
            lines.append((key, " ".join(repr(value) for value in values)))
    lines += [("DimSize", fields["DimSize"]), ("ElementType", fields["ElementType"]),
              ("ElementDataFile", "LOCAL")]
    return "".join(f"{key} = {value}\n" for key, value in lines).encode("ascii")


def read_mha_bytes(data: bytes, *, shape: tuple[int, ...], scratch: Path):
    """Read ``.mha`` bytes a submission wrote into a ``SimpleITK.Image``, checked before the pixels.

    ``shape`` is the expected size ``(i, j, k)``; the pixels must be in the file itself
    (``ElementDataFile = LOCAL``), one channel of a MetaImage element type. The bytes are
    written to a private file under ``scratch`` for SimpleITK and removed after.

    Raises
    ------
    MhaInvalid
        With the reason: not a MetaImage, pixels in another file, wrong dimensions or size,
        several channels, an unknown element type, or SimpleITK cannot read it.
    """
    import SimpleITK as sitk

    fields, pixels_at = mha_header(data)
    if fields.get("ObjectType", "Image") != "Image":
        raise MhaInvalid(f"ObjectType is {fields['ObjectType']!r}, not Image")
    if fields["ElementDataFile"] != "LOCAL":
        raise MhaInvalid(
            f"ElementDataFile is {fields['ElementDataFile'][:60]!r}; the pixels must be in the .mha "
            "itself (LOCAL), another file is never read"
        )
    try:
        size = tuple(int(n) for n in fields.get("DimSize", "").split())
        channels = int(fields.get("ElementNumberOfChannels", "1"))
    except ValueError as error:
        raise MhaInvalid(f"DimSize {fields.get('DimSize')!r} is not a list of integers") from error
    if size != tuple(shape):
        raise MhaInvalid(f"size {size} differs from the input image's {tuple(shape)}")
    if channels != 1:
        raise MhaInvalid(f"{channels} channels; a mask has one")
    if fields.get("ElementType") not in _ELEMENT_BYTES:
        raise MhaInvalid(f"ElementType {fields.get('ElementType')!r} is not a MetaImage pixel type")
    fields["DimSize"] = " ".join(str(n) for n in size)
    header = clean_header(fields, len(size))
    descriptor, name = tempfile.mkstemp(dir=scratch, suffix=".mha")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(header)
            handle.write(memoryview(data)[pixels_at:])
        reader = sitk.ImageFileReader()
        reader.SetImageIO("MetaImageIO")
        reader.SetFileName(name)
        try:
            return reader.Execute()
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise MhaInvalid(f"SimpleITK cannot read it ({reason})") from error
    finally:
        os.unlink(name)
