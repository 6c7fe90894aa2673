"""helpers.config: data folder, quick setting, seeding, device choice, versions."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import config


def test_data_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path / "here"))
    assert config.data_dir() == tmp_path / "here"
    assert (tmp_path / "here").is_dir()


def test_data_dir_defaults_to_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDIMG_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.data_dir(create=False) == tmp_path / "xdg" / "medimg-tutorials"


def test_cache_dir_is_inside_data_dir_and_rejects_escapes(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path))
    assert config.cache_dir("downloads") == tmp_path / "downloads"
    for bad in ("../elsewhere", "/abs", ""):
        with pytest.raises(ValueError):
            config.cache_dir(bad)


@pytest.mark.parametrize("raw,expected", [("1", True), ("true", True), ("0", False), ("", False), ("no", False)])
def test_is_quick_reads_env(monkeypatch, raw, expected):
    monkeypatch.setenv("MEDIMG_QUICK", raw)
    assert config.is_quick() is expected


def test_is_quick_override_wins_and_bad_values_are_explained(monkeypatch):
    monkeypatch.setenv("MEDIMG_QUICK", "1")
    assert config.is_quick(False) is False
    monkeypatch.setenv("MEDIMG_QUICK", "maybe")
    with pytest.raises(ValueError, match="use 1 .quick. or 0"):
        config.is_quick()


def test_seed_everything_makes_random_and_numpy_repeat():
    seeded = config.seed_everything(123)
    a = (random.random(), np.random.rand())
    config.seed_everything(123)
    b = (random.random(), np.random.rand())
    assert a == b
    assert seeded[:2] == ["random", "numpy"]


def test_seed_everything_does_not_import_frameworks():
    code = ("import sys, helpers; s = helpers.seed_everything(0); "
            "print('torch' in sys.modules, 'tensorflow' in sys.modules, s)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False ['random', 'numpy']"


def test_seed_everything_seeds_torch_when_imported():
    torch = pytest.importorskip("torch")
    assert "torch" in config.seed_everything(7)
    a = torch.rand(3)
    config.seed_everything(7)
    assert torch.equal(a, torch.rand(3))


def test_seed_everything_seeds_keras_weight_initialisation_in_a_fresh_process():
    pytest.importorskip("keras")
    code = ("import torch, keras, helpers; import numpy as np; kernels = []\n"
            "for _ in range(2):\n"
            "    seeded = helpers.seed_everything(3); layer = keras.layers.Dense(2); layer.build((None, 4))\n"
            "    kernels.append(layer.kernel.numpy())\n"
            "print('keras' in seeded, bool(np.array_equal(*kernels)))")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip().splitlines()[-1] == "True True"


def test_get_device_on_cpu_machine_and_bad_preference():
    pytest.importorskip("torch")
    device = config.get_device()
    assert device in {"cuda", "mps", "cpu"}
    assert config.get_device("cpu") == "cpu"
    with pytest.raises(RuntimeError, match="not available"):
        config.get_device("tpu")


def test_print_versions_prints_the_report(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MEDIMG_QUICK", "1")
    assert config.print_versions() is None  # a notebook's last line: nothing echoed twice
    out = capsys.readouterr().out
    report = config.versions_report()
    assert report["numpy"] == np.__version__
    assert report["quick setting"] == "True"
    # the key column is as wide as the longest key, which depends on the frameworks already imported
    assert re.search(rf"^numpy +{re.escape(np.__version__)}$", out, re.M) and re.search(r"^quick setting +True$", out, re.M)
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))


def testdisplay_path_hides_home(monkeypatch):
    home = Path.home()
    assert config.display_path(home / "a" / "b") == "~/a/b"


def test_is_headless_from_env_or_outside_a_kernel(monkeypatch):
    monkeypatch.setenv("MEDIMG_HEADLESS", "1")
    assert config.is_headless()
    monkeypatch.delenv("MEDIMG_HEADLESS")
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert config.is_headless()  # plain python: nobody to show a widget to
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert not config.is_headless()
