"""Lessons in any order (issue 19, item 5): a registered data set version keeps naming the files it was registered
with while later lessons regenerate the shared generated folder in other settings, and the training job's command
runs on its folder afterwards. About 2 minutes on 2 CPU cores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import nbtools, tracking

pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parents[1]
REGISTER = ROOT / "01_load_data" / "03_register_dataset.ipynb"
CHEST = ROOT / "03_train_classifier" / "01_chest_xray_pytorch.ipynb"


def _run(path: Path, out: Path, quick: bool, **parameters) -> nbtools.RunResult:
    result = nbtools.run_notebook(path, ROOT, out, quick=quick, parameters=parameters)
    assert result.status == "ok", result.error
    if not parameters:  # the claims state what the default data gives (generated chest films score lower: not checked)
        assert result.claims_held, nbtools.claims_text(result.claims)
    return result


@pytest.mark.slow
def test_a_registered_version_survives_lessons_run_in_another_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDIMG_HEADLESS", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    out = tmp_path / "out"
    _run(CHEST, out / "a", quick=True, DATA_SOURCE="generated", FOLDS=2)  # writes generated/chest_xray: 100 x 2
    _run(REGISTER, out / "b", quick=True)  # regenerates it (40 x 3) and registers version 1
    v1 = tracking.registered_folder("chest-xray", 1)
    files_v1 = (v1 / tracking.FILES_LIST).read_text()
    _run(REGISTER, out / "c", quick=False)  # another setting: 200 x 3 in the same folder, version 2
    _run(CHEST, out / "d", quick=True, DATA_SOURCE="generated", FOLDS=2)  # and back to 100 x 2
    versions = tracking.list_dataset_versions("chest-xray")
    assert versions.version.tolist() == [1, 2] and versions.rows.tolist() == [120, 600]
    assert tracking.registered_folder("chest-xray", 1) == v1  # every file hash-checked: still as registered
    assert (v1 / tracking.FILES_LIST).read_text() == files_v1
    # the command the lessons print for the training job, on version 1's folder (one epoch: it must run, not excel)
    job = subprocess.run([sys.executable, "-m", "helpers.train_torch", "--data", str(v1), "--label", "pneumonia",
                          "--epochs", "1", "--out", str(tmp_path / "job")], capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stderr[-2000:]
    assert '"epochs_run": 1' in job.stdout
