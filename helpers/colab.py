"""Colab as a place the collection runs: Colab's published package lists, what each notebook's setup cell does to
that runtime, and a Colab-like environment that runs every notebook (``make test-colab``).

Command line (what ``make test-colab`` runs, from the repository root)::

    python -m helpers.colab env --python /path/to/python3.13    # build or refresh .venv-colab
    python -m helpers.colab check-setup                         # Colab packages each setup cell would change
    python -m helpers.colab run                                 # every notebook, quick setting, in .venv-colab

The lists are ``requirements/colab/pip-freeze-{cpu,gpu}.txt`` (see the README there). PyPI stands in for Colab's
package sources, which differ in one place: Colab's ``torch==2.11.0+cpu`` / ``+cu128`` wheels come from PyTorch's own
index, while PyPI's ``torch==2.11.0`` is a CUDA 13 build that brings its own ``nvidia-*``, ``cuda-*`` and ``triton``.
So local version labels are dropped from the pins and those CUDA libraries are left unpinned (:data:`CUDA_PINS`):
they belong to torch, which stays at Colab's version, and a setup cell never asks for them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import nbtools

ROOT = Path(__file__).resolve().parents[1]
FREEZE_DIR = Path("requirements") / "colab"
RUNTIMES = ("cpu", "gpu")
#: Colab's pip, from its list; the Colab-like environment uses the same release.
COLAB_PIP = "24.1.2"
#: Pins left out when PyPI stands in for Colab's sources (see the module docstring).
CUDA_PINS = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")
#: Colab packages a setup cell may update, each with the reason it is harmless. Empty: none may change.
ALLOWED_CHANGES: dict[str, str] = {}
#: What the Colab-like environment adds to run notebooks headless and the widget tests (each at Colab's version
#: where Colab has it: ipykernel, ipywidgets, nbformat, nbconvert, nbclient, pytest).
HARNESS = ("papermill", "ipykernel", "ipywidgets", "nbformat", "nbconvert", "pytest")
#: Tests that exercise the widgets (annotation panel, instructor panel, window explorer) and the version report,
#: run in the Colab-like environment under Colab's ipywidgets 7.
WIDGET_TESTS = ("tests/test_annotate.py", "tests/test_viz.py", "tests/test_workshop.py", "tests/test_config.py")
#: Packages whose version every notebook's print_versions() must show at Colab's version.
MUST_REPORT = ("numpy", "pandas", "torch", "tensorflow", "keras", "fastai")


class ColabCheckError(RuntimeError):
    """What makes the Colab run or check fail, said so that a person knows what to change."""


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def base_version(version: str) -> str:
    """``version`` without its local label: ``2.11.0+cpu`` -> ``2.11.0``."""
    return version.split("+", 1)[0]


def read_freeze(path: str | Path) -> dict[str, str]:
    """A ``pip freeze`` file as ``{normalised name: version}`` (comments, blank and URL lines skipped)."""
    found = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and "@" not in line:
            name, version = line.split("==", 1)
            found[normalise(name)] = version.strip()
    return found


def freeze_path(runtime: str, root: Path = ROOT) -> Path:
    """The package list of Colab's ``runtime`` (``"cpu"`` or ``"gpu"``)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    return root / FREEZE_DIR / f"pip-freeze-{runtime}.txt"


def pypi_constraints(freeze: dict[str, str]) -> list[str]:
    """Constraint lines that hold every package of ``freeze`` at its version when installing from PyPI."""
    return [f"{name}=={base_version(v)}" for name, v in sorted(freeze.items()) if not CUDA_PINS.match(name)]


# --- The setup cell ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetupCommand:
    """What a notebook's setup cell asks pip for: the requirement, its extras, and the constraint file (the list of
    packages the runtime has, written by the line before it)."""

    requirement: str
    extras: tuple[str, ...]
    constraints: str | None


