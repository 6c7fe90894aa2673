"""Serving a chest X-ray classifier over HTTP the Azure ML way: request checks, a predictor, ONNX, a local server.

The contract (``05_deploy_explain/score.py``): POST a JSON object ``{"image": "<base64 of a DICOM, PNG or JPEG
file>", "heatmap": false}``; the answer is ``{"probabilities": {class: p}, "model": ..., "input": {...}}`` plus,
with ``"heatmap": true``, a Grad-CAM map as a base64 8-bit PNG. Every refused request raises
:class:`~helpers.errors.BadRequest` carrying the HTTP status and a message that says what to send instead.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import dataclasses
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from helpers.errors import BadRequest, DicomError, MissingDecoderError, ServerStartError, UnsupportedImageError
from helpers.dicom import pil_unit
from helpers.train_torch import TrainConfig, load_checkpoint, resize_image
from helpers.viz import to_png

#: Largest request body accepted (bytes): a 2048 x 2048 16-bit DICOM (8 MiB) in base64 fits; bigger gets 413.
MAX_BODY_BYTES = 12 * 2**20

#: Smallest and largest image side accepted (pixels); images are resized to the model's input size.
MIN_SIDE, MAX_SIDE = 32, 4096

#: Formats a request may carry, as the ``format`` field names them (sniffed from the bytes when absent).
FORMATS = ("dicom", "png", "jpeg")

#: DICOM modalities that are not projection radiographs: refused (422) rather than scored as if they were.
NOT_RADIOGRAPHS = frozenset({"CT", "MR", "PT", "NM", "US", "MG", "XA", "RF", "OP", "IO", "SEG", "SR", "PR",
                             "RTSTRUCT", "RTDOSE", "RTPLAN", "RTIMAGE", "ECG", "KO", "DOC"})

#: Fields a request may have; any other is refused, so a typo (``"heatmaps"``) does not pass silently.
REQUEST_FIELDS = ("image", "format", "heatmap")

#: The model files :class:`Predictor` looks for in the model folder.
CHECKPOINT_NAME, ONNX_NAME = "best.pt", "model.onnx"

#: Every file :func:`export_model` writes or a lesson adds beside the model (replaced together).
MODEL_FILES = (CHECKPOINT_NAME, ONNX_NAME, "model_card.md")

RUNTIMES = ("torch", "onnx")

# --- Requests ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScoreRequest:
    """A checked request: the file's bytes, its format and whether a heat map was asked for."""

    data: bytes
    format: str
    heatmap: bool


def sniff_format(data: bytes) -> str | None:
    """``"dicom"``, ``"png"`` or ``"jpeg"`` from a file's first bytes, or None when it is none of them."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    return None


def encode_request(image: bytes | str | Path, heatmap: bool = False) -> str:
    """The JSON body for one image: a file's bytes (or its path) base64-encoded, with the heat-map flag."""
    data = Path(image).read_bytes() if isinstance(image, (str, Path)) else bytes(image)
    return json.dumps({"image": base64.b64encode(data).decode("ascii"), "heatmap": bool(heatmap)})


