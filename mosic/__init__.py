"""Mosic: a minimalist, fast, async audio streaming backend."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mosic")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
