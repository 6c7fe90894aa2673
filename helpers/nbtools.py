"""The collection's notebooks as a whole: the template every notebook follows, key results, and the
headless runner behind ``make demo``.

Command line::

    python -m helpers.nbtools check            # template check of every notebook (what the test runs)
    python -m helpers.nbtools run [--quick]    # execute every notebook with papermill into outputs/
    python -m helpers.nbtools new PATH TITLE   # a new notebook that already follows the template
    python -m helpers.nbtools setup            # rewrite every Colab badge and setup cell (REPOSITORY, NOTEBOOK_EXTRAS)

The template is described in CONTRIBUTING.md; :func:`check_template` is its executable form.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.errors import NotebookTemplateError

#: The one configured repository every Colab badge points at (``owner/name`` on GitHub) and its branch.
REPOSITORY = "medimg-tutorials/medimg-ai-tutorials"
BRANCH = "main"
#: The numbered folders that hold the lessons, in reading order.
NOTEBOOK_DIRS = (
    "01_load_data",
    "02_annotation",
    "03_train_classifier",
    "04_segmentation_unet",
    "05_deploy_explain",
    "06_workshop_experiments",
)
#: Stored outputs of one notebook may take at most this many bytes (figures included).
MAX_OUTPUT_BYTES = 3_000_000
#: MIME type under which :func:`key_result` stores a notebook's headline number.
KEY_RESULT_MIME = "application/vnd.medimg.key-result+json"

#: Text that must never appear in stored outputs: machine-specific absolute paths.
PATH_PATTERN = re.compile(r"(/root/|/home/[^/\s\"']+/|/Users/[^/\s\"']+/|[A-Za-z]:\\\\?Users\\\\|/work/|/tmp/)")
#: Text that must never appear anywhere in a notebook: secrets and cloud identifiers.
SECRET_PATTERNS = {
    "an Azure SAS signature": re.compile(r"sig=[A-Za-z0-9%+/=]{10,}"),
    "a storage account key": re.compile(r"AccountKey=[A-Za-z0-9+/=]{20,}"),
    "an Azure subscription id": re.compile(
        r"subscriptions/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    "a bearer token": re.compile(r"Bearer\s+[A-Za-z0-9\-_.=]{20,}"),
    "a GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    "an AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


# --- the template --------------------------------------------------------------------------------


def colab_url(relpath: str | Path) -> str:
    """The Colab URL that opens ``relpath`` (relative to the repository root) from GitHub."""
    rel = Path(relpath).as_posix()
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{rel}"


def colab_badge(relpath: str | Path) -> str:
    """The markdown "Open in Colab" badge for ``relpath``, built from :data:`REPOSITORY`."""
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(relpath)})"


def find_notebooks(root: str | Path) -> list[Path]:
    """Every lesson notebook under the numbered folders of ``root``, in reading order."""
    root = Path(root)
    found: list[Path] = []
    for folder in NOTEBOOK_DIRS:
        found += sorted(p for p in (root / folder).glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    return found


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _headings(cell: dict) -> list[str]:
    return [line.lstrip("#").strip().lower() for line in _source(cell).splitlines() if line.startswith("#")]


def _index(cells: list[dict], pred) -> int | None:
    return next((i for i, c in enumerate(cells) if pred(c)), None)


def check_template(nb: dict, relpath: str | Path) -> list[str]:
    """Every way notebook ``nb`` (stored at ``relpath`` in the repository) departs from the template; [] if none."""
    problems: list[str] = []
    cells = list(nb.get("cells", []))
    md = lambda c: c.get("cell_type") == "markdown"  # noqa: E731
    code = lambda c: c.get("cell_type") == "code"  # noqa: E731
    if not cells:
        return ["the notebook has no cells"]

    # 1. Title, objectives, time, badge.
    first = cells[0]
    if not (md(first) and _source(first).lstrip().startswith("# ")):
        problems.append("the first cell must be markdown starting with a '# Title'")
    intro = "\n".join(_source(c) for c in cells[:3] if md(c))
    if not re.search(r"objectives", intro, re.I):
        problems.append("the introduction (first markdown cells) must list the learning objectives")
    if not re.search(r"(estimated )?time\b.*\d+\s*(min|minutes|h|hours)", intro, re.I):
        problems.append("the introduction must give an estimated time, e.g. '**Time:** 20 minutes'")
    if colab_badge(relpath) not in intro:
        problems.append(f"the introduction must hold the Colab badge for this path: {colab_badge(relpath)}")

    # 2. Setup (Colab only), parameters, imports ending in print_versions().
    setup = _index(cells, lambda c: code(c) and "google.colab" in _source(c) and "pip install" in _source(c))
    params = _index(cells, lambda c: code(c) and "parameters" in _tags(c))
    imports = _index(
        cells,
        lambda c: code(c) and (_source(c).strip().splitlines() or [""])[-1].strip().endswith("print_versions()"),
    )
    if setup is None:
        problems.append("a setup code cell must install the package on Colab only "
                        "(an `if \"google.colab\" in sys.modules:` block with `%pip install`)")
    elif _source(cells[setup]).strip() != setup_source(relpath).strip():
        problems.append("the setup cell must be the one built from NOTEBOOK_EXTRAS and REPOSITORY "
                        "(`python -m helpers.nbtools setup` rewrites it):\n" + setup_source(relpath))
    if params is None:
        problems.append("a code cell must be tagged `parameters` (papermill injects settings after it)")
    elif "QUICK" not in _source(cells[params]):
        problems.append("the parameters cell must define QUICK (None means: read MEDIMG_QUICK)")
    if imports is None:
        problems.append("an imports cell must end with `print_versions()`")
    if None not in (setup, params, imports) and not (setup < params < imports):
        problems.append("the order must be: setup cell, then the parameters cell, then the imports cell")

    # 3. Closing sections.
    wyss = _index(cells, lambda c: md(c) and any(h.startswith("what you should see") for h in _headings(c)))
    exercises = _index(cells, lambda c: md(c) and any(h.startswith("exercises") for h in _headings(c)))
    if wyss is None:
        problems.append("a closing markdown section '## What you should see' must give the expected ranges")
    if exercises is None:
        problems.append("a closing markdown section '## Exercises' must follow 'What you should see'")
    if wyss is not None and imports is not None and wyss < imports:
        problems.append("'What you should see' must come after the lesson, not before the imports")
    if wyss is not None and exercises is not None and exercises < wyss:
        problems.append("'Exercises' must come after 'What you should see'")
    claims = _index(cells, lambda c: code(c) and "Claims(" in _source(c) and ".table()" in _source(c))
    if claims is None:
        problems.append("a code cell must state 'What you should see' as claims (helpers.nbtools.Claims: at least "
                        "three checks, one with key=True, then claims.table())")
    elif wyss is not None and claims > wyss:
        problems.append("the claims cell must come before 'What you should see'")

    # 4. Kernel, stored outputs.
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"the kernelspec must be 'python3', found {kernel!r}")
    problems += check_outputs(nb)
    return problems


def check_outputs(nb: dict) -> list[str]:
    """Problems with the stored outputs: size, errors, unclean execution, machine paths, secrets."""
    problems: list[str] = []
    code_cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    outputs = [c.get("outputs", []) for c in code_cells]
    blob = json.dumps(outputs)
    if len(blob) > MAX_OUTPUT_BYTES:
        problems.append(f"stored outputs take {len(blob):,} bytes, over the {MAX_OUTPUT_BYTES:,}-byte cap: "
                        "lower figure dpi or print less")
    if code_cells and not any(outputs):
        problems.append("the notebook is stored without outputs: store the outputs of a clean run")
    for i, cell in enumerate(code_cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"code cell {i} stores an error ({out.get('ename')}): re-run cleanly")
    counts = [c.get("execution_count") for c in code_cells if c.get("execution_count") is not None]
    if counts and counts != list(range(1, len(counts) + 1)):
        problems.append("execution counts are not 1, 2, 3, ...: store the outputs of one clean top-to-bottom run")
    match = PATH_PATTERN.search(blob)
    if match:
        problems.append(f"a stored output holds a machine path ({match.group(0)!r}): print paths relative "
                        "to the data folder, or with '~'")
    everything = json.dumps(nb)
    for what, pattern in SECRET_PATTERNS.items():
        if pattern.search(everything):
            problems.append(f"the notebook holds {what}: remove it and rotate the secret")
    return problems


def assert_template(path: str | Path, root: str | Path) -> None:
    """Raise :class:`NotebookTemplateError` listing every template problem of the notebook at ``path``."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    rel = path.resolve().relative_to(Path(root).resolve())
    problems = check_template(nb, rel)
    if problems:
        raise NotebookTemplateError(f"{rel} does not follow the template (see CONTRIBUTING.md):\n- "
                                    + "\n- ".join(problems))