def parse_setup_cell(source: str) -> SetupCommand:
    """The :class:`SetupCommand` of a setup cell's source; ``ColabCheckError`` if it installs without holding the
    runtime's packages at their versions."""
    lines = [line.strip() for line in source.splitlines()]
    pip = [line for line in lines if line.startswith("%pip install") or line.startswith("!pip install")]
    if len(pip) != 1:
        raise ColabCheckError(f"a setup cell must hold exactly one `%pip install` line, found {len(pip)}")
    import shlex

    words = shlex.split(pip[0])[2:]
    constraints, requirement = None, None
    i = 0
    while i < len(words):
        if words[i] in ("-c", "--constraint"):
            constraints, i = words[i + 1], i + 2
            continue
        if not words[i].startswith("-"):
            if requirement is not None:
                raise ColabCheckError(f"the setup cell installs more than one requirement: {pip[0]}")
            requirement = words[i]
        i += 1
    if requirement is None or not requirement.startswith(nbtools.COLAB_CHECKOUT):
        raise ColabCheckError(f"the setup cell must install the Colab checkout {nbtools.COLAB_CHECKOUT}: {pip[0]}")
    written = any(re.search(r"pip list --format=freeze.*>\s*" + re.escape(constraints or "\0") + r"\s*$", line)
                  for line in lines)
    if constraints is None or not written:
        raise ColabCheckError("the setup cell must hold Colab's packages at their versions: `pip list --format=freeze "
                              "> FILE` and then `%pip install -c FILE ...` (python -m helpers.nbtools setup writes it)")
    match = re.fullmatch(re.escape(nbtools.COLAB_CHECKOUT) + r"(?:\[([^\]]*)\])?", requirement)
    if match is None:
        raise ColabCheckError(f"cannot read the extras of {requirement!r}")
    extras = tuple(e.strip() for e in (match.group(1) or "").split(",") if e.strip())
    return SetupCommand(requirement, extras, constraints)


def notebook_setup(path: Path) -> SetupCommand:
    """The :class:`SetupCommand` of the notebook at ``path``."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and "google.colab" in src and "pip install" in src:
            return parse_setup_cell(src)
    raise ColabCheckError(f"{path.name} has no setup cell")


def all_extras(root: Path = ROOT) -> list[str]:
    """Every extra some notebook's setup cell installs, sorted."""
    return sorted({e for p in nbtools.find_notebooks(root) for e in notebook_setup(p).extras})


# --- Resolving the setup cells against Colab's lists ----------------------------------------------------------------


def pip_env() -> dict[str, str]:
    """The environment for pip configured as on Colab: no configuration files, no local wheel folders, plain PyPI."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("PIP_") and k not in ("PIP_DEFAULT_TIMEOUT", "PIP_CERT"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    """Run pip of ``python`` quietly, configured as on Colab; ColabCheckError with the end of its output if it fails."""
    command = [str(python), "-m", "pip", *args, "-q"]
    result = subprocess.run(command, env=pip_env(), capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise ColabCheckError(f"pip failed ({' '.join(command[3:5])} ...):\n{tail}")
    return result


def resolve(python: Path, requirements: list[str], constraint_lines: list[str]) -> dict[str, Any]:
    """pip's installation report (``--dry-run --report``) for ``requirements`` under ``constraint_lines``, resolved
    as if nothing were installed. Raises ColabCheckError with pip's message when no resolution exists."""
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("\n".join(constraint_lines) + "\n", encoding="utf-8")
        report = Path(tmp) / "report.json"
        _pip(python, "install", "--dry-run", "--ignore-installed", "--report", str(report), "-c", str(constraints),
             *requirements)
        return json.loads(report.read_text(encoding="utf-8"))


