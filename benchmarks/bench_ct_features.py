"""How well frozen features tell real head CT with and without blood apart, with the workshop's protocol.

For each extractor (the project's trained CT extractor and random features by default; ImageNet MobileNet with
``--backbones ... mobilenet_v3_small``, a download unless cached) and each real image set (the workshop's exp 1 JPEGs, 30 + 30, and the 18 + 18 PNG samples in
``../shared/data/rsna_ich_workshop``), experiment 1 of the lesson (all the images, 15% of each class held out,
Teachable Machine's head and settings, 50 epochs) runs for each seed, plain and HU colour coded; the table gives
the test accuracy's mean and SD over the seeds (5, as the issue asks) and, for a steadier mean, over 50 seeds.
The real images only measure: nothing is trained on them but the head. A measurement, not a test.

    python benchmarks/bench_ct_features.py [--data ../shared/data] [--seeds 5] [--many 50] [--backbones trained random]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from helpers import workshop as ws  # noqa: E402

SETS = {"exp 1 JPEG (30 + 30)": "rsna_ich_workshop/exp1_30normal_30hemorrhage_224jpg",
        "PNG samples (18 + 18)": "rsna_ich_workshop/png512_test_samples"}


def accuracies(pool: ws.Pool, colour: bool, seeds: range) -> list[float]:
    experiment = dataclasses.replace(ws.fit_to(ws.EXPERIMENTS["1"], list(pool.counts().values())), colour=colour)
    return [ws.run_experiment(experiment, pool.features, pool.labels, seed=s).accuracy for s in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--many", type=int, default=50)
    parser.add_argument("--backbones", nargs="+", default=["trained", "random"],
                        help="mobilenet_v3_small too where its ImageNet weights are cached or can be downloaded")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for backbone in args.backbones:
        try:
            extractor = ws.make_extractor(backbone)
        except Exception as error:  # ImageNet weights not cached and no internet: say so, go on
            print(f"{backbone}: skipped ({type(error).__name__}: {str(error).splitlines()[0]})")
            continue
        for name, rel in SETS.items():
            pictures, labels = ws.load_pictures("folder", args.data / rel)
            start = time.perf_counter()
            pool = ws.picture_pool(pictures, labels, extractor)
            for colour in (False, True):
                few, many = accuracies(pool, colour, range(args.seeds)), accuracies(pool, colour, range(args.many))
                rows.append({"backbone": backbone, "set": name, "colour": colour, "seeds": few,
                             "mean": float(np.mean(few)), "sd": float(np.std(few, ddof=1)),
                             f"mean_{args.many}": float(np.mean(many)), f"sd_{args.many}": float(np.std(many, ddof=1)),
                             "seconds": round(time.perf_counter() - start, 1)})
                r = rows[-1]
                print(f"{backbone:20s} {name:22s} {'colour' if colour else 'plain ':6s} {args.seeds} seeds "
                      f"{r['mean']:.2f} +/- {r['sd']:.2f} {[round(a, 2) for a in few]}; {args.many} seeds "
                      f"{r[f'mean_{args.many}']:.2f} +/- {r[f'sd_{args.many}']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "ct_features", "torch": torch.__version__,
                                         "python": platform.python_version(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
