"""Allocates and touches far more memory than its limit before writing anything."""

import numpy as np

blocks = []
for step in range(64):
    blocks.append(np.ones(16 * 1024 * 1024, dtype=np.uint8))  # 16 MiB each, touched
    print(f"oom: {16 * (step + 1)} MiB allocated", flush=True)
print("oom: survived", flush=True)