def parse_request(body: bytes | str | None, max_bytes: int = MAX_BODY_BYTES) -> ScoreRequest:
    """Check a request body and return what it carries; BadRequest (400/413/415/422) says what is wrong.

    400: empty, not UTF-8 JSON, not an object, no ``image``, not base64; 413: over ``max_bytes``;
    415: the bytes are not DICOM, PNG or JPEG; 422: a field of the wrong type or an unknown field.
    """
    usage = 'send JSON {"image": "<base64 of a DICOM, PNG or JPEG file>", "heatmap": false}'
    raw = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    if not raw.strip():
        raise BadRequest(f"The request body is empty: {usage}.", 400)
    if len(raw) > max_bytes:
        raise BadRequest(f"The request body is {len(raw) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB. "
                         "Send a smaller image (downsample it, or send the PNG rather than raw DICOM).", 413)
    try:
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(f"The request body is not UTF-8 text (raw file bytes?): {usage}.", 400) from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
                         f"{usage}.", 400) from None
    if not isinstance(payload, dict):
        raise BadRequest(f"The JSON body is a {type(payload).__name__}, not an object: {usage}.", 400)
    unknown = sorted(set(payload) - set(REQUEST_FIELDS))
    if unknown:
        raise BadRequest(f"Unknown field(s) {unknown}; the fields are {list(REQUEST_FIELDS)}.", 422)
    if "image" not in payload:
        raise BadRequest(f"The JSON object has no 'image' field: {usage}.", 400)
    encoded = payload["image"]
    if not isinstance(encoded, str):
        raise BadRequest(f"'image' must be a base64 string, got a {type(encoded).__name__}.", 422)
    heatmap = payload.get("heatmap", False)
    if not isinstance(heatmap, bool):
        raise BadRequest(f"'heatmap' must be true or false, got {heatmap!r}.", 422)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("'image' is not valid base64 (standard alphabet, with padding): encode the file's bytes "
                         "with base64.b64encode(open(path, 'rb').read()).decode().", 400) from None
    if not data:
        raise BadRequest(f"'image' decodes to 0 bytes: {usage}.", 400)
    sniffed = sniff_format(data)
    declared = payload.get("format")
    if declared is not None and declared not in FORMATS:
        raise BadRequest(f"'format' is {declared!r}; use one of {list(FORMATS)} or leave it out.", 422)
    if sniffed is None:
        raise BadRequest("'image' is not a DICOM (Part 10, with the 'DICM' prefix), PNG or JPEG file "
                         f"(it starts with {data[:8]!r}); send one of those.", 415)
    if declared is not None and declared != sniffed:
        raise BadRequest(f"'format' says {declared} but the bytes are {sniffed}: leave 'format' out or fix it.", 422)
    return ScoreRequest(data=data, format=sniffed, heatmap=heatmap)


def _check_side(height: int, width: int) -> None:
    """BadRequest (422) unless both sides are within [MIN_SIDE, MAX_SIDE]."""
    if min(height, width) < MIN_SIDE or max(height, width) > MAX_SIDE:
        raise BadRequest(f"The image is {width} x {height} px; sides must be between {MIN_SIDE} and {MAX_SIDE} px. "
                         "Send the radiograph itself, not a thumbnail or a stitched montage.", 422)


