"""Declares VOLUME /scratch (world-writable in its image) and floods it: a volume is a host folder."""

from common import cases, write_valid_predictions

try:
    with open("/scratch/flood.bin", "wb") as handle:
        for _ in range(64):
            handle.write(b"\0" * (1 << 20))
    print("volume: wrote 64 MiB", flush=True)
except OSError as error:
    print(f"volume: refused ({error.strerror})", flush=True)
write_valid_predictions([case["case_id"] for case in cases()])
