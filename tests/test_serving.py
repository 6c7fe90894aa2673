"""Serving: request checks (each bad input gets its 4xx and message), decoding as in training, ONNX against
PyTorch, and the real Azure ML inference server on loopback answering good and bad requests."""

from __future__ import annotations

import base64
import io
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import serving
from helpers.dicom import unit_image, write_dicom
from helpers.errors import BadRequest
from helpers.train_torch import TrainConfig, build_model, resize_image

ROOT = Path(__file__).resolve().parents[1]
SCORE = ROOT / "05_deploy_explain" / "score.py"


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _dicom(tmp_path, pixels: np.ndarray, name: str = "x.dcm", **kw) -> bytes:
    path = write_dicom(tmp_path / name, pixels, modality="DX", patient_id="P1", study_uid="1.2.3.4",
                       series_uid="1.2.3.4.5", sop_uid="1.2.3.4.5.6", bits_stored=12, **kw)
    return path.read_bytes()


def _body(data: bytes, **fields) -> str:
    return json.dumps({"image": base64.b64encode(data).decode(), **fields})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A real (untrained, seeded) small CNN written as a deployment's model folder: best.pt + model.onnx."""
    torch.manual_seed(0)
    config = TrainConfig(model="small_cnn", image_size=64, label_names=("pneumonia",))
    model = build_model(config).eval()
    return serving.export_model(model, config, tmp_path_factory.mktemp("model") / "chest" / "1")


@pytest.fixture(scope="module")
def grey_png():
    rng = np.random.default_rng(0)
    return _png((rng.random((96, 80)) * 255).astype(np.uint8))


# --- parse_request ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body, status, words", [
    (b"", 400, "empty"),
    (b"   \n", 400, "empty"),
    (b"\xff\xfe\x00garbage", 400, "not UTF-8"),
    ('{"image": ', 400, "not valid JSON"),
    ("[1, 2]", 400, "not an object"),
    ('{"heatmap": true}', 400, "no 'image'"),
    ('{"image": 42}', 422, "base64 string"),
    ('{"image": "!!!not base64!!!"}', 400, "not valid base64"),
    ('{"image": ""}', 400, "0 bytes"),
    ('{"image": "aGVsbG8gd29ybGQ="}', 415, "not a DICOM"),
    ('{"image": "aGVsbG8=", "heatmaps": true}', 422, "Unknown field"),
])
def test_parse_request_refuses_bad_bodies_with_status_and_advice(body, status, words):
    with pytest.raises(BadRequest) as info:
        serving.parse_request(body)
    assert info.value.status == status
    assert words in str(info.value)


def test_parse_request_checks_heatmap_and_format_fields(grey_png):
    with pytest.raises(BadRequest, match="true or false") as info:
        serving.parse_request(_body(grey_png, heatmap="yes"))
    assert info.value.status == 422
    with pytest.raises(BadRequest, match="says dicom but the bytes are png"):
        serving.parse_request(_body(grey_png, format="dicom"))
    with pytest.raises(BadRequest, match="'format' is 'gif'"):
        serving.parse_request(_body(grey_png, format="gif"))
    ok = serving.parse_request(_body(grey_png, heatmap=True, format="png"))
    assert (ok.format, ok.heatmap, ok.data) == ("png", True, grey_png)


def test_parse_request_refuses_an_oversized_body_with_413():
    with pytest.raises(BadRequest, match="limit is 1 MiB") as info:
        serving.parse_request(b"x" * (2**20 + 1), max_bytes=2**20)
    assert info.value.status == 413


def test_encode_request_round_trips_through_parse(tmp_path, grey_png):
    path = tmp_path / "a.png"
    path.write_bytes(grey_png)
    parsed = serving.parse_request(serving.encode_request(path, heatmap=True))
    assert parsed == serving.ScoreRequest(grey_png, "png", True)


# --- decode_image ----------------------------------------------------------------------------------


def test_decode_dicom_matches_what_training_reads(tmp_path):
    pixels = (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) % 4096)
    data = _dicom(tmp_path, pixels)
    image = serving.decode_image(serving.parse_request(_body(data)))
    np.testing.assert_array_equal(image, unit_image(tmp_path / "x.dcm"))
    assert image[0, 1] == pytest.approx(1 / 4095)


def test_decode_png_grey_and_grey_saved_as_rgb_agree(grey_png):
    grey = serving.decode_image(serving.parse_request(_body(grey_png)))
    with Image.open(io.BytesIO(grey_png)) as img:
        rgb_png = _png(np.asarray(img.convert("RGB")))
    np.testing.assert_array_equal(serving.decode_image(serving.parse_request(_body(rgb_png))), grey)
    assert grey.shape == (96, 80) and grey.dtype == np.float32


