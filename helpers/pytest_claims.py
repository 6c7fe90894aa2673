"""A pytest plugin for notebook claims under ``make test``: nbval runs each notebook cell by cell; the cell whose output
holds a claims table (:meth:`helpers.nbtools.Claims.table`) fails when a claim did not hold, and the run ends with the
claims held per notebook. The repository's root ``conftest.py`` loads it (so it sees the notebook folders' items, not
only ``tests/``); elsewhere: ``pytest -p helpers.pytest_claims --nbval-lax notebook.ipynb``."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.nbtools import CLAIMS_MIME, claims_text

_CLAIMS: dict[str, list[dict]] = {}


def _claims_in(item: pytest.Item) -> dict | None:
    for out in getattr(item, "test_outputs", None) or []:
        record = out.get("data", {}).get(CLAIMS_MIME)
        if record:
            return dict(record)
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.passed:
        return
    record = _claims_in(item)
    if record is None:
        return
    path = Path(str(item.fspath))
    notebook = (path.relative_to(item.config.rootpath) if path.is_relative_to(item.config.rootpath) else path).as_posix()
    claims = record["claims"]
    _CLAIMS[f"{notebook} ({'quick' if record.get('quick') else 'full'} setting)"] = claims
    missed = [c for c in claims if not c["held"]]
    if missed:
        report.outcome = "failed"
        report.longrepr = f"{notebook}: {len(missed)} claim(s) of 'What you should see' did not hold:\n" + "\n".join(
            f"  {c['claim']}: {c['value']} (expected {c['expected']})" for c in missed)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001 (pytest's hook)
    if not _CLAIMS:
        return
    terminalreporter.section("claims held per notebook")
    for notebook, claims in sorted(_CLAIMS.items()):
        terminalreporter.write_line(f"{notebook}: {claims_text(claims)}")
