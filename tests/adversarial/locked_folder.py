"""Valid predictions, then a folder of mode 000 in /output: a harness that is not root may not open it."""

import os

from common import OUTPUT, cases, write_valid_predictions

write_valid_predictions([case["case_id"] for case in cases()])
(OUTPUT / "locked" / "inner").mkdir(parents=True)
(OUTPUT / "locked" / "inner" / "kept-away").write_text("the harness cannot read or delete this\n")
os.chmod(OUTPUT / "locked", 0o000)
print("locked", flush=True)