#: The extras of ``medimg-helpers`` each lesson's setup cell installs on Colab: those its imports use, nothing more
#: (``make test-colab`` checks each notebook imports nothing beyond them and Colab's own packages). A notebook
#: not listed here gets the package alone.
NOTEBOOK_EXTRAS: dict[str, tuple[str, ...]] = {
    "01_load_data/02_deidentify_and_convert.ipynb": ("deid",),
    "01_load_data/03_register_dataset.ipynb": ("azure",),
    "02_annotation/01_label_images.ipynb": ("labels",),
    "02_annotation/02_label_quality.ipynb": ("torch", "labels"),
    "03_train_classifier/01_chest_xray_pytorch.ipynb": ("torch", "azure"),
    "03_train_classifier/02_knee_fracture_fastai.ipynb": ("fastai",),
    "04_segmentation_unet/01_sunnybrook_unet.ipynb": ("tf", "seg", "azure"),
    "05_deploy_explain/01_explain.ipynb": ("torch", "explain", "tf"),
    # The inference server (the `serve` extra) cannot live with Colab's packages: serving.server_python() puts
    # it in a virtual environment of its own, layered over the notebook's, when the lesson starts it.
    "05_deploy_explain/02_deploy_rest_endpoint.ipynb": ("torch", "explain", "onnx", "azure"),
    "06_workshop_experiments/01_ich_experiments.ipynb": ("torch",),
}
#: Where a Colab setup cell clones the collection (its notebooks then run from their folder there, as locally, so
#: files beside them such as ``score.py`` and ``requirements/lock.txt`` are found).
COLAB_CHECKOUT = f"/content/{REPOSITORY.split('/')[-1]}"
#: Where a Colab setup cell writes the list of packages Colab has installed, to hold each at its version.
COLAB_PREINSTALLED = "/tmp/colab-preinstalled.txt"


