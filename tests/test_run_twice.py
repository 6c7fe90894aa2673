"""Run All, twice, as a learner does (issue 19, item 4): every notebook runs top to bottom a second time in the same
data folder, in the quick setting, headless (as `make` runs it) and live (no MEDIMG_HEADLESS: widget panels appear
and nobody clicks them), with the same claims held. About 4 x 5 minutes in all on 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import nbtools

pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [p.relative_to(ROOT).as_posix() for p in nbtools.find_notebooks(ROOT)]
#: Units of key results that measure time: they differ from run to run by nature.
TIMING_UNITS = {"ms", "s", "min"}


def _run(notebook: str, out: Path, run: int, mode: str) -> list[dict]:
    """Key results of one run of ``notebook`` through `make demo`'s runner (into ``out``); a failure, or a claim of
    the notebook that does not hold, fails the test."""
    result = nbtools.run_notebook(ROOT / notebook, ROOT, out, quick=True)
    assert result.status == "ok", f"{mode}, run {run} of 2: {result.error}"
    assert len(result.claims) >= 3 and result.claims_held, f"{mode}, run {run} of 2: {nbtools.claims_text(result.claims)}"
    return result.key_results


@pytest.mark.slow
@pytest.mark.parametrize("headless", [True, False], ids=["headless", "live"])
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_a_notebook_runs_twice_in_one_data_folder(notebook, headless, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDIMG_QUICK", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    if headless:
        monkeypatch.setenv("MEDIMG_HEADLESS", "1")
    else:
        monkeypatch.delenv("MEDIMG_HEADLESS", raising=False)
    mode = "headless" if headless else "live"
    first, second = (_run(notebook, tmp_path / f"run{run}", run, mode) for run in (1, 2))
    assert first and second, "each run reports its key result"
    if headless:  # the same computation on the same seed, with the first run's files in the data folder
        same = lambda keys: [k for k in keys if k.get("unit") not in TIMING_UNITS]  # noqa: E731
        assert same(first) == same(second)


def test_the_annotation_journal_survives_a_second_live_run(tmp_path, monkeypatch):
    """Live, the learner's labels persist: the second Run All finds the first run's, all of them."""
    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDIMG_QUICK", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    monkeypatch.delenv("MEDIMG_HEADLESS", raising=False)
    notebook = "02_annotation/01_label_images.ipynb"
    first, second = (_run(notebook, tmp_path / f"run{run}", run, "live")[0]["value"] for run in (1, 2))
    assert first == 0 and second == 12  # no label before the first run's crash; all 12 before the second's
