"""lstm_native for PyTorch (placeholder docstring, completed below)."""

from . import functional
