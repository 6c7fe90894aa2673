"""Shared helpers for the medical imaging AI tutorial collection.

``import helpers`` is light on purpose: it imports neither torch nor TensorFlow. Framework code
lives in modules that import their own framework (for example ``helpers.train_torch``), so a
notebook pays only for what it uses.

Modules, by concern (data flows down this list, never up):

- ``config``, ``errors``: settings, devices, versions; every exception, named for what went wrong.
- ``dicom``, ``contours``, ``deid``, ``datasets`` (``generated``, ``registry``, ``download``, ``real``,
  ``splits``, ``tasks``), ``knee``, ``labels`` (CSV, COCO, Azure ML JSONL): files to arrays and tables.
- ``train_torch``, ``train_fastai``, ``train_tf``, ``segmentation``, ``workshop``: training per framework (each
  imports its own).
- ``metrics``, ``evalplots``, ``viz``, ``explain`` (Grad-CAM, captum, sanity and pointing checks): numbers and figures.
- ``serving`` (request checks, predictor, ONNX, local inference server), ``monitoring`` (input drift),
  ``modelcard``: using a trained model.
- ``tracking`` (MLflow), ``azure`` (Azure ML v2 specs), ``nbtools`` (notebook template and runner).
"""

from __future__ import annotations

__version__ = "0.1.0"

from helpers import config, errors  # noqa: E402  (light modules only)
from helpers.config import print_versions, seed_everything  # noqa: E402

__all__ = ["__version__", "config", "errors", "print_versions", "seed_everything"]
