"""ricord-bench: a reproducible evaluation harness for the RSNA MIDRC-RICORD collections."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ricord-bench")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.1.0+src"
