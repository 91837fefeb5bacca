"""PID 1 leaks a worker: start a busy detached worker, then PTRACE_TRACEME and stop itself.

Without an init and with ptrace allowed, the runtime reported an exit while the worker kept
running on the host after the container was removed. The worker's command line carries the
token the test wrote into cases.json, so the test can look for it among the host's processes.
"""

import ctypes
import os
import signal
import subprocess
import sys

from common import extra

token = extra("token")
worker = "import os, time\nos.setsid()\nwhile True: pass\n"
subprocess.Popen([sys.executable, "-c", worker, token], start_new_session=True)
libc = ctypes.CDLL(None, use_errno=True)
answer = libc.ptrace(0, 0, None, None)  # PTRACE_TRACEME
print(f"traceme: {'refused' if answer == -1 else 'ALLOWED'} (errno {ctypes.get_errno()})", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
print("traceme: continued", flush=True)
