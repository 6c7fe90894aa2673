"""Speed of the workshop experiments (``06_workshop_experiments``): the generated pool, its features, and every
experiment over the seeds, as the notebook runs them.

Reports the seconds to write the head CT DICOM pool, to read it back and extract features (plain and colour
coded, images/s), and to run all experiments for ``--seeds`` seeds (with the per-experiment training seconds),
plus the peak resident memory. The issue's targets: full setting (260 patients, 5 seeds) within 5 minutes on 2
CPU cores, quick setting (80 patients, 30% of the images, 2 seeds) within 60 s. A measurement, not a test:
nothing is asserted.

    python benchmarks/bench_workshop.py [--quick] [--backbone trained] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from helpers import workshop as ws  # noqa: E402
from helpers.datasets import generated  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the notebook's quick setting")
    parser.add_argument("--backbone", default="trained", choices=ws.BACKBONES)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    n_patients, n_seeds, scale = (80, 2, 0.3) if args.quick else (260, 5, 1.0)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        table = generated.make_head_ct(Path(tmp), **ws.POOL_DEFAULTS, n_patients=n_patients, seed=0)
        generate_s = time.perf_counter() - start
        start = time.perf_counter()
        pool = ws.build_pool(Path(tmp), table, ws.make_extractor(args.backbone))
        pool_s = time.perf_counter() - start
    available = list(pool.counts().values())
    experiments = {k: ws.fit_to(ws.scaled(e, scale), available) for k, e in ws.EXPERIMENTS.items()}
    start = time.perf_counter()
    runs = ws.run_all(pool.features, pool.labels, range(n_seeds), experiments, groups=pool.groups)
    runs_s = time.perf_counter() - start
    per_experiment = {}
    for (key, _), run in runs.items():
        per_experiment[key] = per_experiment.get(key, 0.0) + run.seconds
    lessons = ws.check_lessons(ws.summaries(runs))
    report = {
        "benchmark": "workshop", "setting": "quick" if args.quick else "full", "backbone": args.backbone,
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "machine": platform.machine(),
        "python": platform.python_version(), "patients": n_patients, "seeds": n_seeds, "pool": pool.counts(),
        "generate_s": round(generate_s, 1), "pool_s": round(pool_s, 1),
        "feature_images_per_s": round(2 * len(pool.labels) / pool_s, 1), "runs_s": round(runs_s, 1),
        "total_s": round(generate_s + pool_s + runs_s, 1),
        "train_s_per_experiment": {k: round(v, 1) for k, v in per_experiment.items()},
        "lessons_shown": int(lessons.shown.sum()), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(f"{report['setting']}: {n_patients} patients -> pool {report['pool']}; generate {generate_s:.1f} s, "
          f"features {pool_s:.1f} s ({report['feature_images_per_s']} images/s), {len(runs)} runs {runs_s:.1f} s, "
          f"total {report['total_s']} s, peak RSS {report['peak_rss_mb']} MB, lessons shown {report['lessons_shown']}/4")
    print("training seconds per experiment (all seeds; 3, 4a and 4b share one run):", report["train_s_per_experiment"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
