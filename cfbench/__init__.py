"""cfbench: how little data do you need? Data distillation vs sampling for collaborative filtering."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("cfbench")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"
