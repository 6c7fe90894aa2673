"""helpers.modelcard: a Markdown model card from real MLflow runs in a temporary local store."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from helpers import metrics, modelcard, tracking
from helpers.errors import NoActiveRun

#: What TrainConfig.to_dict() of helpers.train_torch logs (written out: importing torch here is not needed).
CONFIG = {
    "model": "small_cnn", "pretrained": False, "image_size": 64, "epochs": 4, "batch_size": 16, "lr": 0.003,
    "weight_decay": 1e-4, "schedule": "onecycle", "patience": 3, "augment": True, "amp": "auto", "seed": 0,
    "label_names": ["pneumonia"], "num_workers": 0, "max_minutes": None, "pos_weight": None, "width": 16,
    "device": None,
}


def _training_run(uri: str, test_metrics: dict[str, float], data: str | None = "generated") -> str:
    """A finished run shaped like 03_train_classifier's: config params, 3 epochs of history, best epoch, test_*."""
    tags = {"data": data} if data else {}
    with tracking.start_run("chest-xray", run_name="small_cnn-binary", tags=tags, uri=uri) as run:
        tracking.log_config(CONFIG)
        history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.5, 0.45], "val_auc": [0.71, 0.88, 0.86]})
        tracking.log_history(history)
        tracking.log_metrics({"best_epoch": 2, "best_val_auc": 0.88})
    with tracking.start_run("chest-xray", run_id=run.info.run_id, uri=uri):  # test results added later, as there
        tracking.log_metrics(test_metrics)
    return run.info.run_id


def _metric_row(card: str, key: str) -> str:
    """The Metrics table row of MLflow key ``key``."""
    rows = [line for line in card.splitlines() if f"| `{key}` |" in line]
    assert len(rows) == 1, card
    return rows[0]


def test_card_shows_intervals_model_and_not_logged(store):
    run_id = _training_run(store, {"test_auc": 0.912, "test_auc_low": 0.871, "test_auc_high": 0.948,
                                   "test_sensitivity": 0.9, "test_n": 60, "test_positives": 30})
    card = modelcard.model_card(run_id, uri=store)
    assert card.startswith("# Model card: small_cnn (pneumonia)\n")
    assert f"MLflow run: `{run_id}` (small_cnn-binary), experiment `chest-xray`, status FINISHED" in card
    assert _metric_row(card, "test_auc").endswith("| 0.912 (0.871-0.948) |")
    assert _metric_row(card, "test_sensitivity").endswith("| 0.900 |")  # no _low/_high: no interval
    assert _metric_row(card, "test_ece").endswith("| not logged |")
    for section in ("## Intended use", "## Not intended for", "## Training data", "## Training procedure",
                    "## Metrics", "## Limitations", "## Ethical considerations and caveats"):
        assert f"\n{section}\n" in card
    assert "Clinical use of any kind" in card
    assert modelcard.DATA_SOURCES["generated"][0] in card and modelcard.DATA_SOURCES["generated"][1] in card
    assert "- Source (run tag `data`): `generated`" in card
    assert "- Input: 64 x 64 pixels" in card and "- Test set: 60 images, 30 positive (50%)" in card
    assert "- Epochs: 4 planned, 3 run, early-stopping patience 3" in card
    assert "- Best epoch (highest validation AUC): 2, validation AUC 0.880" in card
    assert "- Learning rate: 0.003 (onecycle schedule)" in card and "Batch size: 16" in card
    assert modelcard.model_card(run_id, uri=store) == card  # the same run always gives the same card


def test_card_from_summarize_binary_as_the_training_notebook_logs_it(store):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    summary = metrics.summarize_binary(y, 1 / (1 + np.exp(-rng.normal(y * 1.5, 1.0))), n_boot=200)
    run_id = _training_run(store, {f"test_{k}": v for k, v in summary.items() if isinstance(v, (int, float))})
    card = modelcard.model_card(run_id, uri=store)
    table = card.split("## Metrics")[1].split("## Limitations")[0]
    assert "| not logged |" not in table
    expected = f"{summary['auc']:.3f} ({summary['auc_low']:.3f}-{summary['auc_high']:.3f})"
    assert _metric_row(card, "test_auc").endswith(f"| {expected} |")
    assert _metric_row(card, "test_ppv").endswith(f"| {summary['ppv']:.3f} |")
    assert f"At the threshold: TP {summary['tp']}, FP {summary['fp']}, TN {summary['tn']}, FN {summary['fn']}." in card
    assert "`test_auc_low`" not in card  # interval bounds sit beside their metric, not in rows of their own