def closure(report: dict[str, Any], name: str, extras: tuple[str, ...]) -> dict[str, str]:
    """The distributions (``{normalised name: version}``) that installing ``name[extras]`` pulls in, read from a
    report that resolved it (alone or with others): its requirements, followed through markers and extras."""
    from packaging.requirements import Requirement

    items = {normalise(i["metadata"]["name"]): i["metadata"] for i in report["install"]}
    environment = dict(report["environment"])
    found: dict[str, str] = {}
    todo = [(normalise(name), frozenset(extras))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        key, want = todo.pop()
        if (key, want) in seen or key not in items:
            continue
        seen.add((key, want))
        meta = items[key]
        found[key] = meta["version"]
        for line in meta.get("requires_dist") or []:
            req = Requirement(line)
            markers = [{**environment, "extra": e} for e in (want or {""})]
            if req.marker is None or any(req.marker.evaluate(m) for m in markers):
                todo.append((normalise(req.name), frozenset(req.extras)))
    return found


def changes(installed: dict[str, str], freeze: dict[str, str]) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """(Colab packages ``installed`` would change: (name, Colab's version, new), packages it adds)."""
    changed, added = [], {}
    for name, version in sorted(installed.items()):
        if name in freeze:
            if base_version(freeze[name]) != base_version(version) and not CUDA_PINS.match(name) \
                    and name not in ALLOWED_CHANGES:
                changed.append((name, freeze[name], version))
        elif not CUDA_PINS.match(name):
            added[name] = version
    return changed, added


def build_wheel(python: Path, root: Path, out: Path) -> Path:
    """The project's wheel, built as pip builds it from the git URL of a setup cell; its path."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("medimg_helpers-*.whl"):
        old.unlink()
    _pip(python, "wheel", "--no-deps", "-w", str(out), str(root))
    wheels = sorted(out.glob("medimg_helpers-*.whl"))
    if len(wheels) != 1:
        raise ColabCheckError(f"building the wheel left {len(wheels)} wheels in {out}")
    return wheels[0]


def check_setup_cells(python: Path, root: Path = ROOT, wheel: Path | None = None) -> dict[str, Any]:
    """For each Colab runtime and notebook: the Colab packages its setup cell would change (must be none) and what it
    adds. Every notebook's requirement is resolved by pip in one run per runtime, held by that runtime's list as the
    setup cell holds it by the live one; a notebook's own set is then read off that resolution."""
    notebooks = nbtools.find_notebooks(root)
    commands = {p.relative_to(root).as_posix(): notebook_setup(p) for p in notebooks}
    with tempfile.TemporaryDirectory() as tmp:
        wheel = wheel or build_wheel(python, root, Path(tmp))
        requirement = f"medimg-helpers[{','.join(all_extras(root))}] @ {wheel.resolve().as_uri()}"
        results: dict[str, Any] = {}
        for runtime in RUNTIMES:
            freeze = read_freeze(freeze_path(runtime, root))
            report = resolve(python, [requirement], pypi_constraints(freeze))
            for rel, command in commands.items():
                installed = closure(report, "medimg-helpers", command.extras)
                changed, added = changes(installed, freeze)
                results.setdefault(rel, {})[runtime] = {"extras": list(command.extras), "changed": changed,
                                                       "added": added}
    return results


def format_setup_report(results: dict[str, Any]) -> str:
    """The setup-cell check as a table: notebook, extras, Colab packages changed (CPU / GPU), packages added."""
    header = ("notebook", "extras", "changed (cpu)", "changed (gpu)", "added")
    rows = []
    for rel, by in results.items():
        changed = ["none" if not by[r]["changed"] else ", ".join(f"{n} {a}->{b}" for n, a, b in by[r]["changed"])
                   for r in RUNTIMES]
        rows.append((rel, ",".join(by["cpu"]["extras"]) or "-", *changed, str(len(by["cpu"]["added"]))))
    return nbtools.text_table(header, rows)


# --- The Colab-like environment --------------------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    """The interpreter of virtual environment ``venv``."""
    return venv / "bin" / "python"


IMPORT_GUARD = '''"""Installed by helpers.colab in the Colab-like environment only. With MEDIMG_COLAB_ALLOWED naming a JSON list of
distributions (Colab's packages and what the notebook's setup cell installs), a Jupyter kernel does not find a
top-level module that belongs only to other distributions, exactly as on Colab, where they are not installed: the
import raises ModuleNotFoundError, importlib.util.find_spec answers None, optional imports fall back and required ones
fail the notebook. Each refused name is appended to MEDIMG_IMPORT_LOG at once."""
import importlib.machinery
import json
import os
import sys


def _norm(name):
    return name.lower().replace("_", "-").replace(".", "-")


class _ColabPathFinder(importlib.machinery.PathFinder):
    allowed = set()
    owners = None

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if path is None and "ipykernel.kernelapp" in sys.modules and fullname not in sys.stdlib_module_names:
            if cls.owners is None:
                import importlib.metadata as md

                cls.owners = md.packages_distributions()
            owners = cls.owners.get(fullname)
            if owners and not any(_norm(o) in cls.allowed for o in owners):
                log = os.environ.get("MEDIMG_IMPORT_LOG")
                if log:
                    with open(log, "a", encoding="utf-8") as f:
                        f.write(fullname + "\\n")
                return None
        return super().find_spec(fullname, path, target)


if os.environ.get("MEDIMG_COLAB_ALLOWED"):
    with open(os.environ["MEDIMG_COLAB_ALLOWED"], encoding="utf-8") as _f:
        _ColabPathFinder.allowed = {_norm(a) for a in json.load(_f)}
    sys.meta_path[:] = [_ColabPathFinder if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
'''


def refused_imports(log: Path) -> list[str]:
    """The module names a Colab-like kernel refused, from its import log (none when it wrote no log)."""
    if not log.exists():
        return []
    return sorted({line.strip() for line in log.read_text(encoding="utf-8").splitlines() if line.strip()})


def build_env(python: str | Path, venv: Path, root: Path = ROOT, runtime: str = "cpu") -> Path:
    """Create or refresh the Colab-like environment ``venv``: ``python`` (3.13, as Colab), Colab's pip configured as on
    Colab, every package the notebooks' setup cells install at Colab's version, the project installed from its wheel
    as a setup cell installs it, a ``python3`` kernel, and the import guard. Returns its interpreter."""
    version = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version != "3.13":
        raise ColabCheckError(f"{python} is Python {version}; Colab's runtime is Python 3.13: "
                              "run make test-colab COLAB_PYTHON=/path/to/python3.13")
    freeze = read_freeze(freeze_path(runtime, root))
    py = venv_python(venv)
    if not py.exists():
        print(f"Creating {venv} with Python {version}")
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    extras = all_extras(root)
    constraints = venv / "colab-constraints.txt"
    constraints.write_text("\n".join(pypi_constraints(freeze)) + "\n", encoding="utf-8")
    wheel = build_wheel(py, root, venv / "wheel")
    stamp = venv / ".medimg-colab-installed"
    wanted = hashlib.sha256("\n".join([constraints.read_text(), ",".join(extras), ",".join(HARNESS),
                                       (root / "pyproject.toml").read_text()]).encode()).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        print(f"Installing Colab's versions of what the notebooks use into {venv} (first time: several minutes)")
        _pip(py, "install", f"pip=={freeze.get('pip', COLAB_PIP)}", f"setuptools=={freeze.get('setuptools', '75.2.0')}")
        _pip(py, "install", "-c", str(constraints), f"medimg-helpers[{','.join(extras)}] @ {wheel.as_uri()}", *HARNESS)
        stamp.write_text(wanted)
    _pip(py, "install", "--no-deps", "--force-reinstall", str(wheel))
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for old in Path(site).glob("_medimg_import_log.*"):
        old.unlink()
    Path(site, "_medimg_colab_guard.py").write_text(IMPORT_GUARD, encoding="utf-8")
    Path(site, "_medimg_colab_guard.pth").write_text("import _medimg_colab_guard\n", encoding="utf-8")
    subprocess.run([str(py), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3",
                    "--display-name", "Python 3 (Colab-like)"], check=True, capture_output=True)
    return py


# --- Running the notebooks there ------------------------------------------------------------------------------------


def reported_versions(nb: dict) -> dict[str, str]:
    """What an executed notebook's ``print_versions()`` printed, as ``{key: value}``."""
    for cell in nb.get("cells", []):
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell.get("cell_type") == "code" and src.strip().endswith("print_versions()"):
            text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("name") == "stdout")
            return {m.group(1): m.group(2).strip() for m in re.finditer(r"^(\S.*?)\s{2,}(.*)$", text, re.M)}
    return {}


