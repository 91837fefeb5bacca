"""A Grand Challenge container: a valid probability, and a file whose name is not UTF-8 and holds
a terminal escape and rich markup. Its rejection was written to run.json unescaped: bench run
crashed (UnicodeEncodeError) and recorded nothing."""

import os

with open("/output/covid-probability.json", "w") as handle:
    handle.write("0.5")
with open(os.path.join(b"/output", b"\xff\xfe\x1b[2J[red]x"), "w") as handle:
    handle.write("not part of the contract")
print("done", flush=True)
