"""ddpm: an experiment framework for diffusion models (DDPM, continuous VP, EDM, flow matching) on
PyTorch Lightning and Hydra."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ddpm")
except PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
    __version__ = "0+unknown"