def test_plain_metric_names_and_own_texts(store):
    with tracking.start_run("chest-xray", uri=store) as run:
        tracking.log_metrics({"auc": 0.8, "auc_low": 0.7, "auc_high": 0.9})
    card = modelcard.model_card(run.info.run_id, uri=store, metric_prefix="", intended_use="Workshop demo only.",
                                limitations=["Trained for 2 minutes."], data_description="Forty phantoms.")
    assert _metric_row(card, "auc").endswith("| 0.800 (0.700-0.900) |")
    assert "## Intended use\n\nWorkshop demo only.\n" in card
    assert "## Limitations\n\n- Trained for 2 minutes.\n" in card
    assert "Forty phantoms." in card
    # Nothing else was logged: each gap is named, not filled in.
    assert card.startswith("# Model card: not logged\n")
    assert "- Source (run tag `data`): not logged" in card and "- Labels: not logged" in card
    assert "- Epochs: not logged\n" in card
    assert "- Test set: size not logged" in card


def test_unknown_data_source_asks_for_a_description(store):
    run_id = _training_run(store, {"test_auc": 0.7}, data="hospital_x")
    card = modelcard.model_card(run_id, uri=store)
    assert "Description not logged: pass data_description= to model_card." in card
    assert card.split("## Limitations\n\n")[1].startswith(f"- {modelcard.DEFAULT_LIMITATIONS[0]}")


def test_write_model_card_writes_and_logs_to_its_own_run(tmp_path, store):
    run_id = _training_run(store, {"test_auc": 0.9, "test_auc_low": 0.8, "test_auc_high": 0.95})
    path = modelcard.write_model_card(run_id, tmp_path / "cards" / "MODEL_CARD.md", uri=store)
    assert path.is_file() and path.read_text(encoding="utf-8") == modelcard.model_card(run_id, uri=store)
    client = mlflow.MlflowClient(store)
    assert client.list_artifacts(run_id, "model_card") == []  # no active run: written, not logged

    with tracking.start_run("chest-xray", run_id=run_id, uri=store):
        modelcard.write_model_card(run_id, path, uri=store)
    assert [a.path for a in client.list_artifacts(run_id, "model_card")] == ["model_card/MODEL_CARD.md"]


def test_write_model_card_refuses_to_log_elsewhere(tmp_path, store):
    run_id = _training_run(store, {"test_auc": 0.9})
    with pytest.raises(NoActiveRun, match="start_run"):
        modelcard.write_model_card(run_id, tmp_path / "card.md", log_to_run=True, uri=store)
    with tracking.start_run("other", uri=store) as other:
        with pytest.raises(ValueError, match="belongs with its own run"):
            modelcard.write_model_card(run_id, tmp_path / "card.md", log_to_run=True, uri=store)
    assert mlflow.MlflowClient(store).list_artifacts(other.info.run_id) == []


def test_unknown_run_says_what_to_check(store):
    with pytest.raises(ValueError, match="Check the id"):
        modelcard.model_card("0" * 32, uri=store)


def test_registered_data_set_appears_under_training_data(tmp_path, store):
    manifest = tmp_path / "chest.csv"
    pd.DataFrame({"path": ["a.dcm", "b.dcm", "c.dcm", "d.dcm"], "patient_id": ["001", "001", "002", "003"],
                  "label": [0, 0, 1, 1], "split": ["train", "train", "val", "test"]}).to_csv(manifest, index=False)
    version = tracking.register_dataset(manifest, "chest-generated", uri=store)
    with tracking.start_run("chest-xray", tags={"data": "generated"}, uri=store) as run:
        tracking.log_dataset_input("chest-generated", context="training", uri=store)
    card = modelcard.model_card(run.info.run_id, uri=store)
    assert "- Registered data set (training): `chest-generated:1`" in card
    assert f"- Dataset input: `chest-generated` (version 1, context training, digest {version.sha256[:32]})" in card
