"""Azure ML scoring script for the chest X-ray classifier (the online endpoint's and the local server's entry script).

``init()`` loads the model folder at ``AZUREML_MODEL_DIR`` (``best.pt``, and ``model.onnx`` when
``MEDIMG_SERVE_RUNTIME=onnx``). ``run()`` takes the raw HTTP request:

- ``POST /score`` with ``{"image": "<base64 DICOM/PNG/JPEG>", "heatmap": false}`` answers per-class probabilities
  (and a Grad-CAM heat map on request); a bad request gets a 4xx with ``{"error": "..."}``, never a stack trace;
- ``GET /score`` answers the image statistics of the requests seen so far, for the drift check.
"""

import os
import sys
from pathlib import Path

try:
    import helpers  # noqa: F401  (installed with pip install -e . or medimg-helpers)
except ImportError:  # an Azure deployment uploads the repository as code: use its helpers folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from azureml_inference_server_http.api.aml_request import rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse

from helpers import monitoring, serving

predictor = None
request_log = None


def init():
    """Load the model once per worker process."""
    global predictor, request_log
    torch.set_num_threads(int(os.environ.get("MEDIMG_SERVE_THREADS", "1")))
    request_log = monitoring.RequestLog(max_rows=int(os.environ.get("MEDIMG_LOG_ROWS", "10000")))
    predictor = serving.Predictor.from_dir(os.environ["AZUREML_MODEL_DIR"],
                                           runtime=os.environ.get("MEDIMG_SERVE_RUNTIME", "torch"))
    predictor.request_log = request_log


def _json(body, status):
    return AMLResponse(body, status, json_str=True)  # json_str=True: AMLResponse serialises the dict


@rawhttp
def run(request):
    """Answer one HTTP request (see the module docstring)."""
    if request.method == "GET":
        return _json({"logged": len(request_log), "stats": request_log.frame().to_dict(orient="records")}, 200)
    if request.method != "POST":
        return _json({"error": f"{request.method} is not supported: POST the image as JSON.", "status": 405}, 405)
    status, body = serving.handle(predictor, request.get_data(cache=False))
    return _json(body, status)
