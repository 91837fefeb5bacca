"""Leave a daemon behind: double fork, setsid, busy loop; the command itself exits 0 at once."""

import subprocess
import sys

from common import cases, extra, write_valid_predictions

daemon = "import os, time\nos.setsid()\nif os.fork(): os._exit(0)\nwhile True: pass\n"
subprocess.Popen([sys.executable, "-c", daemon, extra("token")], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
write_valid_predictions(c["case_id"] for c in cases())
print("daemon started", flush=True)