def install_target(relpath: str | Path) -> str:
    """What a notebook's setup cell installs with pip: the Colab checkout with the lesson's extras."""
    extras = NOTEBOOK_EXTRAS.get(Path(relpath).as_posix(), ())
    return f"{COLAB_CHECKOUT}[{','.join(extras)}]" if extras else COLAB_CHECKOUT


def setup_source(relpath: str | Path) -> str:
    """The setup cell of the notebook at ``relpath``. On Colab only: clone the collection (or update the clone), install
    ``helpers`` with the extras the lesson needs while holding every package Colab has at its version (a pip
    constraint: the cell adds packages and changes none), and run from the notebook's folder in the clone."""
    rel = Path(relpath).as_posix()
    extras = NOTEBOOK_EXTRAS.get(rel, ())
    needs = ", ".join(extras) if extras else "nothing beyond the package itself"
    url = f"https://github.com/{REPOSITORY}.git"
    return f"""# Setup, on Colab only (locally, `make demo` / `make test` did it): clone the collection, work in this notebook's
# folder, and install the shared `helpers` package with what this lesson needs: {needs}.
# `-c` holds every package Colab already has at its version: the install adds packages, changes none (~1 min).
import sys

if "google.colab" in sys.modules:
    !git clone -q --depth 1 -b {BRANCH} {url} {COLAB_CHECKOUT} 2>/dev/null || git -C {COLAB_CHECKOUT} pull -q
    !pip list --format=freeze | grep -v "^medimg-helpers==" > {COLAB_PREINSTALLED}
    %pip install -q -c {COLAB_PREINSTALLED} "{install_target(rel)}"
    %cd {COLAB_CHECKOUT}/{Path(rel).parent.as_posix()}
"""


PARAMETERS_SOURCE = """# Parameters: papermill overrides these. QUICK=None reads MEDIMG_QUICK (1 = quick setting, as in CI).
QUICK = None
DATA_SOURCE = "generated"  # "generated" (offline default) or "real"
REAL_DATA_DIR = None  # folder of the real data set when DATA_SOURCE == "real"
SEED = 0
"""


