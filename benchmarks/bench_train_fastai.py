"""Training speed of the knee-fracture fastai learner (``03_train_classifier/02_knee_fracture_fastai``): images per
second through ``helpers.train_fastai.fit``.

Makes the generated knee set (``--patients`` patients, 2 images each), prepares the joint crops at ``--size`` px as
the notebook does, and trains the small-CNN learner for ``--epochs`` epochs ``--repeats`` times (augmentation on,
validation each epoch). Reports the median training throughput (training images x epochs / seconds, validation
included). A measurement, not a test: nothing is asserted.

    python benchmarks/bench_train_fastai.py [--size 64] [--epochs 3] [--repeats 3] [--patients 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from helpers import knee  # noqa: E402
from helpers import train_fastai as tf  # noqa: E402
from helpers.datasets import generated, splits  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    table = generated.make_knee_xray(n_patients=args.patients, images_per_patient=2, fracture_fraction=0.25, size=256,
                                     difficulty=0.2, seed=0)
    images = knee.prepare_knee_set(table, size=args.size, use_clahe=True, crop=True)
    table = splits.patient_split(table, (0.8, 0.2), seed=0, stratify="label", names=("train", "val"))
    labels = table.label.to_numpy().astype(int)
    valid = np.flatnonzero(table.split.to_numpy() == "val")
    n_train = len(table) - len(valid)
    rates = []
    for repeat in range(args.repeats):
        torch.manual_seed(repeat)
        dls = tf.dls_from_arrays(images, labels, valid, bs=32)
        learner = tf.make_learner(dls, arch="small_cnn")
        start = time.perf_counter()
        tf.fit(learner, args.epochs, quiet=True)
        rates.append(n_train * args.epochs / (time.perf_counter() - start))
    report = {"benchmark": "train_fastai", "model": "fastai small_cnn learner", "size": args.size,
              "train_images": n_train, "epochs": args.epochs, "repeats": args.repeats,
              "images_per_s": round(statistics.median(rates), 1), "all_images_per_s": [round(r, 1) for r in rates],
              "cpu_count": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__}
    print(f"fastai small_cnn learner: {report['images_per_s']} training images/s (median of {args.repeats}, "
          f"{n_train} images at {args.size} px, validation included)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