def test_sixteen_bit_png_keeps_its_depth():
    data = _png(np.full((40, 40), 65535 // 3, dtype=np.uint16))
    image = serving.decode_image(serving.parse_request(_body(data)))
    assert image[0, 0] == pytest.approx(1 / 3, abs=1e-4)


@pytest.mark.parametrize("make, words", [
    (lambda: _png(np.dstack([np.full((64, 64), c, np.uint8) for c in (200, 30, 30)])), "in colour"),
    (lambda: _png(np.dstack([np.full((64, 64), 90, np.uint8)] * 3 + [np.full((64, 64), 100, np.uint8)])),
     "transparent"),
    (lambda: _png(np.zeros((16, 64), np.uint8)), "between 32 and 4096"),
    (lambda: _png(np.zeros((40, 4100), np.uint8)), "between 32 and 4096"),
    (lambda: _png(np.zeros((64, 64), np.uint8))[:60], "could not be decoded"),
])
def test_wrong_images_get_422_with_a_reason(make, words):
    with pytest.raises(BadRequest, match=words) as info:
        serving.decode_image(serving.parse_request(_body(make())))
    assert info.value.status == 422


def test_truncated_and_multiframe_dicom_get_422(tmp_path):
    data = _dicom(tmp_path, np.zeros((64, 64), np.uint16))
    with pytest.raises(BadRequest, match="uploaded DICOM") as info:
        serving.decode_image(serving.parse_request(_body(data[: len(data) - 500])))
    assert info.value.status == 422
    import pydicom

    ds = pydicom.dcmread(tmp_path / "x.dcm")
    ds.NumberOfFrames = 3
    ds.PixelData = np.zeros((3, 64, 64), np.uint16).tobytes()
    ds.save_as(tmp_path / "multi.dcm")
    frames = (tmp_path / "multi.dcm").read_bytes()
    with pytest.raises(BadRequest, match="single-frame greyscale") as info:
        serving.decode_image(serving.parse_request(_body(frames)))
    assert info.value.status == 422


# --- Predictor and ONNX ----------------------------------------------------------------------------


def test_onnx_runtime_matches_pytorch(model_dir):
    torch_predictor = serving.Predictor.from_dir(model_dir)
    session = serving.onnx_session(model_dir / serving.ONNX_NAME)
    images = np.random.default_rng(1).random((8, 1, 64, 64), dtype=np.float32)
    diff = serving.compare_runtimes(torch_predictor.model, session, images)
    assert diff < 1e-5
    onnx_predictor = serving.Predictor.from_dir(model_dir, runtime="onnx")
    one = images[0, 0]
    a, b = torch_predictor.probabilities(one), onnx_predictor.probabilities(one)
    assert a.keys() == b.keys() == {"normal", "pneumonia"}
    assert abs(a["pneumonia"] - b["pneumonia"]) < 1e-5
    assert a["normal"] + a["pneumonia"] == pytest.approx(1.0, abs=1e-5)


def test_predictor_resizes_like_training_and_returns_a_heatmap(model_dir, grey_png):
    predictor = serving.Predictor.from_dir(model_dir)
    request = serving.parse_request(_body(grey_png, heatmap=True))
    answer = predictor.answer(request)
    image = serving.decode_image(request)
    expected = serving.torch_probabilities(predictor.model, resize_image(image, 64)[None, None])[0, 0]
    assert answer["probabilities"]["pneumonia"] == pytest.approx(float(expected), abs=1e-6)
    assert answer["input"] == {"format": "png", "height": 96, "width": 80}
    heat = serving.decode_heatmap(answer)
    assert heat.shape == (64, 64) and 0.0 <= heat.min() and heat.max() == pytest.approx(1.0)
    assert "heatmap" not in predictor.answer(serving.parse_request(_body(grey_png)))


def test_handle_turns_an_internal_failure_into_a_plain_500(model_dir, grey_png):
    class Broken(serving.Predictor):
        def probabilities(self, image):
            raise RuntimeError("secret internals /home/someone/model.py line 3")

    predictor = serving.Predictor.from_dir(model_dir)
    status, body = serving.handle(Broken(predictor.model, predictor.config), _body(grey_png))
    assert status == 500
    assert "RuntimeError" in body["error"] and "secret" not in body["error"]


def test_find_model_file_searches_below_and_says_what_is_missing(tmp_path, model_dir):
    assert serving.find_model_file(model_dir.parent.parent, "best.pt") == model_dir / "best.pt"
    with pytest.raises(FileNotFoundError, match="export_model"):
        serving.find_model_file(tmp_path, "best.pt")


# --- The real server on loopback -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with serving.LocalServer(SCORE, model_dir, log_path=log) as running:
        yield running


def test_server_answers_good_requests(server, tmp_path, grey_png):
    status, answer = serving.post(server.score_url, _body(_dicom(tmp_path, np.full((64, 64), 2000, np.uint16))))
    assert status == 200, answer
    assert set(answer["probabilities"]) == {"normal", "pneumonia"}
    assert answer["input"]["format"] == "dicom"
    status, answer = serving.post(server.score_url, _body(grey_png, heatmap=True))
    assert status == 200, answer
    assert serving.decode_heatmap(answer).shape == (64, 64)


def test_server_refuses_bad_requests_and_keeps_serving(server, grey_png):
    colour = _png(np.dstack([np.full((64, 64), c, np.uint8) for c in (200, 30, 30)]))
    bad = [
        (b"", 400), (b"{not json", 400), (b'{"image": "%%%"}', 400), (_body(b"plain text, not an image"), 415),
        (_body(colour), 422), (_body(_png(np.zeros((8, 8), np.uint8))), 422), (_body(grey_png, heatmap=1), 422),
        (b"x" * (serving.MAX_BODY_BYTES + 10), 413),
    ]
    for body, expected in bad:
        status, answer = serving.post(server.score_url, body)
        assert status == expected, (body[:40], answer)
        assert isinstance(answer, dict) and answer["error"], answer
        assert "Traceback" not in json.dumps(answer)
    status, answer = serving.post(server.score_url, _body(grey_png))
    assert status == 200, answer


def test_server_binds_loopback_only_and_logs_request_statistics(server, grey_png):
    assert server.url.startswith("http://127.0.0.1:")
    serving.post(server.score_url, _body(grey_png))
    import urllib.request

    with urllib.request.urlopen(server.score_url) as response:
        logged = json.loads(response.read())
    assert logged["logged"] >= 1 and "mean" in logged["stats"][-1]


def test_server_stops_cleanly(model_dir, tmp_path):
    running = serving.LocalServer(SCORE, model_dir, log_path=tmp_path / "log.txt").start()
    port = running.port
    assert running.alive()
    code = running.stop()
    assert code == 0, running.log_tail()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_server_that_cannot_load_its_model_reports_the_log(tmp_path):
    with pytest.raises(serving.ServerStartError, match="AZUREML_MODEL_DIR|best.pt|does not exist"):
        serving.LocalServer(SCORE, tmp_path / "missing", log_path=tmp_path / "log.txt").start(timeout=60)


def test_runtime_speed_reports_both_runtimes_and_their_ratio(model_dir):
    predictor = serving.Predictor.from_dir(model_dir)
    session = serving.onnx_session(model_dir / serving.ONNX_NAME)
    speed = serving.runtime_speed(predictor.model, session, np.zeros((4, 1, 64, 64), np.float32), repeats=2)
    assert speed["torch_ms"] > 0 and speed["onnx_ms"] > 0
    assert speed["torch_over_onnx"] == pytest.approx(speed["torch_ms"] / speed["onnx_ms"])


def test_to_png_round_trips_through_decode():
    image = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    back = serving.decode_image(serving.parse_request(serving.encode_request(serving.to_png(image))))
    np.testing.assert_allclose(back, image, atol=0.5 / 255 + 1e-6)


def test_export_model_replaces_a_previous_model_and_its_card(tmp_path):
    config = TrainConfig(model="small_cnn", image_size=32, label_names=("pneumonia",))
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model_card.md").write_text("a card of another model")
    (folder / "notes.txt").write_text("kept")
    serving.export_model(build_model(config), config, folder, onnx=False)
    assert sorted(p.name for p in folder.iterdir()) == ["best.pt", "notes.txt"]


def test_a_ct_slice_is_refused_as_not_a_radiograph(tmp_path):
    path = write_dicom(tmp_path / "ct.dcm", np.zeros((64, 64), np.uint16), modality="CT", patient_id="P1",
                       study_uid="1.2.3.4", series_uid="1.2.3.4.5")
    with pytest.raises(BadRequest, match="Modality is CT") as info:
        serving.decode_image(serving.parse_request(_body(path.read_bytes())))
    assert info.value.status == 422


def test_real_radiographs_decode_and_other_modalities_are_refused(shared_data):
    samples = shared_data("dicom_samples", "nema_wg04_and_pydicom")
    for name in ("RG1_JLSN.dcm", "RG2_JLSL.dcm", "RG3_J2KR.dcm"):  # JPEG-LS and JPEG 2000 radiographs
        try:
            image = serving.decode_image(serving.parse_request(serving.encode_request(samples / name)))
        except BadRequest as exc:  # a missing decoder must say which package to install
            assert exc.status == 415 and "pip install" in str(exc), str(exc)
            continue
        assert image.ndim == 2 and min(image.shape) > 1000 and 0 <= image.min() < image.max() <= 1
    for name, words in (("CT_small.dcm", "Modality is CT"), ("US1_UNCR.dcm", "Modality is US")):
        with pytest.raises(BadRequest, match=words) as info:
            serving.decode_image(serving.parse_request(serving.encode_request(samples / name)))
        assert info.value.status == 422
    kermany = sorted(shared_data("chest_xray_kermany_fullres", "PNEUMONIA").glob("*.jpeg"))[0]
    assert serving.decode_image(serving.parse_request(serving.encode_request(kermany))).ndim == 2
