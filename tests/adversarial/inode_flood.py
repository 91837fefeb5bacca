"""Valid outputs (predictions, or an empty mask per case for a segmentation task), 3,000 nested
folders with a file at the bottom, then empty files until the output refuses more (or two
million of them): the output's entry limit, not the host, stops it."""

import json
import os

from common import INPUT, OUTPUT, cases, write_empty_mask, write_valid_predictions

if json.loads((INPUT / "task.json").read_text())["kind"] == "segmentation":
    for case in cases():
        write_empty_mask(case)
else:
    write_valid_predictions([case["case_id"] for case in cases()])
descriptor = os.open(OUTPUT, os.O_RDONLY | os.O_DIRECTORY)
levels = 0
try:
    while levels < 3000:
        os.mkdir("d", dir_fd=descriptor)
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=descriptor)
        os.close(descriptor)
        descriptor = child
        levels += 1
    os.close(os.open("bottom.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=descriptor))
except OSError as error:
    print(f"inode-flood: nesting stopped at level {levels}: {error.strerror}", flush=True)
os.close(descriptor)
flat = os.open(OUTPUT, os.O_RDONLY | os.O_DIRECTORY)
created = 0
stopped = "none"
try:
    os.mkdir("flood", dir_fd=flat)
    folder = os.open("flood", os.O_RDONLY | os.O_DIRECTORY, dir_fd=flat)
    while created < 2_000_000:
        os.close(os.open(f"f{created}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=folder))
        created += 1
except OSError as error:
    stopped = error.strerror
print(f"inode-flood: {levels} levels, {created} empty files, stopped by: {stopped}", flush=True)