def template_notebook(relpath: str | Path, title: str) -> dict:
    """A new notebook (nbformat 4 dict) for ``relpath`` that passes :func:`check_template` once executed."""
    import nbformat.v4 as v4

    cells = [
        v4.new_markdown_cell(
            f"# {title}\n\n{colab_badge(relpath)}\n\n"
            "One paragraph: the clinical question this lesson answers.\n\n"
            "**Objectives**\n- ...\n\n**Time:** 20 minutes · **Prerequisites:** ..."
        ),
        v4.new_code_cell(setup_source(relpath)),
        v4.new_code_cell(PARAMETERS_SOURCE, metadata={"tags": ["parameters"]}),
        v4.new_code_cell("import helpers\nfrom helpers.config import is_quick\n\nquick = is_quick(QUICK)\n"
                         "helpers.seed_everything(SEED)\nhelpers.print_versions()"),
        v4.new_markdown_cell("## Claims: what this run should show\n\nThe statements of *What you should see*, checked."),
        v4.new_code_cell("from helpers.nbtools import Claims\n\n"
                         "claims = Claims(quick)  # at least three; ranges measured with benchmarks/claims_spread.py\n"
                         "# claims.between(\"test AUC\", auc, full=(0.85, 1.0), quick=(0.6, 1.0), key=True)\n"
                         "claims.table();"),
        v4.new_markdown_cell("## What you should see\n\n- ..."),
        v4.new_markdown_cell("## Exercises\n\n1. ...\n\n<details><summary>Solution</summary>\n\n...\n</details>"),
    ]
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def rewrite_generated(root: str | Path) -> list[Path]:
    """Rewrite what the template builds in every notebook (the Colab badge from :data:`REPOSITORY`, the setup cell
    from :func:`setup_source`) where it differs; return the changed files."""
    root = Path(root)
    pattern = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
    is_setup = lambda c: c.get("cell_type") == "code" and "google.colab" in _source(c) and "pip install" in _source(c)  # noqa: E731
    changed = []
    for path in find_notebooks(root):
        nb = json.loads(path.read_text(encoding="utf-8"))
        rel = path.relative_to(root)
        dirty = False
        for i, cell in enumerate(nb["cells"]):
            src = _source(cell)
            if is_setup(cell) and not any(is_setup(c) for c in nb["cells"][:i]):
                new = setup_source(rel).rstrip("\n")
            else:
                new = pattern.sub(lambda _m: colab_badge(rel), src)
            if new != src:
                cell["source"] = new.splitlines(keepends=True)
                dirty = True
        if dirty:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            changed.append(path)
    return changed


# --- key results ---------------------------------------------------------------------------------


def key_result(name: str, value: float | int | str, unit: str = "") -> None:
    """Show a notebook's headline result and store it in the output for the ``make demo`` table."""
    record = {"name": name, "value": value, "unit": unit}
    try:
        from IPython.display import display

        text = f"Key result: {name} = {_fmt(value)}{(' ' + unit) if unit else ''}"
        display({KEY_RESULT_MIME: record, "text/plain": text}, raw=True)
    except ImportError:  # outside IPython: nothing to display into
        pass


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1e}" if 0 < abs(value) < 1e-3 else f"{value:.3f}"
    return str(value)


def read_key_results(nb: dict) -> list[dict[str, Any]]:
    """The :func:`key_result` records stored in an executed notebook's outputs, in order."""
    found = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if KEY_RESULT_MIME in data:
                found.append(data[KEY_RESULT_MIME])
    return found


# --- claims: "What you should see" as checks ------------------------------------------------------

CLAIMS_MIME = "application/vnd.medimg.claims+json"


@dataclass
class Claim:
    """One statement of a notebook's "What you should see", checked: the value this run gave, what a correct run
    gives (``expected``, as text), and whether it held."""

    claim: str
    value: Any
    expected: str
    held: bool
    key: bool = False