def version_problems(versions: dict[str, str], freeze: dict[str, str]) -> list[str]:
    """How a notebook's reported versions depart from Colab's: Python 3.13, and each package at Colab's version."""
    problems = []
    if not versions:
        return ["print_versions() printed nothing"]
    if not versions.get("python", "").startswith("3.13"):
        problems.append(f"Python {versions.get('python')} (Colab: 3.13)")
    for name in MUST_REPORT:
        if name not in versions:
            problems.append(f"{name} not reported (Colab has {freeze.get(normalise(name))})")
    for name, version in versions.items():
        colab = freeze.get(normalise(name))
        if colab and base_version(colab) != base_version(version):
            problems.append(f"{name} {version} (Colab: {colab})")
    return problems


def run_notebooks(venv: Path, out: Path, root: Path = ROOT, only: list[str] | None = None,
                  runtime: str = "cpu") -> tuple[int, int]:
    """Run every notebook (quick setting) in the Colab-like environment, each kernel able to import only Colab's
    packages and what its setup cell installs (:data:`IMPORT_GUARD`); print the table ``make demo`` prints, then check
    each kernel reported Colab's versions. Returns (notebooks that passed, notebooks that failed)."""
    py = venv_python(venv)
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "imports"
    logs.mkdir(exist_ok=True)
    for old in logs.glob("*"):
        old.unlink()
    freeze = read_freeze(freeze_path(runtime, root))
    wheel = next((venv / "wheel").glob("medimg_helpers-*.whl"))
    report = resolve(py, [f"medimg-helpers[{','.join(all_extras(root))}] @ {wheel.as_uri()}"], pypi_constraints(freeze))
    notebooks = [p for p in nbtools.find_notebooks(root)
                 if not only or any(s in p.relative_to(root).as_posix() for s in only)]
    for path in notebooks:
        allowed = set(freeze) | set(closure(report, "medimg-helpers", notebook_setup(path).extras))
        (logs / _log_name(root, path, "allowed")).write_text(json.dumps(sorted(allowed)), encoding="utf-8")
    script = ("import os, sys\nfrom pathlib import Path\nfrom helpers import nbtools\n"
              "root, out, logs = map(Path, sys.argv[1:4])\nresults = []\n"
              "for rel in sys.argv[4:]:\n"
              "    stem = rel.replace('/', '__')\n"
              "    os.environ['MEDIMG_COLAB_ALLOWED'] = str(logs / (stem + '.allowed.json'))\n"
              "    os.environ['MEDIMG_IMPORT_LOG'] = str(logs / (stem + '.imports.txt'))\n"
              "    results.append(nbtools.run_notebook(root / rel, root, out, quick=True))\n"
              "nbtools.write_index(results, out, True)\nprint(nbtools.format_table(results))\n"
              "for r in results:\n    if r.error:\n        print('FAILED', r.error)\n"
              "    elif not r.claims_held:\n        print('CLAIMS NOT HELD', r.notebook, nbtools.claims_text(r.claims))\n"
              "sys.exit(0 if results and all(r.status == 'ok' and r.claims_held for r in results) else 1)\n")
    data = out / "data"  # a fresh data folder, as each Colab session has; and its MLflow is not the lock's
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "MEDIMG_HEADLESS": "1", "JUPYTER_PREFER_ENV_PATH": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
           "MEDIMG_DATA_DIR": str(data), **pip_env()}
    env.pop("PYTHONPATH", None)
    rels = [p.relative_to(root).as_posix() for p in notebooks]
    status = subprocess.run([str(py), "-c", script, str(root), str(out), str(logs), *rels], env=env,
                            cwd=str(out)).returncode
    failures = []
    for path, rel in zip(notebooks, rels):
        executed = out / rel
        if not executed.exists():
            failures.append(f"{rel}: not executed")
            continue
        problems = version_problems(reported_versions(json.loads(executed.read_text(encoding="utf-8"))), freeze)
        refused = refused_imports(logs / _log_name(root, path, "imports"))
        note = f" (not installed there, so not importable: {', '.join(refused)})" if refused else ""
        print(f"{rel}: {'Python 3.13 and Colab versions' if not problems else '; '.join(problems)}{note}")
        failures += [f"{rel}: {p}" for p in problems]
    if failures:
        print("\nThe Colab-like run does not match Colab:\n- " + "\n- ".join(failures), file=sys.stderr)
    table = json.loads((out / "summary.json").read_text(encoding="utf-8")) if (out / "summary.json").exists() else []
    bad = {f.split(":")[0] for f in failures} | {r["notebook"] for r in table if r["status"] != "ok"}
    if status and not bad:  # the runner itself failed after the notebooks: trust none of them
        bad = set(rels)
    return len(rels) - len(bad), len(bad)


