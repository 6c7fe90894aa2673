"""Shared helpers for the medical imaging AI tutorial collection.

``import helpers`` is light on purpose: it imports neither torch nor TensorFlow. Framework code
lives in modules that import their own framework (for example ``helpers.train_torch``), so a
notebook pays only for what it uses.
"""

from __future__ import annotations

__version__ = "0.1.0"

from helpers import config, errors  # noqa: E402  (light modules only)
from helpers.config import print_versions, seed_everything  # noqa: E402

__all__ = ["__version__", "config", "errors", "print_versions", "seed_everything"]
