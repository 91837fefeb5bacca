"""Make a nested user namespace (to become root in it), and any other new namespace or mount."""

import ctypes
import shutil
import subprocess

from common import cases, write_valid_predictions

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x00020000, 0x40000000
ATTEMPTS = (("unshare user", CLONE_NEWUSER), ("unshare mount", CLONE_NEWNS), ("unshare net", CLONE_NEWNET))
for name, flag in ATTEMPTS:
    answer = libc.unshare(flag)
    print(f"{name}: {'refused' if answer == -1 else 'ALLOWED'} (errno {ctypes.get_errno()})", flush=True)
if shutil.which("unshare"):
    done = subprocess.run(["unshare", "-Ur", "id", "-u"], capture_output=True, text=True)
    print(f"unshare -Ur: {'refused' if done.returncode else 'ALLOWED as ' + done.stdout.strip()}", flush=True)
answer = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
print(f"mount: {'refused' if answer == -1 else 'ALLOWED'}", flush=True)
write_valid_predictions(c["case_id"] for c in cases())
