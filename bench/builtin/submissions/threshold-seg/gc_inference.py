"""threshold-seg as a Grand Challenge algorithm container: one case per run, .mha in and out.

Grand Challenge runs the container once per case with the CT at
/input/images/ct-image/<uuid>.mha (the socket is also listed in /input/inputs.json) and takes
the mask from /output/images/covid-19-lesion-segmentation/*.mha. The segmentation is
predict.segment, unchanged: the voxel array is handed over indexed (x, y, z), as nibabel gives
it to the native entry point, and the mask is written on the input's grid (CopyInformation).
"""

import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from predict import segment

INPUT, OUTPUT = Path("/input"), Path("/output")
INPUT_SOCKET, OUTPUT_SOCKET = "ct-image", "covid-19-lesion-segmentation"


def input_image() -> Path:
    """The one .mha of the CT socket, located through inputs.json as the platform describes it."""
    values = json.loads((INPUT / "inputs.json").read_text())
    socket = next(value for value in values if value["interface"]["slug"] == INPUT_SOCKET)
    (path,) = (INPUT / socket["interface"]["relative_path"]).glob("*.mha")
    return path


def main() -> int:
    image = sitk.ReadImage(str(input_image()))
    # SimpleITK's array is indexed (z, y, x); predict.segment expects (x, y, z)
    hu = sitk.GetArrayFromImage(image).transpose().astype(np.float32)
    mask = segment(hu).astype(np.uint8)
    result = sitk.GetImageFromArray(np.ascontiguousarray(mask.transpose()))
    result.CopyInformation(image)
    folder = OUTPUT / "images" / OUTPUT_SOCKET
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(result, str(folder / "output.mha"), useCompression=True)
    print(f"{int(mask.sum())} lesion voxels", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