def _grey_pil(img: Any) -> np.ndarray:
    """An open PIL image as float (H, W) in [0, 1]; BadRequest (422) for colour, transparency or several frames."""
    if getattr(img, "n_frames", 1) > 1:
        raise BadRequest(f"The image has {img.n_frames} frames; send one greyscale radiograph.", 422)
    if img.mode in ("1", "L", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"):
        return pil_unit(img)
    if img.mode in ("P", "PA", "LA", "RGB", "RGBA"):
        rgba = np.asarray(img.convert("RGBA"))
        if (rgba[..., 3] < 255).any():
            raise BadRequest("The image has transparent pixels (an alpha channel in use); send an opaque greyscale "
                             "image.", 422)
        rgb = rgba[..., :3].astype(np.int16)
        if np.abs(rgb - rgb[..., :1]).max(initial=0) > 2:
            raise BadRequest(f"The image is in colour ({img.mode} with differing channels); the model reads "
                             "greyscale radiographs: send the original greyscale image, not an annotated screenshot.",
                             422)
        return rgb[..., 0].astype(np.float32) / np.float32(255.0)
    raise BadRequest(f"PIL mode {img.mode} (e.g. CMYK) is not a greyscale image; send a greyscale PNG or JPEG.", 422)


def decode_image(request: ScoreRequest) -> np.ndarray:
    """The request's image as float32 (H, W) in [0, 1], bright = dense, as training read it.

    DICOM goes through :func:`helpers.dicom.read_dicom_bytes` and :func:`helpers.dicom.unit_image`; PNG and JPEG
    through PIL. Unreadable files get 422, a compressed DICOM without its decoder 415 (its message names the
    package to install).
    """
    from PIL import Image, UnidentifiedImageError

    if request.format == "dicom":
        from helpers.dicom import read_dicom_bytes, unit_image

        try:
            ds = read_dicom_bytes(request.data, "the uploaded DICOM")
            modality = str(ds.get("Modality", "") or "").upper()
            if modality in NOT_RADIOGRAPHS:
                raise BadRequest(f"The DICOM's Modality is {modality}; this model reads projection radiographs "
                                 f"(CR, DX): send a chest X-ray.", 422)
            rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
            _check_side(rows, cols)
            image = unit_image(ds)
        except MissingDecoderError as exc:
            raise BadRequest(f"{exc} (on the server: the deployment's environment needs that package).", 415) from None
        except UnsupportedImageError as exc:
            raise BadRequest(f"The uploaded DICOM is not one greyscale image ({exc.__class__.__name__}: "
                             f"{str(exc).split(';')[0]}); send a single-frame greyscale radiograph.", 422) from None
        except DicomError as exc:
            raise BadRequest(str(exc), 422) from None
    else:
        try:
            with Image.open(io.BytesIO(request.data)) as img:
                _check_side(img.height, img.width)
                image = _grey_pil(img)
        except BadRequest:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise BadRequest(f"The {request.format.upper()} could not be decoded ({exc}); it may be truncated: "
                             "send the whole file.", 422) from None
    return np.clip(np.nan_to_num(image.astype(np.float32, copy=False)), 0.0, 1.0)


# --- Models: PyTorch and ONNX Runtime ------------------------------------------------------------


def export_onnx(model: nn.Module, path: str | Path, image_size: int, in_channels: int = 1) -> Path:
    """Write ``model`` as ONNX (opset 17) taking (N, C, size, size) in [0, 1] and giving logits; batch dynamic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    cpu_model = model.to("cpu").eval()
    example = torch.zeros(1, in_channels, int(image_size), int(image_size))
    try:
        with warnings_quiet():
            torch.onnx.export(cpu_model, (example,), str(path), input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                              dynamo=False)
    finally:
        model.train(was_training)
    return path


@contextlib.contextmanager
def warnings_quiet() -> Iterator[None]:
    """Silence the TorchScript exporter's deprecation notices (the exported graph is checked by comparison)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*TorchScript.*")
        yield


def onnx_session(path: str | Path, threads: int = 1) -> Any:
    """An onnxruntime CPU session for ``path`` using ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_probabilities(session: Any, images: np.ndarray) -> np.ndarray:
    """Sigmoid probabilities (N, K) from an ONNX session for images (N, C, H, W) in [0, 1]."""
    logits = session.run(["logits"], {"image": np.ascontiguousarray(images, dtype=np.float32)})[0]
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)


def torch_probabilities(model: nn.Module, images: np.ndarray) -> np.ndarray:
    """Sigmoid probabilities (N, K) from a PyTorch model in eval mode for images (N, C, H, W) in [0, 1]."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device))
    return torch.sigmoid(logits.float()).cpu().numpy()


def compare_runtimes(model: nn.Module, session: Any, images: np.ndarray) -> float:
    """The largest absolute difference in probability between PyTorch and ONNX Runtime on ``images``."""
    was_training = model.training
    model.eval()
    try:
        return float(np.abs(torch_probabilities(model, images) - onnx_probabilities(session, images)).max())
    finally:
        model.train(was_training)


def runtime_speed(model: nn.Module, session: Any, images: np.ndarray, repeats: int = 3) -> dict[str, float]:
    """Milliseconds per image, one image per call as a server sees them, for PyTorch and ONNX Runtime (best of
    ``repeats`` passes over ``images`` (N, C, H, W)), and their ratio (``torch_ms / onnx_ms``)."""
    was_training = model.training
    model.eval()

    def best(fn: Any) -> float:
        times = []
        for _ in range(int(repeats)):
            start = time.perf_counter()
            for k in range(len(images)):
                fn(images[k:k + 1])
            times.append((time.perf_counter() - start) * 1000.0 / len(images))
        return min(times)

    try:
        torch_ms = best(lambda x: torch_probabilities(model, x))
        onnx_ms = best(lambda x: onnx_probabilities(session, x))
    finally:
        model.train(was_training)
    return {"torch_ms": torch_ms, "onnx_ms": onnx_ms, "torch_over_onnx": torch_ms / onnx_ms}


def find_model_file(model_dir: str | Path, name: str) -> Path:
    """The file ``name`` under ``model_dir`` (Azure ML puts a registered model one or two folders down)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"The model folder {model_dir} does not exist: set AZUREML_MODEL_DIR to the folder "
                                f"holding {name} (export_model writes it).")
    found = sorted(model_dir.rglob(name), key=lambda p: len(p.parts))
    if not found:
        raise FileNotFoundError(f"No {name} under {model_dir}: export the model with helpers.serving.export_model.")
    return found[0]


def export_model(model: nn.Module, config: TrainConfig, out_dir: str | Path, onnx: bool = True) -> Path:
    """Write the model folder a deployment serves: ``best.pt`` (weights + config) and, with ``onnx``,
    ``model.onnx``; return the folder. A previous model's files there (and its ``model_card.md``) are removed first,
    so the folder never mixes two models."""
    from helpers.train_torch import save_checkpoint

    out_dir = Path(out_dir)
    for name in MODEL_FILES:
        (out_dir / name).unlink(missing_ok=True)
    save_checkpoint(out_dir / CHECKPOINT_NAME, model, config, epoch=0, val_auc=float("nan"))
    if onnx:
        export_onnx(model, out_dir / ONNX_NAME, config.image_size)
    return out_dir


class Predictor:
    """A trained classifier ready to answer requests: preprocessing as in training, then PyTorch or ONNX Runtime.

    Grad-CAM heat maps always come from the PyTorch model (ONNX graphs have no gradients).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, session: Any = None, request_log: Any = None) -> None:
        self.model = model.eval()
        self.config = config
        self.session = session
        self.request_log = request_log  # anything with .add(image): monitoring.RequestLog records each input
        self.runtime = "onnx" if session is not None else "torch"
        self._lock = threading.Lock()  # Grad-CAM hooks the model: one explanation at a time per process

    @classmethod
    def from_dir(cls, model_dir: str | Path, runtime: str = "torch") -> "Predictor":
        """Load ``best.pt`` (and, for ``runtime="onnx"``, ``model.onnx``) from a model folder."""
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime={runtime!r}; use one of {RUNTIMES}.")
        model, config = load_checkpoint(find_model_file(model_dir, CHECKPOINT_NAME))
        session = onnx_session(find_model_file(model_dir, ONNX_NAME)) if runtime == "onnx" else None
        return cls(model, config, session)

    @property
    def class_names(self) -> list[str]:
        """The classes the probabilities are reported for ("normal" first for a one-output binary model)."""
        labels = list(self.config.label_names)
        return ["normal", *labels] if len(labels) == 1 else labels

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One image (H, W) in [0, 1] as the model's input batch (1, 1, size, size)."""
        return resize_image(np.asarray(image, dtype=np.float32), self.config.image_size)[None, None]

    def probabilities(self, image: np.ndarray) -> dict[str, float]:
        """Per-class probabilities for one image (H, W) in [0, 1]."""
        x = self.prepare(image)
        p = onnx_probabilities(self.session, x) if self.session is not None else torch_probabilities(self.model, x)
        p = p[0].astype(float)
        if len(p) == 1:
            return {self.class_names[0]: round(1.0 - p[0], 6), self.class_names[1]: round(p[0], 6)}
        return {name: round(v, 6) for name, v in zip(self.class_names, p)}

    def heatmap(self, image: np.ndarray, output: int = 0) -> np.ndarray:
        """Grad-CAM map (size, size) in [0, 1] of logit ``output`` for one image (H, W) in [0, 1]."""
        from helpers.explain import gradcam

        with self._lock:
            return gradcam(self.model, self.prepare(image), output=output)[0]

    def answer(self, request: ScoreRequest) -> dict[str, Any]:
        """The JSON-ready answer to a checked request (see the module's docstring for the shape)."""
        image = decode_image(request)
        if self.request_log is not None:
            self.request_log.add(image)
        out: dict[str, Any] = {
            "probabilities": self.probabilities(image),
            "model": {"name": self.config.model, "runtime": self.runtime, "image_size": self.config.image_size},
            "input": {"format": request.format, "height": int(image.shape[0]), "width": int(image.shape[1])},
        }
        if request.heatmap:
            out["heatmap"] = {"png_base64": heatmap_png(self.heatmap(image)),
                              "explains": self.class_names[-1] if len(self.class_names) == 2 else self.class_names[0],
                              "method": "gradcam"}
        return out


