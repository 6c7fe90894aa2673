"""Run All, twice, as a learner does: a notebook runs top to bottom a second time in the same data folder, headless
(as `make` runs it) and live (no MEDIMG_HEADLESS: widget panels appear and nobody clicks them).

Issue 19 asks this of every notebook; the list below holds the ones checked so far."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from helpers import nbtools

papermill = pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parents[1]
#: Notebooks run twice in one fresh data folder, in both modes (quick setting).
RUN_TWICE = ["02_annotation/01_label_images.ipynb"]


@pytest.mark.slow
@pytest.mark.parametrize("headless", [True, False], ids=["headless", "live"])
@pytest.mark.parametrize("notebook", RUN_TWICE)
def test_a_notebook_runs_twice_in_one_data_folder(notebook, headless, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDIMG_QUICK", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    if headless:
        monkeypatch.setenv("MEDIMG_HEADLESS", "1")
    else:
        monkeypatch.delenv("MEDIMG_HEADLESS", raising=False)
    source = ROOT / notebook
    results = []
    for run in (1, 2):
        out = tmp_path / f"run{run}.ipynb"
        try:
            papermill.execute_notebook(str(source), str(out), kernel_name="python3", cwd=str(source.parent),
                                       progress_bar=False)
        except papermill.PapermillExecutionError as error:
            pytest.fail(f"{notebook}, {'headless' if headless else 'live'}, run {run} of 2: {error.ename}: "
                        f"{error.evalue} (cell {error.exec_count})")
        results.append(nbtools.read_key_results(nbformat.read(str(out), as_version=4)))
    assert results[0] and results[1], "each run reports its key result"
    if headless:  # a headless run starts its scripted journal afresh: the same result both times
        assert results[0] == results[1]
    else:  # live, the learner's journal persists: the second run finds the first run's labels, all of them
        assert results[1][0]["value"] >= results[0][0]["value"]
