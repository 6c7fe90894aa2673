"""helpers.colab: reading Colab's package lists, the setup cells, what a resolution changes or adds, and the checks
make test-colab applies to executed notebooks. Hand-made lists and reports; pip itself runs in make test-colab."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import colab, nbtools
from helpers.colab import ColabCheckError

ROOT = Path(__file__).resolve().parents[1]


def test_names_and_versions_compare_as_pip_compares_them():
    assert colab.normalise("Scikit_Learn") == colab.normalise("scikit.learn") == "scikit-learn"
    assert colab.base_version("2.11.0+cpu") == "2.11.0" and colab.base_version("1.6.1") == "1.6.1"


def test_read_freeze_and_constraints_for_pypi(tmp_path):
    path = tmp_path / "freeze.txt"
    path.write_text("# a comment\nPyYAML==6.0.3\ntorch==2.11.0+cpu\nnvidia-nccl-cu13==2.31.2\ntriton==3.6.0\n"
                    "cuda-bindings==12.9.7\nsomething @ file:///x\n\nnumpy==2.1.3  # pinned\n")
    freeze = colab.read_freeze(path)
    assert freeze == {"pyyaml": "6.0.3", "torch": "2.11.0+cpu", "nvidia-nccl-cu13": "2.31.2", "triton": "3.6.0",
                      "cuda-bindings": "12.9.7", "numpy": "2.1.3"}
    # Local labels go (PyPI has torch 2.11.0, not +cpu); torch's CUDA libraries are left to torch.
    assert colab.pypi_constraints(freeze) == ["numpy==2.1.3", "pyyaml==6.0.3", "torch==2.11.0"]


def test_shipped_colab_lists_are_python_313_runtimes():
    for runtime in colab.RUNTIMES:
        freeze = colab.read_freeze(colab.freeze_path(runtime))
        assert len(freeze) > 600
        assert colab.base_version(freeze["torch"]) == "2.11.0" and freeze["ipywidgets"] == "7.7.1"
    with pytest.raises(ValueError, match="runtime"):
        colab.freeze_path("tpu")


GOOD = """import sys
if "google.colab" in sys.modules:
    !pip list --format=freeze | grep -v "^medimg-helpers==" > /tmp/pre.txt
    %pip install -q -c /tmp/pre.txt "{checkout}[torch,explain]"
