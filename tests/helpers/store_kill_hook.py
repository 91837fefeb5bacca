"""`python -m tests.store_kill_hook MARKER <bench args>`: the real `bench` CLI, with the store's
final write (receipt.json) held for two minutes after writing MARKER, so that a test can kill
the process at a known point midway through storing a result."""

import sys
import time
from pathlib import Path

import bench.store

_marker = Path(sys.argv.pop(1))
_write_json = bench.store.write_json


def _held_write_json(path, obj):
    if Path(path).name == "receipt.json":
        _marker.write_text(str(Path(path).parent))
        time.sleep(120)
    return _write_json(path, obj)


bench.store.write_json = _held_write_json

if __name__ == "__main__":
    from bench.cli import main

    main()