class Claims:
    """A notebook's "What you should see" stated as checks at run time.

    Each method records one claim and returns whether it held; :meth:`table` shows them all at the end of the
    notebook (claim, value, expected, held) and stores them in the output, where ``make demo`` and ``make test``
    read them. Ranges come in two settings: ``full`` and, for the quick setting CI runs, ``quick`` (default: the
    same as ``full``). They are measured over seeds (``benchmarks/claims_spread.py``), not guessed::

        claims = Claims(quick)
        claims.between("test AUC", auc, full=(0.85, 1.0), quick=(0.6, 1.0), key=True)
        claims.above("Grad-CAM++ hit rate above chance", hits, chance)
        claims.at_least("weighted sampler's sensitivity, against cross-entropy's", weighted, plain)
        claims.equal("identifying values remaining", len(report), 0)
        claims.table()

    ``key=True`` marks the notebook's key result (shown at once, and in the ``make demo`` table). ``only="full"``
    states a claim in the full setting alone (an ordering a quick run is too short to show). A claim that does
    not hold is not an error in the notebook (you may be doing an exercise); the table says so, and the runners
    report it as a failure.
    """

    def __init__(self, quick: bool) -> None:
        self.quick = bool(quick)
        self.rows: list[Claim] = []

    def _skip(self, only: str | None) -> bool:
        if only not in (None, "full", "quick"):
            raise ValueError(f"only must be None, 'full' or 'quick', not {only!r}")
        return only is not None and only != ("quick" if self.quick else "full")

    def _add(self, claim: str, value: Any, expected: str, held: bool, key: bool, unit: str) -> bool:
        value = value.item() if hasattr(value, "item") else value  # numpy scalars -> Python, for JSON
        held = bool(held)
        self.rows = [r for r in self.rows if r.claim != claim]  # re-running one cell replaces its claim
        self.rows.append(Claim(claim, value, expected, held, key))
        if key:
            key_result(claim, value, unit)
        return held

    def _range(self, full: tuple[float, float], quick: tuple[float, float] | None) -> tuple[float, float]:
        return quick if (self.quick and quick is not None) else full

    def between(self, claim: str, value: float, full: tuple[float, float], quick: tuple[float, float] | None = None,
                *, key: bool = False, unit: str = "", only: str | None = None) -> bool:
        """``low <= value <= high``, with (low, high) from ``quick`` in the quick setting, else ``full``."""
        if self._skip(only):
            return True
        low, high = self._range(full, quick)
        ok = value == value and low <= value <= high  # NaN never holds
        return self._add(claim, value, f"{_fmt(low)} to {_fmt(high)}", ok, key, unit)

    def above(self, claim: str, value: float, other: float, margin: float = 0.0, *, key: bool = False,
              unit: str = "", only: str | None = None) -> bool:
        """An ordering: ``value > other + margin`` (e.g. a method above chance, or above another method; a negative
        margin says "not more than this below")."""
        if self._skip(only):
            return True
        ok = value == value and other == other and value > other + margin
        expected = f"> {_fmt(other)}" + (f" {'+' if margin > 0 else '-'} {_fmt(abs(margin))}" if margin else "")
        return self._add(claim, value, expected, ok, key, unit)

    def at_least(self, claim: str, value: float, other: float, *, key: bool = False, unit: str = "",
                 only: str | None = None) -> bool:
        """An ordering that a tie keeps: ``value >= other``."""
        if self._skip(only):
            return True
        ok = value == value and other == other and value >= other
        return self._add(claim, value, f">= {_fmt(other)}", ok, key, unit)

    def equal(self, claim: str, value: Any, expected: Any, *, key: bool = False, unit: str = "",
              only: str | None = None) -> bool:
        """``value == expected`` (a count, a flag, a name)."""
        if self._skip(only):
            return True
        return self._add(claim, value, f"= {_fmt(expected)}", value == expected, key, unit)

    @property
    def held(self) -> bool:
        """Whether every claim held (True when there is none)."""
        return all(r.held for r in self.rows)

    def summary(self) -> str:
        """``4 of 5 claims held (quick setting)``."""
        setting = "quick" if self.quick else "full"
        return f"{sum(r.held for r in self.rows)} of {len(self.rows)} claims held ({setting} setting)"

    def table(self):
        """Show the claims as a table (and store them in the output for the runners); returns it as a DataFrame."""
        import pandas as pd

        frame = pd.DataFrame([{"claim": r.claim, "value": _fmt(r.value), "expected": r.expected,
                               "held": "yes" if r.held else "NO"} for r in self.rows],
                             columns=["claim", "value", "expected", "held"])
        missed = [r.claim for r in self.rows if not r.held]
        note = ("Not held: " + "; ".join(missed) + ". Compare with 'What you should see' below: a changed parameter "
                "explains it; otherwise something is wrong.") if missed else ""
        text = "\n".join(filter(None, [self.summary(), frame.to_string(index=False), note]))
        page = "".join(f"<p>{html.escape(t)}</p>" if t != "table" else frame.to_html(index=False)
                       for t in filter(None, [self.summary(), "table", note]))
        if _in_ipython():
            from IPython.display import display

            display({CLAIMS_MIME: {"quick": self.quick, "claims": [r.__dict__ for r in self.rows]},
                     "text/plain": text, "text/html": page}, raw=True)
        else:  # a script: IPython's display would print the raw record
            print(text)
        return frame


