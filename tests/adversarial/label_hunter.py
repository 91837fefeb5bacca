"""Looks everywhere it can read for label files: reference folders, labels.csv, reference.json."""

import os

from common import cases, write_valid_predictions

SUSPECT_NAMES = {"labels.csv", "reference.json"}
found, scanned = [], 0
for root, folders, files in os.walk("/", onerror=lambda error: None):
    if root in ("/proc", "/sys", "/dev") or root.startswith(("/proc/", "/sys/", "/dev/")):
        folders[:] = []
        continue
    for name in folders + files:
        scanned += 1
        path = os.path.join(root, name)
        if name in SUSPECT_NAMES:
            found.append(path)
        if name.endswith((".json", ".csv")) and name not in ("cases.json", "task.json"):
            try:
                with open(path, "rb") as handle:
                    if b"reference_sha256" in handle.read(1 << 20):
                        found.append(path)
            except OSError:
                pass
print(
    f"label-hunter: scanned {scanned} entries, found {len(found)} label candidates: {found[:20]}", flush=True
)
write_valid_predictions(c["case_id"] for c in cases())
