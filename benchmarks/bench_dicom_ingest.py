"""Folder ingest speed: helpers.dicom.ingest_folder (read, check, decode, HU as float32) against bare
``pydicom.dcmread(f).pixel_array`` (read and decode only) on the same files.

Writes N uncompressed 256x256 int16 CT files (HU = stored - 1024) to a temporary folder, runs each
method once to warm the page cache, then times ``--repeats`` interleaved runs and reports medians and
the ratio ours / bare (target: at most 1.5). A third line, bare + HU, does the bare read and decode
plus the float32 rescale by hand: the gap between it and bare is the price of a float32 result
(twice the bytes of int16, so twice the fresh memory to touch), the gap between ours and it the
price of ingest_folder's checks.

    python benchmarks/bench_dicom_ingest.py [--n 200] [--repeats 7] [--json out.json]
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
from pathlib import Path

import numpy as np
import pydicom

from helpers.dicom import ingest_folder, stable_uid, write_dicom

TARGET_RATIO = 1.5


def write_files(folder: Path, n: int, size: int = 256, seed: int = 0) -> list[Path]:
    """N CT slices of random stored values 0..2000 (HU -1024..976), one file each."""
    rng = np.random.default_rng(seed)
    study, series = stable_uid("bench", "study"), stable_uid("bench", "series")
    paths = []
    for i in range(n):
        stored = rng.integers(0, 2000, size=(size, size), dtype=np.int16)
        paths.append(write_dicom(folder / f"slice_{i:05d}.dcm", stored, modality="CT", patient_id="BENCH",
                                 study_uid=study, series_uid=series, instance_number=i + 1,
                                 rescale_slope=1.0, rescale_intercept=-1024.0, slice_position=float(i)))
    return paths


def bare(paths: list[Path]) -> list[np.ndarray]:
    """The baseline: read and decode each file with pydicom, no checks, no rescale."""
    return [pydicom.dcmread(p).pixel_array for p in paths]


def bare_hu(paths: list[Path]) -> list[np.ndarray]:
    """Bare read and decode, then HU as float32 by hand (no checks)."""
    out = []
    for p in paths:
        ds = pydicom.dcmread(p)
        out.append(ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    return out


def ours(folder: Path) -> list[np.ndarray]:
    """helpers.dicom.ingest_folder: lists the folder, reads, checks, decodes and rescales to HU."""
    return list(ingest_folder(folder, recursive=False).values())


def timed(func, *args) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of files (default 200)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each method (default 7)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_dicom_") as tmp:
        folder = Path(tmp)
        paths = write_files(folder, args.n)
        total_mb = sum(p.stat().st_size for p in paths) / 1e6

        # Same files, same result: HU from ours equals the bare stored values - 1024.
        got, ref = ours(folder), bare(paths)
        assert len(got) == len(ref) == args.n
        assert all(np.array_equal(g, r.astype(np.float32) - 1024) for g, r in zip(got, ref, strict=True))

        t_bare, t_hu, t_ours = [], [], []
        for _ in range(args.repeats):  # interleave, so drift in machine load hits all alike
            t_bare.append(timed(bare, paths))
            t_hu.append(timed(bare_hu, paths))
            t_ours.append(timed(ours, folder))

    med_bare, med_hu, med_ours = statistics.median(t_bare), statistics.median(t_hu), statistics.median(t_ours)
    result = {
        "n_files": args.n,
        "image": "256x256 int16 CT, Explicit VR Little Endian",
        "total_mb": round(total_mb, 2),
        "repeats": args.repeats,
        "bare_median_s": round(med_bare, 4),
        "bare_hu_median_s": round(med_hu, 4),
        "ours_median_s": round(med_ours, 4),
        "bare_ms_per_file": round(1000 * med_bare / args.n, 3),
        "bare_hu_ms_per_file": round(1000 * med_hu / args.n, 3),
        "ours_ms_per_file": round(1000 * med_ours / args.n, 3),
        "ratio_ours_over_bare": round(med_ours / med_bare, 3),
        "ratio_ours_over_bare_hu": round(med_ours / med_hu, 3),
        "target_ratio": TARGET_RATIO,
        "within_target": med_ours / med_bare <= TARGET_RATIO,
        "bare_runs_s": [round(t, 4) for t in t_bare],
        "bare_hu_runs_s": [round(t, 4) for t in t_hu],
        "ours_runs_s": [round(t, 4) for t in t_ours],
        "python": platform.python_version(),
        "pydicom": pydicom.__version__,
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
    }
    print(f"{args.n} files ({total_mb:.1f} MB), median of {args.repeats} runs:")
    print(f"  bare dcmread().pixel_array : {med_bare:.3f} s  ({result['bare_ms_per_file']:.2f} ms/file)")
    print(f"  bare + HU float32 by hand  : {med_hu:.3f} s  ({result['bare_hu_ms_per_file']:.2f} ms/file)")
    print(f"  ingest_folder (HU float32) : {med_ours:.3f} s  ({result['ours_ms_per_file']:.2f} ms/file)")
    print(f"  ratio ours / bare          : {result['ratio_ours_over_bare']:.2f}  (target <= {TARGET_RATIO})")
    print(f"  ratio ours / bare + HU     : {result['ratio_ours_over_bare_hu']:.2f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["within_target"] else 1)
