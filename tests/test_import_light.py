"""`import helpers` must stay light: no torch, no TensorFlow (framework code imports its own framework)."""

from __future__ import annotations

import subprocess
import sys

LIGHT_MODULES = ["helpers", "helpers.config", "helpers.errors", "helpers.viz", "helpers.contours",
                 "helpers.nbtools", "helpers.dicom", "helpers.datasets", "helpers.deid", "helpers.metrics",
                 "helpers.evalplots", "helpers.monitoring", "helpers.modelcard", "helpers.labels"]


def test_import_helpers_leaves_frameworks_out():
    code = (
        "import sys, importlib\n"
        f"for m in {LIGHT_MODULES!r}: importlib.import_module(m)\n"
        "heavy = sorted(m for m in ('torch', 'tensorflow', 'keras', 'fastai', 'torchvision') if m in sys.modules)\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none", f"importing helpers pulled in: {out.stdout.strip()}"