""".replace("{checkout}", nbtools.COLAB_CHECKOUT)


def test_parse_setup_cell_reads_requirement_extras_and_constraints():
    command = colab.parse_setup_cell(GOOD)
    assert command.extras == ("torch", "explain") and command.constraints == "/tmp/pre.txt"
    assert colab.parse_setup_cell(GOOD.replace("[torch,explain]", "")).extras == ()


@pytest.mark.parametrize("source, words", [
    (GOOD.replace("-c /tmp/pre.txt ", ""), "hold Colab's packages"),
    (GOOD.replace("> /tmp/pre.txt", "> /tmp/other.txt"), "hold Colab's packages"),
    (GOOD.replace("    %pip", "    %pip install x\n    %pip"), "exactly one"),
    (GOOD.replace(f'"{nbtools.COLAB_CHECKOUT}[torch,explain]"', '"medimg-helpers[all] @ git+https://x"'),
     "Colab checkout"),
])
def test_parse_setup_cell_refuses_a_cell_that_could_change_colab(source, words):
    with pytest.raises(ColabCheckError, match=words):
        colab.parse_setup_cell(source)


def test_every_notebook_setup_cell_parses_to_its_listed_extras():
    for path in nbtools.find_notebooks(ROOT):
        rel = path.relative_to(ROOT).as_posix()
        assert colab.notebook_setup(path).extras == nbtools.NOTEBOOK_EXTRAS.get(rel, ()), rel
    assert colab.all_extras(ROOT) == sorted({e for v in nbtools.NOTEBOOK_EXTRAS.values() for e in v})


REPORT = {
    "environment": {"python_version": "3.13", "sys_platform": "linux", "platform_machine": "x86_64",
                    "implementation_name": "cpython", "os_name": "posix", "platform_system": "Linux",
                    "python_full_version": "3.13.0", "platform_python_implementation": "CPython",
                    "platform_release": "", "platform_version": "", "implementation_version": "3.13.0"},
    "install": [
        {"metadata": {"name": "medimg-helpers", "version": "0.1.0", "requires_dist": [
            "numpy>=1.26", 'torch>=2.2; extra == "torch"', 'captum>=0.7; extra == "explain"',
            'medimg-helpers[torch]; extra == "all"', 'tomli; python_version < "3.11"']}},
        {"metadata": {"name": "numpy", "version": "2.1.3", "requires_dist": None}},
        {"metadata": {"name": "torch", "version": "2.11.0", "requires_dist": [
            'nvidia-nccl-cu13==2.28.9; platform_system == "Linux"', "filelock"]}},
        {"metadata": {"name": "filelock", "version": "3.20.0", "requires_dist": []}},
        {"metadata": {"name": "nvidia-nccl-cu13", "version": "2.28.9", "requires_dist": []}},
        {"metadata": {"name": "captum", "version": "0.9.0", "requires_dist": ["numpy"]}},
        {"metadata": {"name": "tomli", "version": "2.0.0", "requires_dist": []}},
    ],
}


def test_closure_follows_extras_and_markers():
    assert colab.closure(REPORT, "medimg-helpers", ()) == {"medimg-helpers": "0.1.0", "numpy": "2.1.3"}
    assert set(colab.closure(REPORT, "medimg-helpers", ("torch",))) == {
        "medimg-helpers", "numpy", "torch", "filelock", "nvidia-nccl-cu13"}
    assert "captum" in colab.closure(REPORT, "medimg-helpers", ("explain",))
    assert "torch" in colab.closure(REPORT, "medimg-helpers", ("all",))  # an extra that names another extra
    assert "tomli" not in colab.closure(REPORT, "medimg-helpers", ("torch", "explain"))  # marker false on 3.13


def test_changes_lists_changed_colab_packages_and_what_is_added():
    freeze = {"numpy": "2.1.3", "torch": "2.11.0+cpu", "nvidia-nccl-cu13": "2.31.2", "protobuf": "5.29.6"}
    installed = {"numpy": "2.1.3", "torch": "2.11.0", "nvidia-nccl-cu13": "2.28.9", "captum": "0.9.0",
                 "protobuf": "7.36.2", "medimg-helpers": "0.1.0"}
    changed, added = colab.changes(installed, freeze)
    assert changed == [("protobuf", "5.29.6", "7.36.2")]  # torch +cpu is torch 2.11.0; CUDA libraries are torch's
    assert added == {"captum": "0.9.0", "medimg-helpers": "0.1.0"}


def _executed(text: str) -> dict:
    return {"cells": [{"cell_type": "code", "source": ["import helpers\n", "helpers.print_versions()"],
                       "outputs": [{"output_type": "stream", "name": "stdout", "text": [text]}]}]}


VERSIONS = ("python         3.13.0\nplatform       Linux x86_64\nnumpy          2.1.3\npandas         2.2.3\n"
            "torch          2.11.0\ntensorflow     2.20.0\nkeras          3.13.2\nfastai         2.8.8\n"
            "quick setting  True\ndata dir       ~/.cache/medimg-tutorials\n")
FREEZE = {"numpy": "2.1.3", "pandas": "2.2.3", "torch": "2.11.0+cpu", "tensorflow": "2.20.0", "keras": "3.13.2",
          "fastai": "2.8.8"}


def test_reported_versions_are_read_from_print_versions_output():
    versions = colab.reported_versions(_executed(VERSIONS))
    assert versions["python"] == "3.13.0" and versions["quick setting"] == "True" and versions["torch"] == "2.11.0"
    assert colab.version_problems(versions, FREEZE) == []


def test_version_problems_catch_the_lock_running_instead_of_colab():
    lock = VERSIONS.replace("3.13.0", "3.11.7").replace("pandas         2.2.3", "pandas         3.1.1")
    problems = colab.version_problems(colab.reported_versions(_executed(lock)), FREEZE)
    assert problems == ["Python 3.11.7 (Colab: 3.13)", "pandas 3.1.1 (Colab: 2.2.3)"]
    missing = colab.version_problems(colab.reported_versions(_executed(VERSIONS.replace("fastai", "x"))), FREEZE)
    assert missing == ["fastai not reported (Colab has 2.8.8)"]
    assert colab.version_problems({}, FREEZE) == ["print_versions() printed nothing"]


def test_pip_is_configured_as_on_colab(monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("PIP_CONSTRAINT", "/etc/x")
    env = colab.pip_env()
    assert "PIP_FIND_LINKS" not in env and "PIP_CONSTRAINT" not in env
    assert env["PIP_CONFIG_FILE"] == __import__("os").devnull


def test_import_guard_hides_what_colab_and_the_setup_cell_do_not_install(tmp_path):
    """The guard the Colab-like kernels load: a module of a distribution outside the allowed list is not found, as
    where it is not installed (import fails, find_spec answers None, so optional imports fall back); allowed and
    standard-library modules import; each refusal is logged."""
    import json
    import subprocess
    import sys

    (tmp_path / "_medimg_colab_guard.py").write_text(colab.IMPORT_GUARD)
    allowed = tmp_path / "allowed.json"
    allowed.write_text(json.dumps(["numpy"]))
    log = tmp_path / "log.txt"
    code = ("import sys, types, importlib.util\nsys.modules['ipykernel.kernelapp'] = types.ModuleType('kernelapp')\n"
            "import _medimg_colab_guard, json, numpy\n"
            "print('find_spec:', importlib.util.find_spec('yaml'))\n"
            "try:\n    import yaml\nexcept ModuleNotFoundError as e:\n    print('refused:', e)\n")
    env = {"PYTHONPATH": str(tmp_path), "MEDIMG_COLAB_ALLOWED": str(allowed), "MEDIMG_IMPORT_LOG": str(log),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "find_spec: None" in out and "refused: No module named 'yaml'" in out
    assert colab.refused_imports(log) == ["yaml"]
    assert colab.refused_imports(tmp_path / "absent.txt") == []


def test_setup_report_names_each_changed_package_per_runtime():
    results = {"01_load_data/01.ipynb": {"cpu": {"extras": [], "changed": [], "added": {"pydicom": "3.0.2"}},
                                         "gpu": {"extras": [], "changed": [], "added": {"pydicom": "3.0.2"}}},
               "05/02.ipynb": {"cpu": {"extras": ["onnx"], "changed": [("protobuf", "5.29.6", "7.36.2")], "added": {}},
                               "gpu": {"extras": ["onnx"], "changed": [], "added": {}}}}
    lines = colab.format_setup_report(results).splitlines()
    assert lines[0].split() == ["notebook", "extras", "changed", "(cpu)", "changed", "(gpu)", "added"]
    assert lines[2].split() == ["01_load_data/01.ipynb", "-", "none", "none", "1"]
    assert lines[3].split() == ["05/02.ipynb", "onnx", "protobuf", "5.29.6->7.36.2", "none", "0"]
