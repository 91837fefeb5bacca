"""Masks as plain (uncompressed) NIfTI-1 bytes under the .nii.gz names the contract asks for."""

import nibabel as nib
import numpy as np
from common import INPUT, OUTPUT, cases

(OUTPUT / "masks").mkdir(exist_ok=True)
for case in cases():
    image = nib.load(INPUT / case["image"])
    mask = nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine)
    (OUTPUT / "masks" / f"{case['case_id']}.nii.gz").write_bytes(mask.to_bytes())
print("plain-nifti: written", flush=True)
