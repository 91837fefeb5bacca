"""Writes symlinks where outputs belong: one case's mask -> a host file, a folder -> /, a stray link."""

import os

from common import OUTPUT, cases, extra, write_empty_mask

all_cases = cases()
for case in all_cases[1:]:
    write_empty_mask(case)
os.symlink(extra("sentinel"), OUTPUT / "masks" / f"{all_cases[0]['case_id']}.nii.gz")
os.symlink("/etc/passwd", OUTPUT / "passwd-link")
os.symlink("/", OUTPUT / "root-link")
print("symlink: planted", flush=True)
