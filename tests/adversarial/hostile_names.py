"""Outputs whose names and values are not UTF-8, hold terminal escapes or rich markup.

Case 0's probability is ``[/x]`` (markup in a reason), a row names the case id
``[/x]<ESC>]8;;...`` (markup and an OSC hyperlink in a rejected path), and stray files are
named with non-UTF-8 bytes, screen-clearing escapes and ``[link=...]``; a folder ``[`` holds
``z]`` (the path ``[/z]`` is a closing tag). The other cases are valid.
"""

import os

from common import OUTPUT, cases, write_predictions

ids = [case["case_id"] for case in cases()]
rows = {case_id: ("0.25", "0.75") for case_id in ids}
rows[ids[0]] = ("0.25", "[/x]")
rows["[/x]\x1b]8;;https://example.invalid\x1b\\[link=https://example.invalid]"] = ("0.5", "0.5")
write_predictions(rows)
descriptor = os.open(OUTPUT, os.O_RDONLY | os.O_DIRECTORY)
for name in (b"\xff\xfe-not-utf8", b"\x1b[2J\x1b[31mred", b"[link=https:example.invalid]click[", b"["):
    if name == b"[":
        os.mkdir(name, dir_fd=descriptor)
    else:
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=descriptor))
os.close(os.open(OUTPUT / "[" / "z]", os.O_WRONLY | os.O_CREAT, 0o644))
print("hostile-names: planted", flush=True)
