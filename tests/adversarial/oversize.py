"""One mask far over its size cap, then floods /output until the filesystem refuses."""

import os

from common import OUTPUT, cases, write_empty_mask

all_cases = cases()
for case in all_cases[1:]:
    write_empty_mask(case)
with open(OUTPUT / "masks" / f"{all_cases[0]['case_id']}.nii.gz", "wb") as handle:
    handle.write(os.urandom(2 * 1024 * 1024))
written = 0
try:
    with open(OUTPUT / "flood.bin", "wb") as handle:
        while written < 64 * 1024 * 1024:
            handle.write(b"\0" * (1 << 20))
            handle.flush()
            written += 1 << 20
    print(f"oversize: flood wrote {written} bytes", flush=True)
except OSError as error:
    print(f"oversize: flood stopped after {written} bytes ({error.strerror})", flush=True)
