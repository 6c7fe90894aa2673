"""The notebook template (CONTRIBUTING.md) holds for every lesson notebook, and the checker catches departures."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from helpers import nbtools
from helpers.errors import NotebookTemplateError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = nbtools.find_notebooks(ROOT)
REL = "01_load_data/99_fixture.ipynb"


def executed(nb: dict) -> dict:
    """Give every code cell a clean run's execution count and one small output, as a stored notebook has."""
    nb = copy.deepcopy(nb)
    n = 0
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            n += 1
            cell["execution_count"] = n
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ok\n"}]
    return nb


@pytest.fixture
def good() -> dict:
    return executed(nbtools.template_notebook(REL, "A fixture lesson"))


def test_every_lesson_notebook_follows_the_template():
    assert NOTEBOOKS, "no notebooks found in the numbered folders"
    failures = []
    for path in NOTEBOOKS:
        try:
            nbtools.assert_template(path, ROOT)
        except NotebookTemplateError as exc:
            failures.append(str(exc))
    assert not failures, "\n\n".join(failures)


def test_template_notebook_passes(good):
    assert nbtools.check_template(good, REL) == []


def test_missing_parameters_cell_fails(good):
    for cell in good["cells"]:
        cell.get("metadata", {}).pop("tags", None)
    problems = nbtools.check_template(good, REL)
    assert any("tagged `parameters`" in p for p in problems), problems


def test_missing_parameters_cell_fails_on_a_file(tmp_path, good):
    for cell in good["cells"]:
        cell.get("metadata", {}).pop("tags", None)
    path = tmp_path / "01_load_data" / "99_fixture.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps(good))
    with pytest.raises(NotebookTemplateError, match="parameters"):
        nbtools.assert_template(path, tmp_path)


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda nb: nb["cells"][0].update(source="No title here"), "'# Title'"),
        (lambda nb: nb["cells"][0].update(source="# T\n\nno badge\n**Objectives** x\n**Time:** 5 minutes"), "Colab badge"),
        (lambda nb: nb["cells"][0].update(source=nb["cells"][0]["source"].replace("**Time:** 20 minutes", "")),
         "estimated time"),
        (lambda nb: nb["cells"].pop(1), "setup code cell"),
        (lambda nb: nb["cells"][3].update(source="import helpers"), "print_versions()"),
        (lambda nb: nb["cells"].pop(-2), "What you should see"),
        (lambda nb: nb["cells"].pop(-1), "Exercises"),
        (lambda nb: nb["metadata"]["kernelspec"].update(name="conda-env-foo"), "kernelspec"),
        (lambda nb: nb["cells"][2].update(source="SEED = 0"), "define QUICK"),
    ],
)
def test_each_departure_is_named(good, mutate, expected):
    mutate(good)
    problems = nbtools.check_template(good, REL)
    assert any(expected in p for p in problems), problems


def test_badge_must_match_the_configured_repository(good):
    good["cells"][0]["source"] = good["cells"][0]["source"].replace(nbtools.REPOSITORY, "someone/fork")
    assert any("Colab badge" in p for p in nbtools.check_template(good, REL))