def _in_ipython() -> bool:
    """Whether this runs in an IPython kernel or shell (a notebook), where rich outputs are stored."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def read_claims(nb: dict) -> list[dict[str, Any]]:
    """The claims (dicts of :class:`Claim`'s fields) stored by :meth:`Claims.table` in an executed notebook."""
    found: list[dict[str, Any]] = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            record = out.get("data", {}).get(CLAIMS_MIME)
            if record:
                found = list(record["claims"])  # the last table is the notebook's final word
    return found


def claims_text(claims: list[dict[str, Any]]) -> str:
    """``claims 5/5`` (or ``claims 4/5, not held: X``); ``-`` when the notebook states none."""
    if not claims:
        return "-"
    missed = [c["claim"] for c in claims if not c["held"]]
    text = f"claims {len(claims) - len(missed)}/{len(claims)}"
    return text + (f", not held: {'; '.join(missed)}" if missed else "")


def read_live(nb: dict) -> dict[str, int]:
    """How many training calls of an executed notebook live mode (:mod:`helpers.live`) reused and how many trained:
    counted from the lines it prints (``live mode: ...``); empty when live mode was off."""
    counts = {"reused": 0, "trained": 0}
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") != "stream":
                continue
            text = out.get("text", "")
            for line in (text if isinstance(text, str) else "".join(text)).splitlines():
                if line.startswith("live mode: ") and " training calls reused" not in line:
                    counts["reused" if " reused stored run " in line else "trained"] += 1
    return counts if sum(counts.values()) else {}


def live_text(counts: dict[str, int]) -> str:
    """``live 5/5 reused`` for a notebook run in live mode; empty otherwise."""
    return f"live {counts['reused']}/{counts['reused'] + counts['trained']} reused" if counts else ""


# --- the runner behind `make demo` -----------------------------------------------------------------


@dataclass
class RunResult:
    """The outcome of executing one notebook."""

    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    key_results: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    output: str = ""
    claims: list[dict[str, Any]] = field(default_factory=list)
    live: dict[str, int] = field(default_factory=dict)  # live mode's reused / trained calls (read_live)

    @property
    def claims_held(self) -> bool:
        """Whether every claim the notebook stated held (True when it states none)."""
        return all(c["held"] for c in self.claims)

    @property
    def key_text(self) -> str:
        """The key results as one short line."""
        return "; ".join(f"{r['name']} = {_fmt(r['value'])}{(' ' + r['unit']) if r.get('unit') else ''}"
                         for r in self.key_results)


#: Arguments for each notebook's kernel: log only errors. Every ipykernel 7 kernel otherwise warns, once per notebook,
#: that it runs over TCP without encryption (its sockets are on 127.0.0.1 here), which buries a run's real output.
KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=ERROR",)


def stored_seconds(path: Path) -> float | None:
    """How long the notebook's stored run took (papermill's ``duration`` in its metadata), or None."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        duration = meta.get("papermill", {}).get("duration")
        return float(duration) if duration else None
    except (OSError, ValueError, AttributeError):
        return None


def _duration(seconds: float) -> str:
    """``45 s`` below two minutes, else ``12 min``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def estimate_left(done_seconds: float, done_stored: float, left_stored: float) -> float:
    """Seconds the rest of a run should take: the stored runs' durations of the notebooks left (``left_stored``),
    scaled by how this run compares with the stored ones so far (``done_seconds`` against ``done_stored``; the
    quick setting and a slower machine both show there). Before anything is done, the stored durations as they are."""
    if done_stored <= 0 or done_seconds <= 0:
        return left_stored
    return left_stored * done_seconds / done_stored


def run_notebook(path: Path, root: Path, out_dir: Path, quick: bool, timeout: int = 1800,
                 parameters: dict[str, Any] | None = None) -> RunResult:
    """Execute one notebook headless with papermill (fresh ``python3`` kernel, cwd = its folder); ``parameters``
    override its parameters cell (e.g. a real data set: ``{"DATA_SOURCE": "kermany", "REAL_DATA_DIR": ...}``)."""
    import papermill as pm

    rel = path.relative_to(root)
    out_nb = out_dir / rel
    out_nb.parent.mkdir(parents=True, exist_ok=True)
    os.environ["MEDIMG_QUICK"] = "1" if quick else "0"
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(path), str(out_nb), kernel_name="python3", cwd=str(path.parent),
                            parameters=dict(parameters or {}), progress_bar=False, log_output=False,
                            execution_timeout=timeout, extra_arguments=list(KERNEL_ARGUMENTS))
        status, error = "ok", ""
    except pm.PapermillExecutionError as exc:
        first_line = (exc.source or "").strip().splitlines()[:1]
        status = "failed"
        error = (f"{rel}, code cell {exc.exec_count} (cell index {exc.cell_index}, "
                 f"starting {first_line[0] if first_line else ''!r}): {exc.ename}: {exc.evalue}")
    except Exception as exc:  # kernel died, notebook unreadable, timeout
        status, error = "failed", f"{rel}: {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    keys: list[dict[str, Any]] = []
    claims: list[dict[str, Any]] = []
    live: dict[str, int] = {}
    if out_nb.exists():
        executed = json.loads(out_nb.read_text(encoding="utf-8"))
        keys, claims, live = read_key_results(executed), read_claims(executed), read_live(executed)
        _write_html(out_nb, out_nb.with_suffix(".html"))
    return RunResult(str(rel), status, seconds, keys, error, str(out_nb.relative_to(out_dir)), claims, live)


