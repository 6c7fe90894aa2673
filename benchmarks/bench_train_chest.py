"""Training speed of the chest X-ray models: images per second through ``helpers.train_torch.train``.

Makes the generated chest set (``--patients`` patients, 2 images each), loads it at ``--size`` px, and
trains each model for ``--epochs`` epochs ``--repeats`` times (augmentation on, validation each epoch,
as in the notebook). Reports, per model, the median training throughput (training images x epochs /
seconds of the epochs, validation included) and the seconds per epoch, on the device ``get_device``
picks (or ``--device``). A measurement, not a test: nothing is asserted.

    python benchmarks/bench_train_chest.py [--models small_cnn resnet18] [--size 64] [--epochs 3]
        [--repeats 3] [--patients 300] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from helpers import train_torch as tt  # noqa: E402
from helpers.config import get_device  # noqa: E402
from helpers.datasets import splits, tasks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["small_cnn", "resnet18"], choices=tt.MODELS)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    device = args.device or get_device()
    table, names = tasks.chest_xray_table("generated", n_patients=args.patients, seed=0)
    table = splits.patient_split(table, (0.7, 0.15, 0.15), seed=0, stratify=names[0])
    t0 = time.perf_counter()
    images = tt.load_images(table.path, size=args.size)
    load_s = time.perf_counter() - t0
    labels = table[names].to_numpy(np.float32)
    rows = {s: np.flatnonzero(table.split.to_numpy() == s) for s in ("train", "val")}
    results = []
    for model in args.models:
        rates, epoch_s = [], []
        for repeat in range(args.repeats):
            config = tt.TrainConfig(model=model, image_size=args.size, epochs=args.epochs, patience=args.epochs,
                                    label_names=tuple(names), seed=repeat, device=device)
            with tempfile.TemporaryDirectory() as out:
                result = tt.train(config, (images[rows["train"]], labels[rows["train"]]),
                                  (images[rows["val"]], labels[rows["val"]]), out)
            seconds = float(result.history["seconds"].sum())
            rates.append(len(rows["train"]) * args.epochs / seconds)
            epoch_s.append(float(result.history["seconds"].median()))
        results.append({"model": model, "params": tt.count_parameters(tt.build_model(config)),
                        "train_images_per_s": round(statistics.median(rates), 1),
                        "seconds_per_epoch": round(statistics.median(epoch_s), 2)})
    report = {
        "benchmark": "train_chest", "device": device, "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.machine(), "python": platform.python_version(),
        "size_px": args.size, "train_images": len(rows["train"]), "val_images": len(rows["val"]),
        "epochs": args.epochs, "repeats": args.repeats, "load_seconds": round(load_s, 2), "results": results,
    }
    print(f"device {device}, {len(rows['train'])} training images at {args.size} px, load {load_s:.1f} s")
    print(f"{'model':<14}{'params':>12}{'img/s':>10}{'s/epoch':>10}")
    for r in results:
        print(f"{r['model']:<14}{r['params']:>12,}{r['train_images_per_s']:>10}{r['seconds_per_epoch']:>10}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