@pytest.mark.parametrize(
    "text,expected",
    [
        ("saved to /home/alice/data/x.dcm", "machine path"),
        ("/root/.cache/medimg-tutorials", "machine path"),
        ("https://acct.blob.core.windows.net/c/x?sv=2022&sig=AbCdEfGhIjKlMnOp%2B", "SAS signature"),
        ("DefaultEndpointsProtocol=https;AccountKey=" + "A" * 40, "account key"),
        ("/subscriptions/12345678-1234-1234-1234-123456789abc/resourceGroups/rg", "subscription id"),
    ],
)
def test_stored_outputs_must_not_hold_paths_or_secrets(good, text, expected):
    code = [c for c in good["cells"] if c["cell_type"] == "code"]
    code[-1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": text}]
    assert any(expected in p for p in nbtools.check_template(good, REL))


def test_outputs_must_come_from_one_clean_run(good):
    code = [c for c in good["cells"] if c["cell_type"] == "code"]
    code[0]["execution_count"] = 7
    assert any("execution counts" in p for p in nbtools.check_template(good, REL))
    code[0]["execution_count"] = 1
    code[1]["outputs"] = [{"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": []}]
    assert any("stores an error" in p for p in nbtools.check_template(good, REL))
    for c in code:
        c["outputs"] = []
    assert any("without outputs" in p for p in nbtools.check_template(good, REL))


def test_output_size_cap(good):
    code = [c for c in good["cells"] if c["cell_type"] == "code"]
    code[-1]["outputs"] = [{"output_type": "display_data", "metadata": {},
                            "data": {"image/png": "A" * (nbtools.MAX_OUTPUT_BYTES + 1)}}]
    assert any("cap" in p for p in nbtools.check_template(good, REL))


def test_rewrite_generated_fixes_a_stale_badge_and_setup_cell(tmp_path, good):
    good["cells"][0]["source"] = good["cells"][0]["source"].replace(nbtools.REPOSITORY, "old/name")
    good["cells"][1]["source"] = ('import sys\nif "google.colab" in sys.modules:\n'
                                  '    %pip install -q "medimg-helpers[all] @ git+https://github.com/old/name.git"\n')
    problems = nbtools.check_template(good, REL)
    assert any("Colab badge" in p for p in problems) and any("setup cell must be the one" in p for p in problems)
    path = tmp_path / REL
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(good))
    assert nbtools.rewrite_generated(tmp_path) == [path]
    assert nbtools.check_template(json.loads(path.read_text()), REL) == []
    assert nbtools.rewrite_generated(tmp_path) == []


def test_setup_cell_installs_the_lessons_extras_and_holds_colabs_packages():
    src = nbtools.setup_source("05_deploy_explain/01_explain.ipynb")
    lines = [line.strip() for line in src.splitlines()]
    assert 'if "google.colab" in sys.modules:' in lines
    clone = f"!git clone -q --depth 1 -b main https://github.com/{nbtools.REPOSITORY}.git {nbtools.COLAB_CHECKOUT}"
    assert any(line.startswith(clone) for line in lines)
    assert f'!pip list --format=freeze | grep -v "^medimg-helpers==" > {nbtools.COLAB_PREINSTALLED}' in lines
    assert (f'%pip install -q -c {nbtools.COLAB_PREINSTALLED} "{nbtools.COLAB_CHECKOUT}[torch,explain,tf]"' in lines)
    assert f"%cd {nbtools.COLAB_CHECKOUT}/05_deploy_explain" in lines
    # A lesson with no extras installs the package alone; extras such as notebooks/test never reach Colab.
    assert f'"{nbtools.COLAB_CHECKOUT}"' in nbtools.setup_source("01_load_data/01_dicom_fundamentals.ipynb")
    assert not any({"all", "notebooks", "test", "serve"} & set(e) for e in nbtools.NOTEBOOK_EXTRAS.values())


def test_every_notebook_has_an_extras_entry_or_needs_none():
    listed = set(nbtools.NOTEBOOK_EXTRAS)
    present = {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS}
    assert listed <= present, f"NOTEBOOK_EXTRAS names notebooks that do not exist: {sorted(listed - present)}"


def test_every_notebook_stores_at_least_three_claims_all_held_one_of_them_the_key_result():
    """The stored outputs come from a clean full run (issue 19, item 1): its claims table is there and held."""
    for path in NOTEBOOKS:
        claims = nbtools.read_claims(json.loads(path.read_text(encoding="utf-8")))
        rel = path.relative_to(ROOT)
        assert len(claims) >= 3, f"{rel} stores {len(claims)} claims"
        assert all(c["held"] for c in claims), f"{rel}: {nbtools.claims_text(claims)}"
        assert sum(c["key"] for c in claims) == 1, f"{rel}: one claim is the key result"


def test_a_notebook_without_a_claims_cell_is_named(good):
    good["cells"] = [c for c in good["cells"] if "Claims(" not in "".join(c["source"])]
    assert any("as claims" in p for p in nbtools.check_template(good, REL))
