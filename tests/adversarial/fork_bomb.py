"""A fork bomb for three seconds: every process forks as fast as it can; the pids limit must stop it."""

import os
import time

from common import cases, write_valid_predictions

deadline = time.monotonic() + 3
parent = os.getpid()
children = refused = 0
while time.monotonic() < deadline:
    try:
        pid = os.fork()
    except BlockingIOError:
        refused += 1
        continue
    if pid == 0:
        children = refused = 0  # the child bombs on
    else:
        children += 1
if os.getpid() != parent:
    os._exit(0)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
print(f"fork-bomb: {children} children forked, {refused} forks refused", flush=True)
write_valid_predictions(c["case_id"] for c in cases())
