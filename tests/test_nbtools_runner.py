"""The `make demo` runner: executes notebooks headless, reads key results, names the failing cell."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from helpers import nbtools

pytest.importorskip("papermill")


def write_nb(path: Path, sources: list[str]) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


@pytest.mark.slow
def test_run_collection_reports_status_key_result_and_failing_cell(tmp_path, capfd):
    write_nb(tmp_path / "01_load_data" / "01_ok.ipynb",
             ["import os\nQUICK = os.environ['MEDIMG_QUICK']",
              "from helpers.nbtools import key_result\nkey_result('answer', 0.5, 'AUC')"])
    write_nb(tmp_path / "02_annotation" / "01_bad.ipynb", ["x = 1", "raise ValueError('boom')"])
    lines = []
    results = nbtools.run_collection(tmp_path, tmp_path / "outputs", quick=True, report=lines.append)
    ok, bad = results
    assert len(lines) == 3 and lines[0].startswith("Running 2 notebook(s), quick setting")
    assert lines[1].startswith("[1/2] 01_load_data/01_ok.ipynb: ok in ") and "answer = 0.500 AUC" in lines[1]
    assert " left" in lines[1] and lines[2].startswith("[2/2] 02_annotation/01_bad.ipynb: failed")
    assert "without encryption" not in capfd.readouterr().err  # the kernels' TCP warning, once per notebook, is gone
    assert ok.status == "ok" and ok.key_results == [{"name": "answer", "value": 0.5, "unit": "AUC"}]
    assert ok.key_text == "answer = 0.500 AUC"
    assert bad.status == "failed"
    assert "02_annotation/01_bad.ipynb" in bad.error and "code cell 2" in bad.error and "boom" in bad.error
    assert (tmp_path / "outputs" / "01_load_data" / "01_ok.html").exists()
    index = (tmp_path / "outputs" / "index.html").read_text()
    assert "01_ok.html" in index and "failed" in index
    summary = json.loads((tmp_path / "outputs" / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["ok", "failed"]
    table = nbtools.format_table(results)
    assert table.splitlines()[0].split() == ["notebook", "status", "seconds", "claims", "key", "result"]
    assert "answer = 0.500 AUC" in table


def test_read_key_results_from_stored_outputs():
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {nbtools.KEY_RESULT_MIME: {"name": "dice", "value": 0.9, "unit": ""},
                                                  "text/plain": "Key result: dice = 0.9"}}]}]}
    assert nbtools.read_key_results(nb) == [{"name": "dice", "value": 0.9, "unit": ""}]


def test_key_result_displays_both_text_and_record(monkeypatch):
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, raw: shown.append(obj))
    assert nbtools.key_result("n", 3) is None
    assert shown == [{nbtools.KEY_RESULT_MIME: {"name": "n", "value": 3, "unit": ""}, "text/plain": "Key result: n = 3"}]


def test_estimate_left_scales_stored_durations_by_this_runs_pace(tmp_path):
    assert nbtools.estimate_left(0, 0, 600) == 600  # nothing done yet: the stored runs' time
    assert nbtools.estimate_left(30, 300, 600) == 60  # ten times faster so far (a quick run): a tenth of it
    assert nbtools.estimate_left(200, 100, 50) == 100  # twice as slow: twice as long
    nb = tmp_path / "n.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {"papermill": {"duration": 12.5}}}))
    assert nbtools.stored_seconds(nb) == 12.5
    nb.write_text(json.dumps({"cells": [], "metadata": {}}))
    assert nbtools.stored_seconds(nb) is None and nbtools.stored_seconds(tmp_path / "absent.ipynb") is None


def test_claims_check_ranges_orderings_and_settings(monkeypatch, capsys):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    monkeypatch.setattr(nbtools, "_in_ipython", lambda: True)  # as in a notebook
    claims = nbtools.Claims(quick=True)
    assert claims.between("auc", 0.7, full=(0.85, 1.0), quick=(0.6, 1.0), key=True)
    assert not claims.between("dice", float("nan"), full=(0.0, 1.0))  # NaN never holds
    assert claims.above("hits above chance", 0.5, 0.07)
    assert not claims.above("ensemble vs median fold", 0.90, 0.95, -0.02)
    assert claims.at_least("tie", 0.35, 0.35) and not claims.at_least("below", 0.3, 0.35)
    assert claims.equal("leaks", 0, 0)
    assert claims.above("full only", 0.0, 1.0, only="full")  # not stated in the quick setting
    claims.equal("leaks", 1, 0)  # a re-run cell replaces its claim
    assert [r.claim for r in claims.rows] == ["auc", "dice", "hits above chance", "ensemble vs median fold", "tie",
                                              "below", "leaks"]
    assert [r.expected for r in claims.rows] == ["0.600 to 1.000", "0.000 to 1.000", "> 0.070", "> 0.950 - 0.020",
                                                 ">= 0.350", ">= 0.350", "= 0"]
    assert claims.summary() == "3 of 7 claims held (quick setting)" and not claims.held
    frame = claims.table()
    assert frame.held.tolist() == ["yes", "NO", "yes", "NO", "yes", "NO", "NO"]
    record = shown[-1][nbtools.CLAIMS_MIME]
    assert record["quick"] is True and [c["held"] for c in record["claims"]] == [True, False, True, False, True, False,
                                                                                  False]
    assert "Not held: dice; ensemble vs median fold; below; leaks" in shown[-1]["text/plain"]
    assert shown[0][nbtools.KEY_RESULT_MIME] == {"name": "auc", "value": 0.7, "unit": ""}  # the key claim
    nb = {"cells": [{"outputs": [{"data": {nbtools.CLAIMS_MIME: record}}]}]}
    assert nbtools.claims_text(nbtools.read_claims(nb)) == "claims 3/7, not held: dice; ensemble vs median fold; below; leaks"
    assert nbtools.claims_text([]) == "-"
    with pytest.raises(ValueError, match="only"):
        claims.equal("x", 1, 1, only="fast")
    monkeypatch.setattr(nbtools, "_in_ipython", lambda: False)  # a script prints the table instead
    shown.clear()
    claims.table()
    assert shown == [] and "3 of 7 claims held" in capsys.readouterr().out


def test_run_collection_reports_claims_and_make_demo_fails_when_one_does_not_hold(tmp_path, capfd):
    root = tmp_path / "repo"
    write_nb(root / "01_load_data" / "01_ok.ipynb",
              ["from helpers.nbtools import Claims\nclaims = Claims(True)\nclaims.equal('a', 1, 1, key=True)\n"
               "claims.between('b', 0.5, full=(0, 1))\nclaims.above('c', 2, 1)\nclaims.table();"])
    write_nb(root / "02_annotation" / "01_off.ipynb",
              ["from helpers.nbtools import Claims\nclaims = Claims(True)\nclaims.equal('a', 1, 2)\nclaims.table();"])
    code = nbtools.main(["--root", str(root), "run", "--quick", "--out", str(tmp_path / "out")])
    out, err = capfd.readouterr()
    assert code == 1
    assert "[1/2] 01_load_data/01_ok.ipynb: ok in" in out and "claims 3/3 - a = 1" in out
    assert "claims 0/1, not held: a" in out
    assert "CLAIMS NOT HELD in 02_annotation/01_off.ipynb" in err


@pytest.mark.slow
def test_under_nbval_a_claim_that_does_not_hold_fails_its_cell_and_the_run_lists_claims(tmp_path):
    import subprocess
    import sys

    write_nb(tmp_path / "ok.ipynb", ["from helpers.nbtools import Claims\nclaims = Claims(True)\n"
                                     "claims.equal('a', 1, 1, key=True)\nclaims.between('b', 0.5, full=(0, 1))\n"
                                     "claims.table();"])
    write_nb(tmp_path / "off.ipynb", ["x = 1", "from helpers.nbtools import Claims\nclaims = Claims(True)\n"
                                      "claims.between('dice', 0.2, full=(0.9, 1.0))\nclaims.table();"])
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "helpers.pytest_claims",
                          "--nbval-lax", "--nbval-current-env", "ok.ipynb", "off.ipynb"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout[-3000:]
    assert "1 failed, 2 passed" in run.stdout  # only the claims cell of off.ipynb
    assert "dice: 0.2 (expected 0.900 to 1.000)" in run.stdout
    assert "ok.ipynb (quick setting): claims 2/2" in run.stdout and "off.ipynb (quick setting): claims 0/1" in run.stdout


@pytest.mark.slow
def test_live_mode_reuses_a_notebook_training_function_on_the_next_run_and_the_table_says_so(tmp_path, monkeypatch):
    """A training function a notebook defines (fingerprinted by its source) is stored on the first run and reused on
    the second; editing its source makes the third run train again (issue 19, item 3)."""
    monkeypatch.setenv("MEDIMG_REUSE", "1")
    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path / "data"))
    cell = ("import numpy as np\nfrom helpers import live\n\n@live.reusable\ndef fit(x, epochs):\n"
            "    return float((x ** 2).sum() * epochs){edit}\n\nprint(fit(np.arange(4.0), 3))")
    write_nb(tmp_path / "repo" / "01_load_data" / "01_fit.ipynb", [cell.format(edit="")])
    runs = []
    for edit in ("", "", " + 0.0"):
        write_nb(tmp_path / "repo" / "01_load_data" / "01_fit.ipynb", [cell.format(edit=edit)])
        lines: list[str] = []
        runs.append(nbtools.run_collection(tmp_path / "repo", tmp_path / "out", quick=True, report=lines.append)[0])
        assert runs[-1].status == "ok", runs[-1].error
    assert [r.live for r in runs] == [{"reused": 0, "trained": 1}, {"reused": 1, "trained": 0},
                                      {"reused": 0, "trained": 1}]
    assert "live 1/1 reused" in lines[-1] or nbtools.live_text(runs[1].live) == "live 1/1 reused"
    table = nbtools.format_table(runs[1:2])
    assert "live mode" in table.splitlines()[0] and "1/1 reused" in table
    assert nbtools.read_live({"cells": []}) == {}
