"""Training speed of the segmentation models: images per second through ``helpers.train_tf.train_segmenter``.

Makes the generated cardiac MR set (``--patients`` patients, 10 slices each), loads it at ``--size`` px, splits
it by patient as the notebook does, and trains each model for ``--epochs`` epochs ``--repeats`` times
(augmented tf.data pipeline, validation each epoch). Reports, per model, the median training throughput
(training slices / seconds of an epoch, validation included, the first epoch left out because it traces the
graph) and the first epoch's seconds. A measurement, not a test: nothing is asserted.

    python benchmarks/bench_train_seg.py [--models fcn unet] [--size 128] [--epochs 4] [--repeats 2]
        [--patients 16] [--json out.json]
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

from helpers import segmentation as seg  # noqa: E402
from helpers import train_tf as ttf  # noqa: E402
from helpers.config import data_dir  # noqa: E402
from helpers.datasets import generated, real, splits  # noqa: E402

tf, keras = ttf.tf, ttf.keras


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(ttf.MODELS), choices=ttf.MODELS)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--no-batch-norm", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch traces the graph and is not counted).")

    folder = data_dir() / "bench" / "cardiac_mr"
    generated.make_cardiac_mr(folder, n_patients=args.patients, slices_per_patient=10, seed=0)
    table = splits.patient_split(real.load_sunnybrook(folder), (0.7, 0.15, 0.15), seed=0)
    t0 = time.perf_counter()
    images, masks, _ = seg.cardiac_arrays(table, size=args.size)
    load_s = time.perf_counter() - t0
    rows = {s: table["split"].to_numpy() == s for s in ("train", "val")}

    def pipeline(split: str, augment: bool) -> tf.data.Dataset:
        pairs = tf.data.Dataset.from_tensor_slices((images[rows[split]][..., None],
                                                    masks[rows[split]][..., None].astype(np.float32)))
        return ttf.make_pipeline(pairs, batch_size=8, augment=augment, shuffle=augment)

    results = []
    for name in args.models:
        rates, first = [], []
        for repeat in range(args.repeats):
            keras.utils.set_random_seed(repeat)
            model = ttf.build_model(name, args.size, depth=args.depth, width=args.width,
                                    batch_norm=not args.no_batch_norm)
            _, history = ttf.train_segmenter(model, pipeline("train", True), pipeline("val", False), args.epochs)
            rates.append(int(rows["train"].sum()) / float(history["seconds"].iloc[1:].median()))
            first.append(float(history["seconds"].iloc[0]))
        results.append({"model": name, "params": int(model.count_params()),
                        "train_images_per_s": round(statistics.median(rates), 1),
                        "first_epoch_s": round(statistics.median(first), 1)})
    report = {
        "benchmark": "train_seg", "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
        "cpu_count": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
        "machine": platform.machine(), "python": platform.python_version(), "size_px": args.size,
        "unet_depth": args.depth, "unet_width": args.width, "batch_norm": not args.no_batch_norm,
        "train_images": int(rows["train"].sum()), "val_images": int(rows["val"].sum()), "epochs": args.epochs,
        "repeats": args.repeats, "load_seconds": round(load_s, 2), "results": results,
    }
    print(f"{report['device']}, {report['train_images']} training slices at {args.size} px, load {load_s:.1f} s")
    print(f"{'model':<8}{'params':>12}{'img/s':>10}{'1st epoch s':>13}")
    for r in results:
        print(f"{r['model']:<8}{r['params']:>12,}{r['train_images_per_s']:>10}{r['first_epoch_s']:>13}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
