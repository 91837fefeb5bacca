"""Tries to change its inputs: overwrite cases.json, add a file, delete an image."""

import os

from common import INPUT, cases, write_valid_predictions

attempts = {
    "overwrite cases.json": lambda: (INPUT / "cases.json").write_text("{}"),
    "create a file": lambda: (INPUT / "planted.txt").write_text("x"),
    "delete an image": lambda: os.remove(INPUT / cases()[0]["image"]),
}
for what, attempt in attempts.items():
    try:
        attempt()
        print(f"write-input: {what}: SUCCEEDED", flush=True)
    except OSError as error:
        print(f"write-input: {what}: refused ({error.strerror})", flush=True)
write_valid_predictions(c["case_id"] for c in cases())
