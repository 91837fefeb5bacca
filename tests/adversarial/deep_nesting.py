"""Valid predictions, plus 1,500 nested folders (past Python's recursion limit and PATH_MAX)."""

import os

from common import OUTPUT, cases, write_valid_predictions

write_valid_predictions([case["case_id"] for case in cases()])
descriptor = os.open(OUTPUT, os.O_RDONLY | os.O_DIRECTORY)
for _ in range(1500):
    os.mkdir("nest", dir_fd=descriptor)
    child = os.open("nest", os.O_RDONLY | os.O_DIRECTORY, dir_fd=descriptor)
    os.close(descriptor)
    descriptor = child
os.close(os.open("bottom.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=descriptor))
print("deep-nesting: 1500 levels", flush=True)