def _log_name(root: Path, path: Path, kind: str) -> str:
    """The file of ``kind`` ("allowed": the JSON list the guard reads; "imports": what it refused) for a notebook."""
    return path.relative_to(root).as_posix().replace("/", "__") + (".allowed.json" if kind == "allowed" else ".imports.txt")


def run_widget_tests(venv: Path, root: Path = ROOT) -> int:
    """The widget and version tests under Colab's ipywidgets 7 and the rest of Colab's set."""
    env = {**os.environ, **pip_env()}
    env.pop("MEDIMG_HEADLESS", None)
    tests = [t for t in WIDGET_TESTS if (root / t).exists()]
    return subprocess.run([str(venv_python(venv)), "-m", "pytest", "-p", "no:cacheprovider", "-q", "--disable-warnings", *tests],
                          cwd=str(root), env=env).returncode


def _record_time(out: Path, step: str, start: float) -> None:
    """Print how long ``step`` took and keep it in ``out/timing.json`` (benchmarks/RESULTS.md quotes it)."""
    seconds = time.perf_counter() - start
    print(f"make test-colab, {step}: {seconds:.0f} s")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "timing.json"
    timing = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    timing[step] = round(seconds, 1)
    path.write_text(json.dumps(timing, indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m helpers.colab``."""
    parser = argparse.ArgumentParser(prog="python -m helpers.colab", description=__doc__.split("\n")[0])
    parser.add_argument("--venv", default=".venv-colab", help="the Colab-like environment (default: .venv-colab)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    env = sub.add_parser("env", help="build or refresh the Colab-like environment")
    env.add_argument("--python", required=True, help="a Python 3.13 interpreter")
    check = sub.add_parser("check-setup", help="the Colab packages each notebook's setup cell would change (none)")
    check.add_argument("--out", default="outputs-colab", help="where setup-check.json (the details) goes")
    run = sub.add_parser("run", help="every notebook, quick setting, in the Colab-like environment")
    run.add_argument("--out", default="outputs-colab")
    run.add_argument("only", nargs="*", help="only notebooks whose path contains one of these")
    sub.add_parser("widgets", help="the widget tests under Colab's ipywidgets")
    env.add_argument("--out", default="outputs-colab", help="where timing.json goes")
    args = parser.parse_args(argv)
    venv = Path(args.venv).resolve()
    start = time.perf_counter()
    try:
        if args.cmd == "env":
            fresh = not (venv / ".medimg-colab-installed").exists()
            build_env(args.python, venv)
            _record_time(Path(args.out), "environment (fresh)" if fresh else "environment (refresh)", start)
            return 0
        if args.cmd == "check-setup":
            wheel = next((venv / "wheel").glob("medimg_helpers-*.whl"), None)
            results = check_setup_cells(venv_python(venv), ROOT, wheel)
            print(format_setup_report(results))
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "setup-check.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
            bad = [rel for rel, by in results.items() if any(by[r]["changed"] for r in RUNTIMES)]
            print(f"\n{len(results) - len(bad)} of {len(results)} setup cells change none of Colab's packages.")
            return 1 if bad else 0
        if args.cmd == "run":
            passed, failed = run_notebooks(venv, Path(args.out).resolve(), ROOT, args.only)
            _record_time(Path(args.out), "notebooks", start)
            print(f"colab: {passed} passed, {failed} failed")  # last, where CI reads a summary
            return 1 if failed or not passed else 0
        if args.cmd == "widgets":
            return run_widget_tests(venv)
    except ColabCheckError as exc:
        print(f"make test-colab: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
