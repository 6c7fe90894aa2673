"""Shared fixtures: where ../shared/data is (tests that need it skip with a reason), and an isolated
data folder so tests never write into the user's cache. Also makes TensorFlow wait for torchvision (below)."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

import pytest


class _TorchvisionBeforeTensorflow(importlib.abc.MetaPathFinder):
    """Import torchvision (when installed) just before TensorFlow is first imported, then step aside.

    One test session runs PyTorch and TensorFlow tests in one process. torchvision imported *after*
    TensorFlow loads triton through ``torch._dynamo`` and crashes the process (segmentation fault), so
    ``pytest tests/test_train_tf.py tests/test_workshop.py`` died while the whole suite, whose earlier files
    happen to import torchvision first, passed. Sessions that never import TensorFlow pay nothing.
    Notebooks are unaffected: each runs in its own kernel with one framework.
    """

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201 (importlib's protocol)
        if name == "tensorflow":
            sys.meta_path.remove(self)
            if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is not None:
                import torchvision  # noqa: F401
        return None


if "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _TorchvisionBeforeTensorflow())

ROOT = Path(__file__).resolve().parents[1]
#: Small real subsets for development; see ../shared/data/README.md. Override with MEDIMG_SHARED_DATA.
SHARED_DATA = Path(os.environ.get("MEDIMG_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Point MEDIMG_DATA_DIR at a per-session temporary folder for every test."""
    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path_factory.getbasetemp() / "medimg-data"))


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri():
    """Undo MLFLOW_TRACKING_URI after each test: ``mlflow.set_tracking_uri`` exports it, and notebook kernels
    started later in the same pytest run (nbval) would inherit a temporary store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture
def shared_data():
    """Return a function giving a sub-folder of ../shared/data, skipping the test when it is absent."""

    def get(*parts: str) -> Path:
        path = SHARED_DATA.joinpath(*parts)
        if not path.exists():
            pytest.skip(f"real data not available: {path} is absent (see ../shared/data/README.md)")
        return path

    return get


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh local MLflow store (a fresh data dir), no workspace, no MLflow URI override, cwd in tmp; yields its URI."""
    import mlflow

    from helpers import tracking
    from helpers.azure import ENV_VARS

    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path / "data"))
    for name in (*ENV_VARS, "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(tracking.ALLOW_FILE_STORE_ENV, raising=False)  # the local store is SQLite, not the file store
    monkeypatch.chdir(tmp_path)

    def no_credential(*args, **kwargs):
        raise AssertionError("DefaultAzureCredential must not be created in tests")

    monkeypatch.setattr("azure.identity.DefaultAzureCredential", no_credential)
    uri = tracking.tracking_uri("local")
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread (restored after): tiny batches gain nothing from two, and when
    another job shares the CPU, OpenMP threads waiting on each other made a file 3x slower (47 s vs 14 s).
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
