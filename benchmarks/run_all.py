"""The collection's speed and quality in one run (``make bench``): every notebook (quick and full setting, wall
time, peak memory, key result), the micro benchmarks (DICOM ingest against bare pydicom, data generation, training
images/s per model, serving latency and ONNX against PyTorch) and, where ``../shared/data`` exists, the key results
on its real subsets.

Writes ``benchmarks/results/<date>-<host>.json`` (everything, raw) and ``<date>-<host>.md`` (the tables), and copies
the tables to ``benchmarks/results/latest.md``. Every program runs in its own process, and its peak resident memory
is that process's and its children's (``os.wait4``), so one run's memory does not leak into the next. Ratios (ours
against pydicom, ONNX against PyTorch) come from one run of one script; the micro benchmarks report medians of
their repeats; notebooks run ``--notebook-repeats`` times (median). Nothing is asserted: a measurement, not a test.

    python benchmarks/run_all.py [--settings quick full] [--only 03_ 05_] [--skip-micro] [--skip-notebooks]
        [--real auto|yes|no] [--notebook-repeats 1] [--host NAME]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = Path(os.environ.get("MEDIMG_SHARED_DATA", ROOT.parent / "shared" / "data"))

#: The micro benchmarks: (name, script, arguments), run in this order.
MICRO = [
    ("dicom_ingest", "bench_dicom_ingest.py", ["--n", "200", "--repeats", "5"]),
    ("generate", "bench_generate.py", ["--repeats", "3", "--images", "100"]),
    ("train_chest", "bench_train_chest.py", ["--epochs", "2", "--repeats", "2"]),
    ("train_fastai", "bench_train_fastai.py", ["--epochs", "2", "--repeats", "2"]),
    ("train_seg", "bench_train_seg.py", ["--epochs", "3", "--repeats", "2"]),
    ("workshop_quick", "bench_workshop.py", ["--quick"]),
    ("serving", "bench_serving.py", ["--requests", "300"]),
]

#: Real subsets of ../shared/data and the notebook parameters that use them (quick setting, shortened where a
#: notebook's extra sections would dominate the time).
REAL_RUNS = [
    ("03_train_classifier/01_chest_xray_pytorch.ipynb", "chest_xray_kermany_224",
     {"DATA_SOURCE": "kermany", "REAL_DATA_DIR": "{path}", "EPOCHS": 8, "FOLDS": 2}),
    ("04_segmentation_unet/01_sunnybrook_unet.ipynb", "sunnybrook_lv",
     {"DATA_SOURCE": "sunnybrook", "REAL_DATA_DIR": "{path}"}),
    ("06_workshop_experiments/01_ich_experiments.ipynb", "rsna_ich_workshop/exp1_30normal_30hemorrhage_224jpg",
     {"DATA_SOURCE": "folder", "REAL_DATA_PATH": "{path}"}),
]


def measured(command: list[str], log: Path, env: dict[str, str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run ``command``; its exit code, wall seconds and peak RSS in MB (the process and its waited-for children)."""
    start = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env={**os.environ, **(env or {})})
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.2)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"exit_code": process.returncode, "seconds": round(time.perf_counter() - start, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def run_micro(work: Path) -> dict[str, Any]:
    """Every micro benchmark in its own process; its JSON report plus exit code, seconds and peak memory."""
    out = {}
    for name, script, args in MICRO:
        report = work / f"{name}.json"
        run = measured([sys.executable, str(ROOT / "benchmarks" / script), *args, "--json", str(report)],
                       work / f"{name}.log")
        run["report"] = json.loads(report.read_text()) if report.is_file() else None
        if run["exit_code"] != 0:
            run["log_tail"] = (work / f"{name}.log").read_text(errors="replace")[-2000:]
        out[name] = run
        print(f"  {name}: exit {run['exit_code']}, {run['seconds']} s, peak {run['peak_rss_mb']} MB", flush=True)
    return out


_ONE_NOTEBOOK = """
import json, sys
from pathlib import Path
from helpers.nbtools import run_notebook
path, out, quick, params = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", json.loads(sys.argv[4])
r = run_notebook(path, Path(sys.argv[5]), out, quick, parameters=params)
print("RESULT " + json.dumps({"status": r.status, "seconds": r.seconds, "key_results": r.key_results, "error": r.error}))
"""


def run_notebook_measured(notebook: str, quick: bool, work: Path, parameters: dict[str, Any] | None = None,
                          repeats: int = 1) -> dict[str, Any]:
    """One notebook headless in a fresh process (papermill + kernel), ``repeats`` times: median seconds, the
    largest peak memory, status and key results of the last run."""
    runs = []
    for k in range(repeats):
        log = work / f"{notebook.replace('/', '__')}-{'quick' if quick else 'full'}-{k}.log"
        run = measured([sys.executable, "-c", _ONE_NOTEBOOK, str(ROOT / notebook), str(work / "executed"),
                        "1" if quick else "0", json.dumps(parameters or {}), str(ROOT)], log,
                       env={"MEDIMG_HEADLESS": "1"})  # run_notebook sets MEDIMG_QUICK from quick
        text = log.read_text(errors="replace")
        found = re.findall(r"^RESULT (.*)$", text, re.M)
        result = json.loads(found[-1]) if found else {"status": "failed", "error": text[-1000:], "key_results": []}
        runs.append({**run, **result})
    last = runs[-1]
    return {"status": last["status"], "seconds": round(statistics.median(r["seconds"] for r in runs), 1),
            "all_seconds": [r["seconds"] for r in runs], "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "key_results": last.get("key_results", []), "error": last.get("error", "")}


def notebooks(only: list[str] | None) -> list[str]:
    """The collection's notebooks (repository-relative), optionally those whose path contains one of ``only``."""
    from helpers.nbtools import find_notebooks

    found = [p.relative_to(ROOT).as_posix() for p in find_notebooks(ROOT)]
    return [n for n in found if not only or any(s in n for s in only)]


def environment(host: str) -> dict[str, Any]:
    """Where and with what the run happened."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"date": dt.date.today().isoformat(), "host": host, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__, "gpu": gpu,
            "git_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                         text=True).stdout.strip() or None}


# --- The markdown tables ---------------------------------------------------------------------------------------


def _keys(result: dict[str, Any] | None) -> str:
    if not result or not result.get("key_results"):
        return "-" if not result or result.get("status") == "ok" else f"FAILED: {result.get('error', '')[:80]}"
    return "; ".join(f"{k['name']} = {k['value']}{(' ' + k['unit']) if k.get('unit') else ''}"
                     for k in result["key_results"])


def _get(d: Any, *keys: Any, default: Any = None) -> Any:
    for k in keys:
        if isinstance(d, dict) and k in d:
            d = d[k]
        elif isinstance(d, list) and isinstance(k, int) and -len(d) <= k < len(d):
            d = d[k]
        else:
            return default
    return d


def markdown(report: dict[str, Any]) -> str:
    """The report as markdown tables."""
    env = report["environment"]
    lines = [f"# Benchmarks {env['date']} on {env['host']}", "",
             f"{env['machine']}, {env['cpu_count']} CPU cores, GPU: {env['gpu'] or 'none'}; Python {env['python']}, "
             f"torch {env['torch']}; commit {env['git_commit']}. Made by `make bench` (`benchmarks/run_all.py`).", ""]
    nbs = report.get("notebooks", {})
    if nbs:
        lines += ["## Notebooks (headless, fresh kernel each)", "",
                  "| notebook | quick: s | quick: peak MB | full: s | full: peak MB | key result (full; quick if no full run) |",
                  "|---|---|---|---|---|---|"]
        for name in sorted({n for setting in nbs.values() for n in setting}):
            q, f = nbs.get("quick", {}).get(name), nbs.get("full", {}).get(name)
            cell = lambda r, k: "-" if r is None else (str(r[k]) if r["status"] == "ok" else "failed")  # noqa: E731
            lines.append(f"| `{name}` | {cell(q, 'seconds')} | {cell(q, 'peak_rss_mb')} | {cell(f, 'seconds')} | "
                         f"{cell(f, 'peak_rss_mb')} | {_keys(f or q)} |")
        lines.append("")
    micro = report.get("micro", {})
    if micro:
        ingest = _get(micro, "dicom_ingest", "report")
        if ingest:
            lines += ["## DICOM folder ingest against bare pydicom (same files, same run)", "",
                      "| files | ours ms/file | bare `dcmread().pixel_array` ms/file | ratio ours / bare |", "|---|---|---|---|",
                      f"| {ingest['n_files']} ({ingest['image']}) | {ingest['ours_ms_per_file']} | "
                      f"{ingest['bare_ms_per_file']} | {ingest['ratio_ours_over_bare']} |", ""]
        generate = _get(micro, "generate", "report", "results")
        if generate:
            lines += ["## Generated data (images/s, median of repeats, one process)", "",
                      "Written to the data folder, the same files written again with plain `open().write()` (the file "
                      "system's own cost, the *file floor*), the set made in a RAM folder (the generator's cost), and "
                      "synthesised in memory.", "",
                      "| set | files | data folder | files alone (file floor) | RAM folder | in memory |", "|---|---|---|---|---|---|"]
            lines += [f"| {name} | {r.get('files', '')} | {_get(r, 'to_dicom', 'images_per_s')} | "
                      f"{_get(r, 'file_floor', 'images_per_s', default='')} | {_get(r, 'in_ram', 'images_per_s', default='')} | "
                      f"{_get(r, 'in_memory', 'images_per_s', default='')} |" for name, r in generate.items()]
            lines.append("")
        rows = []
        for r in _get(micro, "train_chest", "report", "results", default=[]):
            rows.append((f"chest {r['model']} (PyTorch, 64 px)", r["train_images_per_s"]))
        fastai = _get(micro, "train_fastai", "report")
        if fastai:
            rows.append((f"knee small CNN (fastai, {fastai['size']} px)", fastai["images_per_s"]))
        for r in _get(micro, "train_seg", "report", "results", default=[]):
            rows.append((f"LV {r['model']} (Keras, {_get(micro, 'train_seg', 'report', 'size_px')} px)",
                         r["train_images_per_s"]))
        workshop = _get(micro, "workshop_quick", "report")
        if workshop:
            rows.append(("ICH head on frozen features (quick setting: all runs)",
                         f"{workshop['runs_s']} s for all runs; features {workshop['feature_images_per_s']} images/s"))
        if rows:
            lines += ["## Training speed on this machine's " + ("GPU" if env["gpu"] else "CPU") +
                      " (validation included, median of repeats)", "", "| model | training images/s |", "|---|---|"]
            lines += [f"| {name} | {value} |" for name, value in rows]
            lines.append("")
        serving = _get(micro, "serving", "report")
        if serving:
            lines += ["## Serving (local inference server on 127.0.0.1, one 224 px PNG per request)", "",
                      "| runtime | workers | clients | p50 ms | p95 ms | requests/s |", "|---|---|---|---|---|---|"]
            lines += [f"| {r['runtime']} | {r['workers']} | {r['concurrency']} | {r['p50_ms']} | {r['p95_ms']} | "
                      f"{r['requests_per_s']} |" for r in serving["servers"]]
            m = serving["model_only"]
            lines += ["", f"Model alone, one image per call: PyTorch {m['torch_ms']} ms, ONNX Runtime {m['onnx_ms']} ms "
                      f"(PyTorch / ONNX = {m['torch_over_onnx']}).", ""]
        failed = [n for n, r in micro.items() if r["exit_code"] != 0]
        if failed:
            lines += [f"Micro benchmarks that failed: {', '.join(failed)} (see the JSON's log_tail).", ""]
    real = report.get("real", {})
    if real:
        lines += ["## Quality on real subsets (`../shared/data`, quick setting)", "", "| notebook | data | s | key result |",
                  "|---|---|---|---|"]
        lines += [f"| `{n}` | {r['data']} | {r['seconds']} | {_keys(r)} |" for n, r in real.items()]
        lines.append("")
    elif report.get("real_skipped"):
        lines += [f"Real-data quality not measured: {report['real_skipped']}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="*", default=["quick", "full"], choices=["quick", "full"])
    parser.add_argument("--only", nargs="*", default=None, help="notebooks whose path contains one of these")
    parser.add_argument("--skip-micro", action="store_true")
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--real", default="auto", choices=["auto", "yes", "no"],
                        help="run notebooks on ../shared/data's real subsets (auto: when the folder exists)")
    parser.add_argument("--notebook-repeats", type=int, default=1)
    parser.add_argument("--host", default=f"cpu{os.cpu_count()}", help="a name for this machine in the file names")
    args = parser.parse_args()

    # The environment (which imports torch) is read after the runs: a child forked from a process holding torch
    # would inherit its resident size as the floor of its peak (ru_maxrss survives exec).
    report: dict[str, Any] = {"notebooks": {}, "micro": {}, "real": {}}
    stem = f"{dt.date.today().isoformat()}-{re.sub(r'[^A-Za-z0-9_.-]', '_', args.host)}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medimg-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_notebooks:
            for setting in args.settings:
                print(f"notebooks, {setting} setting:", flush=True)
                for nb in notebooks(args.only):
                    r = run_notebook_measured(nb, setting == "quick", work, repeats=args.notebook_repeats)
                    report["notebooks"].setdefault(setting, {})[nb] = r
                    print(f"  {nb}: {r['status']}, {r['seconds']:.0f} s, peak {r['peak_rss_mb']} MB; {_keys(r)}", flush=True)
        if not args.skip_micro:
            print("micro benchmarks:", flush=True)
            report["micro"] = run_micro(work)
        if args.real == "no":
            report["real_skipped"] = "--real no."
        elif not SHARED.is_dir():
            report["real_skipped"] = f"{SHARED} does not exist (see ../shared/data/README.md)."
        else:
            print("real subsets (quick setting):", flush=True)
            for nb, sub, params in REAL_RUNS:
                if args.only and not any(s in nb for s in args.only):
                    continue
                path = SHARED / sub
                if not path.exists():
                    continue
                filled = {k: (str(path) if v == "{path}" else v) for k, v in params.items()}
                r = run_notebook_measured(nb, True, work, parameters=filled)
                report["real"][nb] = {**r, "data": sub}
                print(f"  {nb} on {sub}: {r['status']}, {r['seconds']:.0f} s; {_keys(r)}", flush=True)
    report = {"environment": environment(args.host), **report}
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (RESULTS / f"{stem}.md").write_text(text + "\n")
    shutil.copyfile(RESULTS / f"{stem}.md", RESULTS / "latest.md")
    print(f"\nwrote benchmarks/results/{stem}.json and .md (and latest.md)\n\n{text}")


if __name__ == "__main__":
    main()