def heatmap_png(heatmap: np.ndarray) -> str:
    """A map (H, W) in [0, 1] as a base64 8-bit greyscale PNG (what the endpoint returns; :func:`to_png`)."""
    return base64.b64encode(to_png(np.asarray(heatmap, dtype=np.float32))).decode("ascii")


def decode_heatmap(answer: Mapping[str, Any]) -> np.ndarray:
    """The heat map of an endpoint's answer as float (H, W) in [0, 1]."""
    from PIL import Image

    if "heatmap" not in answer:
        raise KeyError("the answer has no heat map: send the request with \"heatmap\": true.")
    data = base64.b64decode(answer["heatmap"]["png_base64"])
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img, dtype=np.float32) / np.float32(255.0)


def handle(predictor: Predictor, body: bytes | str | None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON object) for a raw request body: 200 and the answer, or 4xx and ``{"error": message}``.

    Anything unexpected becomes a 500 with a one-line message (no stack trace leaves the server); it is logged.
    """
    try:
        return 200, predictor.answer(parse_request(body))
    except BadRequest as exc:
        return exc.status, {"error": str(exc), "status": exc.status}
    except Exception as exc:  # the server must keep serving and never show a traceback to the caller
        import logging

        logging.getLogger("medimg.serving").exception("scoring failed")
        return 500, {"error": f"Internal error while scoring ({type(exc).__name__}); the server log has the details.",
                     "status": 500}


# --- The local inference server ------------------------------------------------------------------

SERVER_APP = "azureml_inference_server_http.server.entry:app"


#: Where :func:`server_python` makes the inference server's own environment (under the data folder).
SERVER_ENV_DIR = "inference-server-env"


def serve_requirements() -> list[str]:
    """What the inference server needs beyond the lesson's packages: the ``serve`` extra of medimg-helpers."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        listed = requires("medimg-helpers") or []
    except PackageNotFoundError:
        listed = []
    found = [r.split(";")[0].strip() for r in listed if "extra" in r and '"serve"' in r.split(";", 1)[-1]]
    return found or ["azureml-inference-server-http>=1.3"]


