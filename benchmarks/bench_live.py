"""Live mode, measured: every notebook in the full setting with ``MEDIMG_REUSE=1`` after ``make warm``.

Runs the collection headless (``helpers.nbtools.run_collection``) in live mode into ``--out`` and writes
``benchmarks/results/live_mode.json`` and ``live_mode.md``: per notebook the seconds it took (kernel start included),
the training calls reused and trained, the claims held, and how many claim values equal those of the trained run in
``--trained`` (the executed notebooks ``make warm`` wrote, a run that trained every call). A value that differs is
listed: a timing (the serving lesson's latency) differs between any two runs; a learned number must not. The target is
60 s per notebook on this machine; nothing is asserted, it is a measurement.

    make warm    # once: trains and stores every call (full setting), executed notebooks in outputs-warm/
    python benchmarks/bench_live.py --trained outputs-warm --out outputs-live

Use the same ``MEDIMG_DATA_DIR`` for both: the stored runs live in that folder's tracking store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
TARGET_SECONDS = 60.0


def _claims_of(executed: Path) -> dict[str, Any]:
    from helpers import nbtools

    if not executed.is_file():
        return {}
    return {c["claim"]: c["value"] for c in nbtools.read_claims(json.loads(executed.read_text(encoding="utf-8")))}


def compare(live_claims: list[dict[str, Any]], trained: dict[str, Any]) -> tuple[int, list[str]]:
    """(claims whose value equals the trained run's, names of those that differ, with both values)."""
    same, differ = 0, []
    for claim in live_claims:
        before = trained.get(claim["claim"])
        if before == claim["value"]:
            same += 1
        else:
            differ.append(f"{claim['claim']}: trained {before}, live {claim['value']}")
    return same, differ


def main(argv: list[str] | None = None) -> int:
    from helpers import nbtools

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trained", default="outputs-warm", help="executed notebooks of the run that trained")
    parser.add_argument("--out", default="outputs-live")
    parser.add_argument("only", nargs="*")
    args = parser.parse_args(argv)
    os.environ["MEDIMG_REUSE"] = "1"
    os.environ.setdefault("MEDIMG_HEADLESS", "1")
    results = nbtools.run_collection(ROOT, args.out, quick=False, only=args.only or None)
    rows = []
    for r in results:
        same, differ = compare(r.claims, _claims_of(Path(args.trained) / r.notebook))
        rows.append({"notebook": r.notebook, "status": r.status, "seconds": round(r.seconds, 1),
                     "reused": r.live.get("reused", 0), "trained": r.live.get("trained", 0),
                     "claims_held": sum(c["held"] for c in r.claims), "claims": len(r.claims),
                     "claims_equal_to_trained_run": same, "claims_that_differ": differ, "error": r.error})
    record = {"date": dt.date.today().isoformat(), "host": platform.node(), "cpus": os.cpu_count(),
              "setting": "full", "target_seconds": TARGET_SECONDS, "notebooks": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "live_mode.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Live mode (`MEDIMG_REUSE=1`, full setting), {record['date']}, {record['cpus']} CPU cores", "",
             "After `make warm` in the same data folder. Seconds include the kernel's start; the target is "
             f"{TARGET_SECONDS:.0f} s per notebook. `same claims` counts claim values equal to those of the run that "
             "trained (`make warm`'s executed notebooks).", "",
             "| notebook | seconds | within target | training calls reused | claims held | same claims as trained run |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['notebook']} | {row['seconds']:.0f} | {'yes' if row['seconds'] <= TARGET_SECONDS else 'NO'} "
                     f"| {row['reused']}/{row['reused'] + row['trained']} | {row['claims_held']}/{row['claims']} "
                     f"| {row['claims_equal_to_trained_run']}/{row['claims']} |")
    differing = [(row["notebook"], d) for row in rows for d in row["claims_that_differ"]]
    if differing:
        lines += ["", "Claim values that differ from the trained run:", ""]
        lines += [f"- {nb}: {d}" for nb, d in differing]
    total = sum(row["seconds"] for row in rows)
    lines += ["", f"All {len(rows)} notebooks: {total:.0f} s."]
    (RESULTS / "live_mode.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
