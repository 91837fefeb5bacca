"""Attach to PID 1 (the sandbox's or container's init) to stop it and hang the run, then to a sibling."""

import ctypes
import os
import time

from common import cases, write_valid_predictions

libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
sibling = os.fork()
if sibling == 0:
    time.sleep(30)
    os._exit(0)
for name, request, pid in (("attach init", PTRACE_ATTACH, 1), ("seize init", PTRACE_SEIZE, 1),
                           ("attach sibling", PTRACE_ATTACH, sibling)):
    answer = libc.ptrace(request, pid, None, None)
    print(f"{name}: {'refused' if answer == -1 else 'ALLOWED'} (errno {ctypes.get_errno()})", flush=True)
buffer = ctypes.create_string_buffer(64)
local = (ctypes.c_void_p * 2)(ctypes.addressof(buffer), 64)
answer = libc.process_vm_readv(sibling, local, 1, local, 1, 0)
print(f"process_vm_readv: {'refused' if answer == -1 else 'ALLOWED'}", flush=True)
os.kill(sibling, 9)
os.waitpid(sibling, 0)
write_valid_predictions(c["case_id"] for c in cases())