def _write_html(notebook: Path, path: Path) -> None:
    """Render an executed notebook file as standalone HTML."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(notebook), as_version=4))
    path.write_text(body, encoding="utf-8")


def text_table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    """``rows`` under ``header`` as a plain-text table: columns padded to their widest cell, a rule under the header."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cols: "  ".join(str(c).ljust(w) for c, w in zip(cols, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def format_table(results: list[RunResult]) -> str:
    """The run summary as a plain-text table: notebook, status, seconds, claims held, key result (and, in live mode,
    the training calls reused)."""
    if any(r.live for r in results):
        return text_table(("notebook", "status", "seconds", "claims", "live mode", "key result"),
                          [(r.notebook, r.status, f"{r.seconds:.1f}", claims_text(r.claims).removeprefix("claims "),
                            live_text(r.live).removeprefix("live ") or "-", r.key_text or "-") for r in results])
    return text_table(("notebook", "status", "seconds", "claims", "key result"),
                      [(r.notebook, r.status, f"{r.seconds:.1f}", claims_text(r.claims).removeprefix("claims "),
                        r.key_text or "-") for r in results])


def write_index(results: list[RunResult], out_dir: Path, quick: bool) -> Path:
    """Write ``out_dir/index.html`` linking every executed notebook's HTML, and ``summary.json``."""
    rows = "\n".join(
        f"<tr><td><a href='{html.escape(Path(r.output).with_suffix('.html').as_posix())}'>"
        f"{html.escape(r.notebook)}</a></td><td class='{r.status}'>{r.status}</td>"
        f"<td>{r.seconds:.1f}</td><td>{html.escape(claims_text(r.claims))}</td>"
        f"<td>{html.escape(r.key_text or r.error or '-')}</td></tr>"
        for r in results
    )
    setting = "quick" if quick else "full"
    page = f"""<!doctype html><html><head><meta charset='utf-8'><title>Collection run</title>
<style>body{{font-family:sans-serif}}td,th{{padding:4px 10px;text-align:left}}.ok{{color:green}}
.failed{{color:#b00;font-weight:bold}}</style></head><body>
<h1>Medical imaging AI tutorials: {setting} run, {time.strftime('%Y-%m-%d %H:%M')}</h1>
<table><tr><th>notebook</th><th>status</th><th>seconds</th><th>claims held</th><th>key result</th></tr>
{rows}</table></body></html>"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps([r.__dict__ for r in results], indent=2), encoding="utf-8")
    return index


def _print_now(line: str) -> None:
    """Print ``line`` at once, even into a pipe (CI), where output is otherwise held back in a buffer."""
    print(line, flush=True)


def run_collection(root: str | Path, out_dir: str | Path, quick: bool = False, only: list[str] | None = None,
                   report: Callable[[str], None] | None = _print_now) -> list[RunResult]:
    """Execute every notebook (or those whose path contains one of ``only``) into ``out_dir``. ``report`` (None for
    silence) hears a line as the run starts and one per notebook as it finishes: its status, seconds, key result, and
    an estimate of what is left (:func:`estimate_left`)."""
    root, out_dir = Path(root).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = find_notebooks(root)
    if only:
        notebooks = [p for p in notebooks if any(s in str(p.relative_to(root)) for s in only)]
    stored = [stored_seconds(p) or 0.0 for p in notebooks]
    say = report or (lambda line: None)
    setting = "quick" if quick else "full"
    say(f"Running {len(notebooks)} notebook(s), {setting} setting, into {out_dir.name}/; their stored (full) runs took "
        f"{_duration(sum(stored))} in all.")
    results: list[RunResult] = []
    for i, path in enumerate(notebooks):
        result = run_notebook(path, root, out_dir, quick)
        results.append(result)
        left = estimate_left(sum(r.seconds for r in results), sum(stored[: i + 1]), sum(stored[i + 1 :]))
        tail = f"; about {_duration(left)} left" if i + 1 < len(notebooks) else ""
        live = f", {live_text(result.live)}" if result.live else ""
        say(f"[{i + 1}/{len(notebooks)}] {result.notebook}: {result.status} in {result.seconds:.0f} s"
            f", {claims_text(result.claims)}{live}{' - ' + result.key_text if result.key_text else ''}{tail}")
    write_index(results, out_dir, quick)
    return results


# --- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m helpers.nbtools``."""
    parser = argparse.ArgumentParser(prog="python -m helpers.nbtools", description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="execute every notebook headless into outputs/")
    run.add_argument("--out", default="outputs")
    run.add_argument("--quick", action="store_true", help="quick setting (MEDIMG_QUICK=1)")
    run.add_argument("only", nargs="*", help="run only notebooks whose path contains one of these")
    sub.add_parser("check", help="check every notebook against the template")
    new = sub.add_parser("new", help="create a notebook that follows the template")
    new.add_argument("path")
    new.add_argument("title")
    sub.add_parser("setup", help="rewrite every Colab badge and setup cell from REPOSITORY and NOTEBOOK_EXTRAS")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()

    if args.cmd == "run":
        results = run_collection(root, args.out, quick=args.quick, only=args.only)
        print(format_table(results))
        for r in results:
            if r.error:
                print(f"\nFAILED {r.error}", file=sys.stderr)
            elif not r.claims_held:
                print(f"\nCLAIMS NOT HELD in {r.notebook}: {claims_text(r.claims)} (its last cell's table shows the "
                      "values)", file=sys.stderr)
        print(f"\nExecuted notebooks and index.html are in {args.out}/")
        return 0 if results and all(r.status == "ok" and r.claims_held for r in results) else 1
    if args.cmd == "check":
        failures = 0
        for path in find_notebooks(root):
            try:
                assert_template(path, root)
            except NotebookTemplateError as exc:
                failures += 1
                print(exc)
        print(f"{len(find_notebooks(root)) - failures} notebook(s) follow the template, {failures} do not.")
        return 1 if failures else 0
    if args.cmd == "new":
        import nbformat

        path = root / args.path
        if path.exists():
            print(f"{args.path} exists; not overwriting.", file=sys.stderr)
            return 1
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbformat.from_dict(template_notebook(args.path, args.title)), str(path))
        print(f"Created {args.path}")
        return 0
    if args.cmd == "setup":
        for path in rewrite_generated(root):
            print(f"rewrote the badge or setup cell of {path.relative_to(root)}")
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
