"""Train the workshop lesson's offline feature extractor (helpers.ct_features) on generated head CT slices and
write its weights into the package (helpers/models/ct_features.pt, with a JSON of how it was made).

No real image is used: the slices come from helpers.ct_features.synthetic_slice. About 21 minutes on 2 CPU cores
(generation 78 s, 16 epochs of 72 s); the shipped weights came from these defaults.
After a retrain, put the printed SHA-256 into helpers.ct_features.WEIGHTS_SHA256 and rerun
benchmarks/bench_ct_features.py (the numbers in benchmarks/RESULTS.md belong to the shipped weights).

    python scripts/train_ct_features.py [--n 16000] [--epochs 16] [--seed 0] [--out helpers/models/ct_features.pt]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from helpers import ct_features as cf  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16000, help="generated training slices")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=cf.WEIGHTS_PATH)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    data = cf.training_set(args.n, seed=args.seed, progress=True)
    generate_s = time.perf_counter() - start
    print(f"{args.n} slices generated in {generate_s:.0f} s; {int(data['labels'].sum())} show blood")
    net, history = cf.train(data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    meta = {"script": "scripts/train_ct_features.py", "n": args.n, "epochs": args.epochs, "batch_size": args.batch_size,
            "lr": args.lr, "seed": args.seed, "generate_s": round(generate_s), "history": history,
            "train_s": round(sum(h["seconds"] for h in history)), "torch": torch.__version__,
            "python": platform.python_version(), "parameters": sum(p.numel() for p in net.parameters())}
    digest = cf.save_weights(net, args.out, meta)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.2f} MB), SHA-256 {digest}")


if __name__ == "__main__":
    main()