def _has_server(python: str | Path) -> bool:
    """True when ``python`` can import the inference server and gunicorn."""
    probe = "import importlib.util as u, sys; sys.exit(0 if u.find_spec('azureml_inference_server_http') and " \
            "u.find_spec('gunicorn') else 1)"
    return subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


def server_python(folder: str | Path | None = None, requirements: Sequence[str] | None = None,
                  pip_args: Sequence[str] = ()) -> Path:
    """The Python that runs the inference server: this one when it has the server (``make test``'s environment,
    ``pip install "medimg-helpers[serve]"``); otherwise that of a virtual environment made for it in ``folder``
    (default: ``inference-server-env`` in the data folder) and layered over this one.

    The layered environment sees this environment's packages (torch, helpers, numpy) but installs the server and
    the versions it pins (pydantic, opentelemetry, wrapt, ...) into its own folder, so nothing in this environment
    changes: on Colab, none of Colab's packages. The first call installs about 20 packages (33 MB on disk; 7 s with
    pip's cache warm, longer where they must be downloaded); later calls reuse the environment while its requirements
    and this environment stay the same. Production does the same: the server runs in an environment (an image) of
    its own. ``ServerStartError`` says what failed and what to do.
    """
    import venv

    from helpers.config import cache_dir

    if requirements is None and _has_server(sys.executable):
        return Path(sys.executable)
    wanted = list(requirements if requirements is not None else serve_requirements())
    home = Path(folder) if folder else cache_dir(SERVER_ENV_DIR)
    python = home / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    parents = [p for p in dict.fromkeys(sys.path) if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    state = json.dumps({"requirements": wanted, "parents": parents, "python": sys.version}, sort_keys=True)
    ready = home / ".medimg-server-env"
    if python.exists() and ready.is_file() and ready.read_text(encoding="utf-8") == state:
        return python
    ready.unlink(missing_ok=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # A .pth line per parent site folder: they come after this environment's own, with their own .pth files.
    Path(site, "_medimg_parent_env.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in parents), encoding="utf-8")
    if wanted:
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                 *pip_args, *wanted], capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise ServerStartError(
                f"Could not install the inference server ({', '.join(wanted)}) into its own environment in {home}: "
                f"pip said:\n{tail}\nCheck the internet connection and run the cell again, or install it into this "
                "environment yourself: pip install \"medimg-helpers[serve]\".")
    if not _has_server(python):
        raise ServerStartError(f"The environment in {home} was built but cannot import the inference server and "
                               "gunicorn: delete the folder and run the cell again.")
    ready.write_text(state, encoding="utf-8")
    return python


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """The Azure ML inference server (gunicorn + the same app as ``azmlinfsrv``) on 127.0.0.1 only.

    ``azmlinfsrv`` always binds 0.0.0.0, which on a laptop in a workshop exposes the model to the room; this runs
    ``gunicorn -b 127.0.0.1:PORT azureml_inference_server_http.server.entry:app`` with ``AZUREML_ENTRY_SCRIPT`` and
    ``AZUREML_MODEL_DIR`` set. Use as a context manager; :meth:`stop` ends it cleanly (SIGTERM, then SIGKILL).
    ``python`` runs it (default: this interpreter; :func:`server_python` gives one that has the server).
    """

    def __init__(self, entry_script: str | Path, model_dir: str | Path, port: int | None = None, workers: int = 1,
                 threads: int = 1, env: Mapping[str, str] | None = None, log_path: str | Path | None = None,
                 python: str | Path | None = None) -> None:
        self.entry_script = Path(entry_script).resolve()
        self.model_dir = Path(model_dir).resolve()
        if not self.entry_script.is_file():
            raise FileNotFoundError(f"The entry script {entry_script} does not exist.")
        self.port = int(port) if port else free_port()
        self.workers, self.threads = int(workers), int(threads)
        self.env = dict(env or {})
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkdtemp(prefix="medimg-server-")) / "server.log"
        self.python = str(python) if python else sys.executable
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def score_url(self) -> str:
        """Where to POST requests (the same path as on an Azure ML endpoint)."""
        return f"{self.url}/score"

    def start(self, timeout: float = 120.0) -> "LocalServer":
        """Start the server and wait until it answers its liveness route; ServerStartError holds the log's end."""
        env = {**os.environ, "AZUREML_ENTRY_SCRIPT": str(self.entry_script), "AZUREML_MODEL_DIR": str(self.model_dir),
               "PYTHONUNBUFFERED": "1", **self.env}
        command = [self.python, "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                   "--threads", str(self.threads), "--timeout", "300", "--graceful-timeout", "10", SERVER_APP]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        cwd=str(self.entry_script.parent), start_new_session=True)
        log.close()
        atexit.register(self.stop)  # a kernel restart or a failed cell must not leave the server running
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.alive():
                return self
            time.sleep(0.25)
        self.stop()
        raise ServerStartError(f"The inference server did not become ready in {timeout:.0f} s. The end of its log "
                               f"({self.log_path}):\n{self.log_tail()}")

    def alive(self) -> bool:
        """True when the server answers GET / with 200 (the inference server's liveness route)."""
        try:
            with urllib.request.urlopen(self.url + "/", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log."""
        if not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the server (SIGTERM to its process group, SIGKILL after ``timeout`` s); return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode

    def __enter__(self) -> "LocalServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def post(url: str, body: bytes | str, timeout: float = 30.0) -> tuple[int, dict[str, Any] | str]:
    """POST ``body`` as JSON to ``url``; (status, parsed JSON or the raw text when the answer is not JSON)."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def latency(url: str, bodies: Sequence[bytes | str], n_requests: int = 500, concurrency: int = 4) -> dict[str, float]:
    """Send ``n_requests`` POSTs (cycling through ``bodies``) from ``concurrency`` threads; p50/p95/max latency in
    ms, requests/s and the count of non-200 answers."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> tuple[float, int]:
        start = time.perf_counter()
        status, _ = post(url, bodies[i % len(bodies)])
        return (time.perf_counter() - start) * 1000.0, status

    post(url, bodies[0])  # warm-up: the first request pays for lazy imports
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=int(concurrency)) as pool:
        results = list(pool.map(one, range(int(n_requests))))
    wall = time.perf_counter() - start
    ms = np.array([r[0] for r in results])
    return {"requests": int(n_requests), "concurrency": int(concurrency), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()), "requests_per_s": n_requests / wall,
            "errors": int(sum(r[1] != 200 for r in results))}
