"""The inference server's own environment (serving.server_python): layered over the lesson's environment, so the
server's pins never change the lesson's packages (Colab's), reused while nothing changes, and a clear error when
pip cannot install it. No network: the layered environment installs nothing here, or fails with --no-index."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import serving
from helpers.errors import ServerStartError

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _run(python: Path, code: str) -> str:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_this_environment_is_used_when_it_has_the_server(tmp_path):
    if not serving._has_server(sys.executable):
        pytest.skip("this environment has no inference server (pip install 'medimg-helpers[serve]')")
    assert serving.server_python(tmp_path / "env") == Path(sys.executable)
    assert not (tmp_path / "env").exists()


def test_serve_requirements_come_from_the_serve_extra():
    assert any(r.startswith("azureml-inference-server-http") for r in serving.serve_requirements())


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server") / "env"
    return folder, serving.server_python(folder, requirements=[]) if serving._has_server(sys.executable) else None


def test_layered_environment_sees_the_lesson_packages_from_its_own_prefix(layered):
    folder, python = layered
    if python is None:
        pytest.skip("the layered environment reaches the server through this one, which has none")
    assert python == folder / "bin" / "python"
    info = json.loads(_run(python, "import json, sys, numpy, helpers, azureml_inference_server_http as a; "
                                   "print(json.dumps([sys.prefix, numpy.__version__, a.__file__]))"))
    import numpy

    assert Path(info[0]) == folder
    assert info[1] == numpy.__version__  # the lesson's numpy, not a copy
    assert not info[2].startswith(str(folder))  # the server itself is the lesson environment's here


def test_layered_environment_is_reused_while_nothing_changes(layered):
    folder, python = layered
    if python is None:
        pytest.skip("no inference server in this environment")
    stamp = folder / ".medimg-server-env"
    before = stamp.stat().st_mtime_ns
    assert serving.server_python(folder, requirements=[]) == python
    assert stamp.stat().st_mtime_ns == before


def test_packages_installed_there_shadow_the_lesson_ones_without_touching_them(tmp_path):
    """pip installs into the layered environment only: the lesson's copy of a package stays as it was."""
    wheel_dir = tmp_path / "wheels"
    pkg = tmp_path / "src" / "medimg_probe_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VERSION = 'layered'\n")
    (tmp_path / "src" / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "medimg-probe-pkg"\nversion = "1.0"\n')
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(wheel_dir), str(tmp_path / "src")], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"cannot build a probe wheel here: {built.stderr[-300:]}")
    if not serving._has_server(sys.executable):
        pytest.skip("no inference server in this environment")
    folder = tmp_path / "env"
    python = serving.server_python(folder, requirements=["medimg-probe-pkg"],
                                   pip_args=["--no-index", "--find-links", str(wheel_dir)])
    where = _run(python, "import medimg_probe_pkg as m; print(m.__file__)")
    assert where.startswith(str(folder))
    with pytest.raises(ImportError):
        __import__("medimg_probe_pkg")  # nothing was installed into the lesson's environment


def test_a_failed_install_says_what_to_do_and_is_not_reused(tmp_path):
    folder = tmp_path / "env"
    with pytest.raises(ServerStartError, match=r"(?s)Could not install the inference server.*pip said.*"
                                               r"medimg-helpers\[serve\]"):
        serving.server_python(folder, requirements=["medimg-no-such-package==0"], pip_args=["--no-index"])
    assert not (folder / ".medimg-server-env").exists()
