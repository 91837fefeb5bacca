"""The submission's stdout and stderr, capped while they stream: the first and last halves kept.

A submission may print without end; what it prints is read as it comes (from a pipe, or
from the engine's attach stream) into a :class:`CappedLog` that holds at most ``cap_bytes``:
the first half, and a ring of the last half. Nothing is written to the host while the run
goes on, and the saved log says how many bytes were cut in between.
"""

import threading
from collections import deque
from collections.abc import Iterable
from typing import BinaryIO

LOG_CAP_BYTES = 1 << 20


class CappedLog:
    """The first and last ``cap_bytes // 2`` bytes of a stream, and how many bytes it had."""

    def __init__(self, cap_bytes: int = LOG_CAP_BYTES):
        self.half = cap_bytes // 2
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_bytes = 0
        self.total = 0
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        """Add the next bytes of the stream."""
        with self._lock:
            self.total += len(chunk)
            room = self.half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail.append(chunk[-self.half :])
                self.tail_bytes += len(self.tail[-1])
                while self.tail_bytes - len(self.tail[0]) >= self.half:
                    self.tail_bytes -= len(self.tail.popleft())

    def value(self) -> bytes:
        """The log as saved: whole when it fits, else both halves around a marker."""
        with self._lock:
            tail = b"".join(self.tail)[-self.half :] if self.tail else b""
            cut = self.total - len(self.head) - len(tail)
            if cut == 0:
                return bytes(self.head) + tail
            marker = f"\n[... {cut} bytes cut by ricord-bench ...]\n".encode()
            return bytes(self.head) + marker + tail


def drain(source: BinaryIO, log: CappedLog) -> threading.Thread:
    """Read ``source`` to its end into ``log`` on a daemon thread (started; join it)."""

    def pump():
        with source:
            while chunk := source.read1(1 << 16):
                log.feed(chunk)

    thread = threading.Thread(target=pump, name="bench-log-drain", daemon=True)
    thread.start()
    return thread


def drain_frames(frames: Iterable[tuple[bytes | None, bytes | None]], stdout: CappedLog,
                 stderr: CappedLog) -> threading.Thread:
    """Feed demultiplexed ``(stdout, stderr)`` frames (the engine's attach stream) on a daemon thread."""

    def pump():
        for out, err in frames:
            if out:
                stdout.feed(out)
            if err:
                stderr.feed(err)

    thread = threading.Thread(target=pump, name="bench-log-attach", daemon=True)
    thread.start()
    return thread
