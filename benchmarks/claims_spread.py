"""The spread of every notebook's claims over seeds: where each notebook's "What you should see" ranges come from.

Runs each notebook headless with ``SEED`` = 0..n-1 (papermill, a fresh data folder per run, so no run reuses another's
files) in the quick and/or full setting, reads the claims its last cell checked (``helpers.nbtools.Claims``), and
writes ``benchmarks/results/claims_spread.json`` (every value, per notebook, claim, setting and seed) and
``claims_spread.md`` (per claim: the values over the seeds, their range, the notebook's expected range, and how many
seeds held it). Runs add to the JSON already there (a run of one notebook or one setting replaces only its own
entries), so the slow full setting can be measured a notebook at a time. Nothing is asserted: a measurement.

    python benchmarks/claims_spread.py [--settings quick full] [--seeds 5 | --seed-list 1 2] [--only 05_ 06_]
    python benchmarks/claims_spread.py --stored   # the stored notebooks (a clean full run, SEED 0) as full seed 0

Full setting, five seeds: about two hours on 2 CPU cores (``04_segmentation_unet`` alone about 45 min); quick: about
20 minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
JSON_PATH = RESULTS / "claims_spread.json"
MD_PATH = RESULTS / "claims_spread.md"


def run_seeds(notebooks: list[Path], settings: list[str], seeds: list[int], report=print,
              save=lambda records: None) -> list[dict[str, Any]]:
    """Run every notebook for every setting and seed; one record per run (claims as the notebook stated them).
    ``save`` gets the records so far after each run (a long run keeps what it measured if stopped)."""
    from helpers import nbtools

    records = []
    for setting in settings:
        for path in notebooks:
            for seed in seeds:
                with tempfile.TemporaryDirectory(prefix="medimg-spread-") as tmp:
                    os.environ["MEDIMG_DATA_DIR"] = str(Path(tmp) / "data")
                    result = nbtools.run_notebook(path, ROOT, Path(tmp) / "out", quick=setting == "quick",
                                                  timeout=3600, parameters={"SEED": seed})
                report(f"{result.notebook} {setting} seed {seed}: {result.status} in {result.seconds:.0f} s, "
                       f"{nbtools.claims_text(result.claims)}{' ' + result.error if result.error else ''}")
                records.append({"notebook": result.notebook, "setting": setting, "seed": seed,
                                "status": result.status, "seconds": round(result.seconds, 1), "error": result.error,
                                "claims": result.claims})
                save(records)
    return records


def merge(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` records with those that ``new`` measures again (same notebook, setting and seed) replaced."""
    again = {(r["notebook"], r["setting"], r["seed"]) for r in new}
    return [r for r in old if (r["notebook"], r["setting"], r["seed"]) not in again] + new


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value else f"{value:.3f}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def spread_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (notebook, setting, claim): the values by seed, min and max where numeric, the expected range the
    notebook stated (its latest), and how many seeds held it."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: (r["notebook"], r["setting"], r["seed"])):
        if r["status"] != "ok":
            key = (r["notebook"], r["setting"], "(run failed)")
            row = rows.setdefault(key, {"values": {}, "expected": "", "held": 0})
            row["values"][r["seed"]] = "failed"
            continue
        for c in r["claims"]:
            key = (r["notebook"], r["setting"], c["claim"])
            row = rows.setdefault(key, {"values": {}, "expected": c["expected"], "held": 0})
            row["values"][r["seed"]] = c["value"]
            row["expected"] = c["expected"]
            row["held"] += bool(c["held"])
    table = []
    for (notebook, setting, claim), row in rows.items():
        values = list(row["values"].values())
        numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        table.append({"notebook": notebook, "setting": setting, "claim": claim, "seeds": len(values),
                      "values": values, "min": min(numeric) if len(numeric) == len(values) else None,
                      "max": max(numeric) if len(numeric) == len(values) else None,
                      "expected": row["expected"], "held": row["held"]})
    return table


def write_markdown(table: list[dict[str, Any]], path: Path, when: str, host: str) -> None:
    lines = ["# Claims over seeds", "",
             f"Written by `benchmarks/claims_spread.py` ({when}, {host}). Each row: one claim of a notebook's \"What you "
             "should see\", its value for seeds 0, 1, 2, ... (papermill `-p SEED n`, a fresh data folder each), the "
             "range of those values, the range the notebook states (measured here, then widened for other machines), "
             "and how many seeds held it. Raw values: `claims_spread.json`. A claim that was restated after these runs (a "
             "range widened, an ordering kept to the full setting, a statistic replaced) keeps the rows measured under "
             "its old name or range: they are the measurements that led to the change.", ""]
    for setting in ("quick", "full"):
        rows = [r for r in table if r["setting"] == setting]
        if not rows:
            continue
        lines += [f"## {setting.capitalize()} setting", "",
                  "| notebook | claim | values by seed | min - max | expected | held |", "|---|---|---|---|---|---|"]
        for r in rows:
            span = f"{_short(r['min'])} - {_short(r['max'])}" if r["min"] is not None else ""
            lines.append(f"| {r['notebook']} | {r['claim']} | {', '.join(_short(v) for v in r['values'])} | {span} | "
                         f"{r['expected']} | {r['held']}/{r['seeds']} |")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from helpers import nbtools

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=["quick"], choices=["quick", "full"])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. n-1 (default 5)")
    parser.add_argument("--seed-list", nargs="*", default=[], help="these seeds instead of 0 .. n-1")
    parser.add_argument("--stored", action="store_true",
                        help="only read the claims of the stored notebooks (a clean full run with SEED 0) as seed 0")
    parser.add_argument("--only", nargs="*", default=[], help="notebooks whose path contains one of these")
    args = parser.parse_args(argv)
    notebooks = [p for p in nbtools.find_notebooks(ROOT)
                 if not args.only or any(s in str(p.relative_to(ROOT)) for s in args.only)]
    os.environ.setdefault("MEDIMG_HEADLESS", "1")
    logging.getLogger("papermill").setLevel(logging.ERROR)  # it warns about every commented parameter line it parses
    old = json.loads(JSON_PATH.read_text())["runs"] if JSON_PATH.exists() else []
    seeds = [int(s) for s in args.seed_list] if args.seed_list else list(range(args.seeds))

    def save(new: list[dict[str, Any]]) -> None:
        records = merge(old, new)
        RESULTS.mkdir(parents=True, exist_ok=True)
        when, host = dt.datetime.now().strftime("%Y-%m-%d %H:%M"), f"{platform.machine()}, {os.cpu_count()} CPU cores"
        JSON_PATH.write_text(json.dumps({"written": when, "host": host, "runs": records}, indent=1), encoding="utf-8")
        write_markdown(spread_table(records), MD_PATH, when, host)

    if args.stored:
        save([{"notebook": p.relative_to(ROOT).as_posix(), "setting": "full", "seed": 0, "status": "ok",
               "seconds": nbtools.stored_seconds(p), "error": "", "source": "stored notebook",
               "claims": nbtools.read_claims(json.loads(p.read_text(encoding="utf-8")))} for p in notebooks])
    else:
        run_seeds(notebooks, args.settings, seeds, save=save)
    print(f"wrote {JSON_PATH.relative_to(ROOT)} and {MD_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
