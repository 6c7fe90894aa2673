"""Generation speed of the generated data sets: images per second, DICOM writing included.

Run ``python benchmarks/bench_generate.py [--json out.json] [--repeats 5] [--images 200] [--size 256]
[--dir FOLDER] [--ram-dir FOLDER | --no-ram]``. Each set is made ``repeats`` times, each time into a
fresh temporary folder inside ``--dir`` (default ``helpers.config.data_dir()``, where the sets go),
with about ``images`` images, timed end to end (synthesis + DICOM + contours + manifest), and
synthesised in memory as often.

Creating files costs very different amounts on different file systems: 0.04 ms for a small file on
tmpfs, 0.1 to 1.5 ms on this project's CI virtual machine's disk (ext4 with ``discard``, and it varies
from minute to minute). So that the generator's own cost is not hidden by the disk's, each run also
(1) writes the very files the set produced again, with plain ``open().write()`` into a fresh folder
(the *file floor*: what the file system alone costs for that output), and (2) makes each set in a
RAM folder as well (``--ram-dir``, default ``/dev/shm`` where it exists). The report gives medians
over the repeats, per set: images/s by the wall clock and by this process's CPU time (one process,
one core), in the data folder and in RAM, the file floor, and writing ready-made images with
``helpers.dicom.write_dicom`` alone. A measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
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
#: Where a RAM-backed folder usually is (Linux); used for the RAM runs when it exists and is writable.
DEFAULT_RAM_DIR = Path("/dev/shm")


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


def _contents(folder: Path) -> list[tuple[Path, bytes]]:
    """Every file under ``folder`` as (path relative to it, bytes), parents before children."""
    return sorted((p.relative_to(folder), p.read_bytes()) for p in folder.rglob("*") if p.is_file())


def _rewrite(files: list[tuple[Path, bytes]], folder: Path) -> None:
    """Write ``files`` again under ``folder`` with plain open/write, making folders as needed (the file floor)."""
    made: set[Path] = set()
    for rel, data in files:
        parent = (folder / rel).parent
        if parent not in made:
            parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        with open(folder / rel, "wb") as f:
            f.write(data)


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


def _ram_dir(wanted: Path | None) -> Path | None:
    """The RAM folder to use: ``wanted``, else /dev/shm when it exists and is writable, else None."""
    if wanted is not None:
        return wanted
    if DEFAULT_RAM_DIR.is_dir() and os.access(DEFAULT_RAM_DIR, os.W_OK):
        return DEFAULT_RAM_DIR
    return None


def _measure_in(where: Path, n_images: int, size: int, repeats: int, with_floor: bool) -> dict[str, Any]:
    """Per set, the make rates in a fresh folder under ``where`` (and the file floor of its output)."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="medimg-bench-", dir=where) as tmp:
        root = Path(tmp)
        G.make_chest_xray(root / "warm-up", n_patients=2, size=size)  # first-call costs (tables, imports)
        for name, (make, _, count) in _cases(n_images, size).items():
            folder = root / name  # a fresh folder each time: generation, not deletion of the last run, is timed
            files: list[tuple[Path, bytes]] = []  # the first run's output, kept for the file floor

            def cleanup(folder: Path = folder, files: list[tuple[Path, bytes]] = files) -> None:
                if with_floor and not files:
                    files.extend(_contents(folder))
                rmtree(folder)

            entry: dict[str, Any] = {
                "images": count,
                "to_dicom": _rates(count, lambda make=make, folder=folder: make(folder), repeats, cleanup),
            }
            if with_floor:
                entry["files"] = len(files)
                entry["megabytes"] = round(sum(len(b) for _, b in files) / 2**20, 1)
                entry["file_floor"] = _rates(
                    count, lambda files=files, folder=folder: _rewrite(files, folder), repeats,
                    lambda folder=folder: rmtree(folder),
                )
            results[name] = entry
        folder = root / "write_only"
        results["write_dicom_only"] = {
            "images": n_images,
            "to_dicom": _rates(n_images, lambda: _write_only(folder, n_images, size), repeats, lambda: rmtree(folder)),
        }
    return results


def run(
    repeats: int = 5,
    n_images: int = 200,
    size: int = 256,
    where: Path | None = None,
    ram: Path | None = None,
    use_ram: bool = True,
) -> dict[str, Any]:
    """Median images/s per set: written to the data folder (with its file floor), to RAM, and in memory."""
    where = Path(where) if where is not None else data_dir()
    where.mkdir(parents=True, exist_ok=True)
    results = _measure_in(where, n_images, size, repeats, with_floor=True)
    for name, (_, synth, count) in _cases(n_images, size).items():
        results[name]["in_memory"] = _rates(count, synth, repeats)
    ram_dir = _ram_dir(ram) if use_ram else None
    if ram_dir is not None:
        for name, entry in _measure_in(ram_dir, n_images, size, repeats, with_floor=False).items():
            results[name]["in_ram"] = entry["to_dicom"]
    return {
        "benchmark": "generated data sets: images/s, medians over repeats, one process",
        "size": size,
        "repeats": repeats,
        "folder": display_path(where),
        "ram_folder": str(ram_dir) if ram_dir is not None else None,
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
    parser.add_argument("--ram-dir", type=Path, help=f"a RAM-backed folder (default: {DEFAULT_RAM_DIR} if present)")
    parser.add_argument("--no-ram", action="store_true", help="skip the runs in a RAM folder")
    args = parser.parse_args(argv)
    report = run(args.repeats, args.images, args.size, args.dir, args.ram_dir, not args.no_ram)
    nan = float("nan")
    print(f"{'set':22s} {'images':>6s} {'files':>5s} {'disk img/s':>10s} {'(CPU)':>7s} {'file floor':>10s} "
          f"{'RAM img/s':>9s} {'(CPU)':>7s} {'memory':>7s}")
    for name, r in report["results"].items():
        disk, floor, ram = r["to_dicom"], r.get("file_floor", {}), r.get("in_ram", {})
        print(f"{name:22s} {r['images']:6d} {r.get('files', 0):5d} {disk['images_per_s']:10.1f} "
              f"{disk['images_per_cpu_s']:7.1f} {floor.get('images_per_s', nan):10.1f} "
              f"{ram.get('images_per_s', nan):9.1f} {ram.get('images_per_cpu_s', nan):7.1f} "
              f"{r.get('in_memory', {}).get('images_per_s', nan):7.1f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
