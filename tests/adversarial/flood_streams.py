"""Print 64 MiB to stdout and to stderr (numbered lines): to fill the host's disk or memory with logs."""

import sys

from common import cases, write_valid_predictions

line = "{:09d} " + "x" * 90 + "\n"
for stream in (sys.stdout, sys.stderr):
    stream.write("FIRST LINE\n")
    for number in range(64 * 1024 * 1024 // 100):
        stream.write(line.format(number))
    stream.write("LAST LINE\n")
    stream.flush()
write_valid_predictions(c["case_id"] for c in cases())
