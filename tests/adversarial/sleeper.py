"""Writes predictions for half the cases, then sleeps far past any timeout."""

import time

from common import cases, write_valid_predictions

ids = [c["case_id"] for c in cases()]
write_valid_predictions(ids[: len(ids) // 2])
print("sleeper: wrote half, sleeping", flush=True)
time.sleep(3600)
