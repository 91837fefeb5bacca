"""Write as much as possible everywhere it might be writable: to hold host RAM or disk."""

import os

from common import OUTPUT, cases, write_valid_predictions

CHUNK = b"\0" * (1 << 20)
for folder in ("/", "/dev", "/dev/shm", "/tmp", os.environ.get("HOME", "/tmp"), "/submission", "/input",
               "/usr", "/var/tmp", "/run", "/etc"):
    written = 0
    try:
        with open(os.path.join(folder, ".fill"), "wb") as handle:
            while written < 512 << 20:
                handle.write(CHUNK)
                handle.flush()
                written += len(CHUNK)
    except OSError as error:
        reason = error.strerror
    else:
        reason = "no limit reached"
    print(f"fill {folder}: {written >> 20} MiB ({reason})", flush=True)
    try:
        os.unlink(os.path.join(folder, ".fill"))
    except OSError:
        pass
print(f"uid {os.getuid()} gid {os.getgid()}", flush=True)
with open("/proc/self/uid_map") as handle:
    print("uid_map " + " ".join(handle.read().split()), flush=True)
(OUTPUT / "owner-probe").write_text("x")
write_valid_predictions(c["case_id"] for c in cases())
