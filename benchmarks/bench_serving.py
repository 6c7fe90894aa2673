"""Serving speed of the chest X-ray classifier (``05_deploy_explain``): latency through the real local inference
server, and ONNX Runtime against PyTorch in the same run.

For each runtime (PyTorch, ONNX Runtime) and worker count, starts ``LocalServer`` (gunicorn + the Azure ML
inference server app + ``05_deploy_explain/score.py``, on 127.0.0.1), sends ``--requests`` POSTs of one 224 x 224
greyscale PNG each from one client and from ``--clients`` concurrent clients, and reports p50 / p95 / max latency and requests/s.
Also reports the model alone, one image per call, in both runtimes and their ratio. The model is the lesson's
small CNN at 128 px with seeded random weights: the same computation as a trained one. The clients run on the
same machine as the server and share its cores. The issue's target: p50 <= 20 ms on a CPU. A measurement, not a
test: nothing is asserted.

    python benchmarks/bench_serving.py [--requests 500] [--clients 4] [--workers 1 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from helpers import serving  # noqa: E402
from helpers.train_torch import TrainConfig, build_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=128, help="the model's input size")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = TrainConfig(model="small_cnn", image_size=args.size, label_names=("pneumonia",))
    model = build_model(config).eval()
    rng = np.random.default_rng(0)
    pictures = [np.clip(0.5 + 0.15 * rng.standard_normal((224, 224)), 0, 1) for _ in range(8)]
    bodies = [serving.encode_request(serving.to_png(p)) for p in pictures]
    report = {"benchmark": "serving", "cpu_count": os.cpu_count(), "machine": platform.machine(),
              "python": platform.python_version(), "torch": torch.__version__, "model": "small_cnn",
              "model_input_px": args.size, "request_image": "224x224 8-bit greyscale PNG",
              "requests": args.requests, "clients": args.clients, "servers": []}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = serving.export_model(model, config, Path(tmp) / "model")
        session = serving.onnx_session(model_dir / serving.ONNX_NAME)
        x = np.stack([serving.Predictor(model, config).prepare(p)[0] for p in pictures] * 4)
        report["model_only"] = {k: round(v, 3) for k, v in serving.runtime_speed(model, session, x, repeats=5).items()}
        report["max_abs_diff_torch_onnx"] = serving.compare_runtimes(model, session, x)
        for runtime in serving.RUNTIMES:
            for workers in args.workers:
                server = serving.LocalServer(ROOT / "05_deploy_explain" / "score.py", model_dir, workers=workers,
                                             env={"MEDIMG_SERVE_RUNTIME": runtime}, log_path=Path(tmp) / "server.log")
                with server:
                    for clients in sorted({1, args.clients}):
                        result = serving.latency(server.score_url, bodies, args.requests, clients)
                        row = {"runtime": runtime, "workers": workers,
                               **{k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}}
                        report["servers"].append(row)
                        print(f"{runtime:5s} x{workers} worker(s), {clients} client(s): p50 {row['p50_ms']:6.1f} ms  "
                              f"p95 {row['p95_ms']:6.1f} ms  {row['requests_per_s']:6.1f} req/s  errors {row['errors']}")
    m = report["model_only"]
    print(f"model only, one image per call: PyTorch {m['torch_ms']} ms, ONNX Runtime {m['onnx_ms']} ms "
          f"(PyTorch / ONNX = {m['torch_over_onnx']}); largest probability difference {report['max_abs_diff_torch_onnx']:.1e}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
