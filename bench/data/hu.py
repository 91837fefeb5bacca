"""CT stored values as int16 Hounsfield units: the one rounding rule of every CT volume.

Kept apart from :mod:`bench.data.dicom` (which reads the files) so that writing and reading
NIfTI (:mod:`bench.prepare.nifti`) needs numpy alone.
"""

import numpy as np

INT16_RANGE = (np.iinfo(np.int16).min, np.iinfo(np.int16).max)


def hu_into(values: np.ndarray, out: np.ndarray, slope: float = 1.0, intercept: float = 0.0) -> None:
    """Write ``values x slope + intercept`` rounded to the nearest integer and clipped to the int16
    range into the int16 array ``out``: the one rule that turns stored values (or HU) into the int16
    HU of a volume, without a float temporary the size of the volume.

    Integer values of at most 16 bits with slope 1 and a whole intercept are added in int32, exactly;
    anything else is computed as float32 (value x float32(slope) + float32(intercept), then rounded
    half to even), one slice (first axis) at a time. The two agree wherever both apply.
    """
    whole = slope == 1.0 and float(intercept).is_integer() and abs(intercept) < 2 ** 24
    if values.dtype.kind in "iu" and values.dtype.itemsize <= 2 and whole:
        shift = int(intercept)
        lowest, highest = INT16_RANGE
        for k in range(values.shape[0]):
            stored = values[k]
            low, high = int(stored.min()), int(stored.max())
            if lowest <= min(low + shift, shift) and max(high + shift, high, shift) <= highest:
                # every value and every sum fits int16: added there, which is exact and several times faster
                np.add(stored.astype(np.int16, copy=False), np.int16(shift), out=out[k])
                continue
            level = stored.astype(np.int32)
            level += shift
            out[k] = np.clip(level, *INT16_RANGE, out=level)
        return
    for k in range(values.shape[0]):
        level = values[k].astype(np.float32)
        if slope != 1.0:
            level *= np.float32(slope)
        if intercept != 0.0:
            level += np.float32(intercept)
        out[k] = np.clip(np.rint(level, out=level), *INT16_RANGE, out=level)
