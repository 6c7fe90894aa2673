"""Generation speed of the generated data sets: images per second, DICOM writing included.

Run ``python benchmarks/bench_generate.py [--json out.json] [--repeats 5] [--images 200] [--size 256]
[--dir FOLDER]``. Each set is made ``repeats`` times, each time into a fresh temporary folder inside
``--dir`` (default ``helpers.config.data_dir()``, where the sets go: file creation speed differs a
lot between file systems, a monitored /tmp can cost a millisecond a file), with about ``images``
images, timed end to end (synthesis + DICOM + contours + manifest), and synthesised in memory as
often. The report gives medians over the repeats, per set: images/s by the wall clock and by this
process's CPU time (one process, one core; CPU time is steadier on a shared machine), and the same
for writing ready-made images with ``helpers.dicom.write_dicom`` alone, the floor under every set's
cost. A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from shutil import rmtree
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.config import data_dir, display_path  # noqa: E402
from helpers.datasets import generated as G  # noqa: E402
from helpers.dicom import stable_uid, write_dicom  # noqa: E402

Case = tuple[Callable[[Path], Any], Callable[[], Any], int]


def _cases(n_images: int, size: int) -> dict[str, Case]:
    """Per set: (make into a folder, synthesise in memory, number of images), about ``n_images`` each."""
    per = 2
    chest = dict(n_patients=max(1, n_images // per), images_per_patient=per, size=size)
    knee = dict(n_patients=max(1, n_images // per), images_per_patient=per, size=size)
    cardiac = dict(n_patients=max(1, n_images // 10), slices_per_patient=10, size=size)
    head = dict(n_patients=max(1, n_images // 10), slices_per_patient=10, size=size)
    return {
        "chest_xray": (
            lambda d: G.make_chest_xray(d, **chest),
            lambda: G.synth_chest_xray(masks=(), **chest),
            chest["n_patients"] * per,
        ),
        "chest_xray_multilabel": (
            lambda d: G.make_chest_xray(d, multilabel=True, **chest),
            lambda: G.synth_chest_xray(masks=(), multilabel=True, **chest),
            chest["n_patients"] * per,
        ),
        "cardiac_mr": (
            lambda d: G.make_cardiac_mr(d, **cardiac),
            lambda: G.synth_cardiac_mr(masks=(), **cardiac),
            cardiac["n_patients"] * 10,
        ),
        "knee_xray": (
            lambda d: G.make_knee_xray(d, **knee),
            lambda: G.synth_knee_xray(masks=(), **knee),
            knee["n_patients"] * per,
        ),
        "head_ct": (
            lambda d: G.make_head_ct(d, **head),
            lambda: G.synth_head_ct(masks=(), **head),
            head["n_patients"] * 10,
        ),
    }


def _write_only(folder: Path, n_images: int, size: int) -> None:
    """Write ``n_images`` ready-made uint16 DX images with ``write_dicom`` (the DICOM floor)."""
    pixels = np.random.default_rng(0).integers(0, 4096, (size, size), dtype=np.uint16)
    series = stable_uid("bench", "series")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        write_dicom(
            folder / f"{i:04d}.dcm",
            pixels,
            modality="DX",
            patient_id="BENCH",
            study_uid=stable_uid("bench"),
            series_uid=series,
            instance_number=i + 1,
            pixel_spacing=(0.5, 0.5),
            bits_stored=12,
        )


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) that one call of ``fn`` takes."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _rates(count: int, fn: Callable[[], Any], repeats: int, cleanup: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Median images/s by wall clock and by CPU time over ``repeats`` calls of ``fn`` (``cleanup`` after each,
    untimed)."""
    times = []
    for _ in range(repeats):
        times.append(_timed(fn))
        if cleanup is not None:
            cleanup()
    return {
        "images_per_s": round(statistics.median(count / w for w, _ in times), 1),
        "images_per_cpu_s": round(statistics.median(count / max(c, 1e-9) for _, c in times), 1),
        "runs_images_per_s": [round(count / w, 1) for w, _ in times],
    }


def run(repeats: int = 5, n_images: int = 200, size: int = 256, where: Path | None = None) -> dict[str, Any]:
    """Median images/s per set (written to disk, and in memory) and for write_dicom alone."""
    results: dict[str, Any] = {}
    where = Path(where) if where is not None else data_dir()
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medimg-bench-", dir=where) as tmp:
        root = Path(tmp)
        G.make_chest_xray(root / "warm-up", n_patients=2, size=size)  # first-call costs (tables, imports)
        for name, (make, synth, count) in _cases(n_images, size).items():
            folder = root / name  # a fresh folder each time: generation, not deletion of the last run, is timed
            results[name] = {
                "images": count,
                "to_dicom": _rates(
                    count, lambda make=make, folder=folder: make(folder), repeats, lambda folder=folder: rmtree(folder)
                ),
                "in_memory": _rates(count, synth, repeats),
            }
        folder = root / "write_only"
        results["write_dicom_only"] = {
            "images": n_images,
            "to_dicom": _rates(n_images, lambda: _write_only(folder, n_images, size), repeats, lambda: rmtree(folder)),
        }
    return {
        "benchmark": "generated data sets: images/s, medians over repeats, one process",
        "size": size,
        "repeats": repeats,
        "folder": display_path(where),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()} {platform.processor()}".strip(),
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table, write ``--json`` if given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=200, help="about this many images per set and run")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--dir", type=Path, help="write inside this folder (default: helpers.config.data_dir())")
    args = parser.parse_args(argv)
    report = run(args.repeats, args.images, args.size, args.dir)
    print(f"{'set':24s} {'images':>6s} {'DICOM img/s':>12s} {'(per CPU s)':>12s} {'memory img/s':>13s}")
    for name, r in report["results"].items():
        memory = r.get("in_memory", {}).get("images_per_s", float("nan"))
        disk = r["to_dicom"]
        rates = f"{disk['images_per_s']:12.1f} {disk['images_per_cpu_s']:12.1f} {memory:13.1f}"
        print(f"{name:24s} {r['images']:6d} {rates}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
