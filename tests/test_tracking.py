"""MLflow tracking in a temporary local store, and the data set registry's versioning and hash checks."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import tracking  # noqa: E402
from helpers.azure import ENV_VARS  # noqa: E402
from helpers.datasets.splits import patient_split, read_manifest, write_manifest  # noqa: E402
from helpers.errors import (  # noqa: E402
    ChecksumMismatch,
    DatasetError,
    NoActiveRun,
    TrackingBackendUnavailable,
    WorkspaceNotConfigured,
)


def _table(n_patients: int = 6) -> pd.DataFrame:
    """Two images per patient, ids with leading zeros, a patient-level split."""
    ids = [f"{i:03d}" for i in range(n_patients) for _ in range(2)]
    df = pd.DataFrame({"path": [f"img/{p}_{k}.png" for k, p in enumerate(ids)], "patient_id": ids,
                       "label": [k % 2 for k in range(len(ids))]})
    return patient_split(df, fractions=(0.5, 0.5), seed=0)


@dataclasses.dataclass
class _Config:
    lr: float = 1e-3
    epochs: int = 2
    data: Path = Path("manifests/train.csv")
    aug: dict = dataclasses.field(default_factory=lambda: {"flip": True, "angles": (0, 90)})


# --- Store -------------------------------------------------------------------------------------------


def test_local_store_is_an_sqlite_database_under_data_dir(tmp_path, store):
    uri = tracking.local_store_uri()
    db = (tmp_path / "data" / "mlflow.db").resolve()
    assert uri == f"sqlite:///{db.as_posix()}" and db.is_file()
    assert tracking.tracking_uri() == uri  # auto without workspace or override -> local
    assert tracking.ALLOW_FILE_STORE_ENV not in os.environ  # nothing opens the file store any more
    with tracking.start_run("lesson", run_name="a run") as run:
        mlflow.log_text("hello", "notes/hello.txt")
    artifacts = Path(url2pathname(urlparse(run.info.artifact_uri).path))
    assert artifacts.is_relative_to((tmp_path / "data" / "mlartifacts").resolve())
    assert (artifacts / "notes" / "hello.txt").read_text() == "hello"
    assert not (tmp_path / "mlruns").exists()  # nothing lands in the working directory (the store fixture's cwd)
    default = mlflow.MlflowClient(uri).get_experiment("0").artifact_location
    assert default == (tmp_path / "data" / "mlartifacts" / "0").resolve().as_uri()


def test_an_old_file_store_is_left_as_it_was_named_and_migrated_once(tmp_path, monkeypatch, store):
    """Runs and registered data sets of the file store the collection used before come over with
    migrate_file_store(); the old folder is only read."""
    old = tmp_path / "data" / tracking.STORE_FOLDER
    monkeypatch.setenv(tracking.ALLOW_FILE_STORE_ENV, "true")
    old_client = mlflow.MlflowClient(old.resolve().as_uri())
    experiment = old_client.create_experiment("chest-xray")
    run = old_client.create_run(experiment, run_name="small_cnn", tags={"data": "generated"})
    for step, auc in enumerate([0.6, 0.7, 0.8]):
        old_client.log_metric(run.info.run_id, "val_auc", auc, step=step)
    old_client.log_param(run.info.run_id, "lr", "0.003")
    old_client.log_text(run.info.run_id, "weights", "model/best.pt")
    old_client.set_terminated(run.info.run_id)
    manifest, _ = write_manifest(_table(), tmp_path / "m.csv")
    tracking.register_dataset(manifest, "pneumo", uri=old.resolve().as_uri())
    monkeypatch.delenv(tracking.ALLOW_FILE_STORE_ENV)
    before = sorted(p.relative_to(old).as_posix() for p in old.rglob("*"))
    (tmp_path / "data" / "mlflow.db").unlink()  # the store fixture made one: start as a learner with only the old one
    with pytest.warns(UserWarning, match="migrate_file_store"):
        uri = tracking.local_store_uri()
    copied = tracking.migrate_file_store()
    assert dict(zip(copied.experiment, copied.copied)) == {"chest-xray": 1, "datasets": 1}
    assert tracking.migrate_file_store().copied.sum() == 0  # a second migration copies nothing twice
    new = mlflow.MlflowClient(uri)
    [moved] = new.search_runs([new.get_experiment_by_name("chest-xray").experiment_id])
    assert moved.info.run_name == "small_cnn" and moved.data.params == {"lr": "0.003"}
    assert moved.data.tags["data"] == "generated" and moved.data.tags[tracking.MIGRATED_TAG] == run.info.run_id
    assert [m.value for m in new.get_metric_history(moved.info.run_id, "val_auc")] == [0.6, 0.7, 0.8]
    assert Path(new.download_artifacts(moved.info.run_id, "model/best.pt", str(tmp_path))).read_text() == "weights"
    assert tracking.load_registered_manifest("pneumo").equals(read_manifest(manifest))
    assert sorted(p.relative_to(old).as_posix() for p in old.rglob("*")) == before  # only read


def test_auto_respects_mlflow_tracking_uri(monkeypatch, store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking.tracking_uri() == "http://tracking.example:5000"
    assert tracking.tracking_uri("local") == store
    with pytest.raises(ValueError, match="backend"):
        tracking.tracking_uri("cloud")


def test_azure_backend_without_workspace_says_how_to_configure(store):
    with pytest.raises(WorkspaceNotConfigured, match="az login"):
        tracking.tracking_uri("azure")


def test_configured_workspace_without_plugin_falls_back_to_local_with_warning(monkeypatch, store):
    monkeypatch.setattr(tracking, "_azureml_mlflow_installed", lambda: False)
    for name, value in zip(ENV_VARS, ("00000000-0000-0000-0000-000000000000", "rg", "ws")):
        monkeypatch.setenv(name, value)
    with pytest.warns(UserWarning, match="azureml-mlflow"):
        assert tracking.tracking_uri() == store
    with pytest.raises(TrackingBackendUnavailable, match="pip install azureml-mlflow"):
        tracking.tracking_uri("azure")


# --- Runs --------------------------------------------------------------------------------------------


def test_run_round_trip_params_metrics_figure_artifact(tmp_path, store):
    note = tmp_path / "notes.txt"
    note.write_text("hello")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    with tracking.start_run("unit", run_name="r1", tags={"lesson": "03"}) as run:
        params = tracking.log_config(_Config())
        tracking.log_metrics({"loss": 0.5, "auc": np.float32(0.75)}, step=0)
        tracking.log_metrics({"loss": 0.25}, step=1)
        assert tracking.log_figure(fig, "curve") == "figures/curve.png"
        assert tracking.log_artifact(note, "docs").endswith("/docs/notes.txt")
    plt.close(fig)
    assert params["aug.flip"] == "True" and params["data"] == "manifests/train.csv"

    client = mlflow.MlflowClient(store)
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "r1"
    assert got.data.tags["lesson"] == "03"
    assert got.data.params == {"lr": "0.001", "epochs": "2", "data": "manifests/train.csv",
                               "aug.flip": "True", "aug.angles": "[0, 90]"}
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.25)]
    assert got.data.metrics["auc"] == pytest.approx(0.75)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "figures", "docs"} <= artifacts
    config_path = client.download_artifacts(run.info.run_id, "config.json", str(tmp_path))
    assert json.loads(Path(config_path).read_text())["aug"] == {"flip": True, "angles": [0, 90]}
    assert client.get_experiment(got.info.experiment_id).name == "unit"


def test_failed_run_is_marked_failed(store):
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.start_run("unit") as run:
            raise RuntimeError("boom")
    assert mlflow.MlflowClient(store).get_run(run.info.run_id).info.status == "FAILED"


def test_logging_outside_a_run_raises(store):
    with pytest.raises(NoActiveRun, match="start_run"):
        tracking.log_metrics({"loss": 1.0})
    with pytest.raises(NoActiveRun):
        tracking.log_config({"a": 1})


def test_log_metrics_rejects_infinity(store):
    with tracking.start_run("unit"):
        with pytest.raises(ValueError, match="infinite"):
            tracking.log_metrics({"loss": float("inf")})


# --- Data set registry -------------------------------------------------------------------------------


def test_register_is_idempotent_and_versions_count_up(tmp_path, store):
    table = _table()
    path, digest = write_manifest(table, tmp_path / "m" / "pneumo.csv")

    first = tracking.register_dataset(path, "pneumo", description="first cut")
    again = tracking.register_dataset(path, "pneumo")
    assert (first.version, first.created, first.sha256) == (1, True, digest)
    assert (again.version, again.created, again.run_id) == (1, False, first.run_id)
    assert first.rows == 12 and first.patients == 6
    assert first.splits == table["split"].value_counts().sort_index().to_dict()

    changed, digest2 = write_manifest(table.iloc[:-2], tmp_path / "m" / "pneumo.csv")
    second = tracking.register_dataset(changed, "pneumo")
    assert (second.version, second.created, second.sha256) == (2, True, digest2)
    other = tracking.register_dataset(changed, "other-set")  # versions count per name
    assert other.version == 1

    versions = tracking.list_dataset_versions("pneumo")
    assert list(versions.columns) == tracking.VERSION_COLUMNS
    assert versions["version"].tolist() == [1, 2]
    assert versions["sha256"].tolist() == [digest, digest2]
    assert versions["description"].tolist() == ["first cut", ""]
    assert tracking.list_dataset_versions("never-registered").empty

    run = mlflow.MlflowClient(store).get_run(first.run_id)
    tags = {k: run.data.tags[k] for k in ("name", "version", "sha256")}
    assert tags == {"name": "pneumo", "version": "1", "sha256": digest}
    assert run.data.metrics["rows"] == 12 and run.data.metrics["patients"] == 6
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "pneumo" and dataset_input.dataset.digest == digest[:32]
    assert json.loads(dataset_input.dataset.profile)["num_rows"] == 12


def test_load_registered_manifest_round_trip_and_versions(tmp_path, store):
    table = _table()
    path, _ = write_manifest(table, tmp_path / "a.csv")
    tracking.register_dataset(path, "pneumo")
    path2, _ = write_manifest(table.iloc[:4], tmp_path / "b.csv")
    tracking.register_dataset(path2, "pneumo")

    latest = tracking.load_registered_manifest("pneumo")
    pd.testing.assert_frame_equal(latest, read_manifest(path2))
    v1 = tracking.load_registered_manifest("pneumo", version=1)
    pd.testing.assert_frame_equal(v1, read_manifest(path))
    assert v1["patient_id"].iloc[0] == "000"  # ids keep their leading zeros
    with pytest.raises(DatasetError, match="registered versions: 1, 2"):
        tracking.load_registered_manifest("pneumo", version=7)
    with pytest.raises(DatasetError, match="register_dataset"):
        tracking.load_registered_manifest("unknown")


def test_tampered_stored_manifest_raises_checksum_mismatch(tmp_path, store):
    path, _ = write_manifest(_table(), tmp_path / "m.csv")
    registered = tracking.register_dataset(path, "pneumo")
    run = mlflow.MlflowClient(store).get_run(registered.run_id)
    stored = Path(url2pathname(urlparse(run.info.artifact_uri).path)) / "manifest" / "m.csv"
    assert stored.is_file()
    stored.write_bytes(stored.read_bytes().replace(b",test", b",train", 1))
    with pytest.raises(ChecksumMismatch, match="changed after registration"):
        tracking.load_registered_manifest("pneumo")


def test_edited_manifest_is_refused_at_registration(tmp_path, store):
    path, _ = write_manifest(_table(), tmp_path / "m.csv")
    path.write_text(path.read_text().replace("test", "train"))
    with pytest.raises(ChecksumMismatch, match="write_manifest"):
        tracking.register_dataset(path, "pneumo")


def test_explicit_version_conflict_and_bad_names(tmp_path, store):
    table = _table()
    path, _ = write_manifest(table, tmp_path / "m.csv")
    assert tracking.register_dataset(path, "pneumo", version=3).version == 3
    path2, _ = write_manifest(table.iloc[:4], tmp_path / "n.csv")
    with pytest.raises(DatasetError, match="already registered"):
        tracking.register_dataset(path2, "pneumo", version=3)
    assert tracking.register_dataset(path2, "pneumo").version == 4
    with pytest.raises(ValueError):
        tracking.register_dataset(path2, " pneumo")
    with pytest.raises(DatasetError, match="does not exist"):
        tracking.register_dataset(tmp_path / "missing.csv", "pneumo")


def test_log_dataset_input_links_a_training_run(tmp_path, store):
    path, digest = write_manifest(_table(), tmp_path / "m.csv")
    tracking.register_dataset(path, "pneumo")
    with tracking.start_run("train") as run:
        used = tracking.log_dataset_input("pneumo")
    assert used.version == 1
    got = mlflow.MlflowClient(store).get_run(run.info.run_id)
    assert got.data.tags["dataset.training"] == "pneumo:1"
    assert got.data.tags["dataset.training.sha256"] == digest
    [dataset_input] = got.inputs.dataset_inputs
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"


def test_a_file_store_uri_from_the_environment_is_still_allowed(tmp_path, monkeypatch):
    """A learner who points MLFLOW_TRACKING_URI at a file store by hand gets it (MLflow needs the variable)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "store").as_uri())
    monkeypatch.delenv(tracking.ALLOW_FILE_STORE_ENV, raising=False)
    assert tracking.tracking_uri() == (tmp_path / "store").as_uri()
    assert os.environ[tracking.ALLOW_FILE_STORE_ENV] == "true"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://example.org/mlflow")
    monkeypatch.delenv(tracking.ALLOW_FILE_STORE_ENV, raising=False)
    assert tracking.tracking_uri() == "https://example.org/mlflow" and tracking.ALLOW_FILE_STORE_ENV not in os.environ


def test_log_history_logs_numeric_columns_per_epoch_and_a_run_can_be_reopened(store):
    import mlflow

    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.5, 0.4], "val_auc": [0.6, float("nan"), 0.9],
                            "stage": ["fit"] * 3, "stopped": [False, False, True]})
    with tracking.start_run("history-test") as run:
        assert tracking.log_history(history, prefix="knee_") == 3
    client = mlflow.MlflowClient(store)
    steps = {(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "knee_train_loss")}
    assert steps == {(1, 0.7), (2, 0.5), (3, 0.4)}
    aucs = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "knee_val_auc"), key=lambda m: m.step)]
    assert aucs[0] == 0.6 and math.isnan(aucs[1]) and aucs[2] == 0.9
    assert "knee_stage" not in client.get_run(run.info.run_id).data.metrics
    assert "knee_stopped" not in client.get_run(run.info.run_id).data.metrics
    with tracking.start_run("history-test", run_id=run.info.run_id) as again:  # reopen to add a test metric
        tracking.log_metrics({"test_auc": 0.95})
    assert again.info.run_id == run.info.run_id
    assert client.get_run(run.info.run_id).data.metrics["test_auc"] == 0.95
    with pytest.raises(ValueError, match="no 'step'"):
        with tracking.start_run("history-test"):
            tracking.log_history(history, step_col="step")


# --- registered versions keep their own copy of the files (issue 19, item 5) -------------------------------------


def _images(root: Path, table: pd.DataFrame, content: bytes = b"pixels") -> None:
    for rel in table.path:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content + rel.encode())


def test_a_registered_version_keeps_its_files_when_the_source_folder_is_rewritten(tmp_path, store):
    table, source = _table(), tmp_path / "generated"
    _images(source, table)
    manifest, digest = write_manifest(table, tmp_path / "manifests" / "pneumo.csv")
    first = tracking.register_dataset(manifest, "pneumo", root=source)
    assert first.created and first.folder == tracking.data_dir() / "registered" / "pneumo" / "1"
    assert sorted(p.name for p in first.folder.iterdir()) == ["files.sha256", "img", "manifest.csv",
                                                             "manifest.csv.sha256"]
    assert read_manifest(first.folder / "manifest.csv")["path"].tolist() == table.path.tolist()  # hash checked too
    # a later lesson regenerates the source folder with other pixels, and writes its own manifest.csv there
    _images(source, table, content=b"other pixels")
    (source / "manifest.csv").write_text("path\nsomething else\n")
    assert tracking.registered_folder("pneumo", 1) == first.folder  # every file still what was registered
    assert (first.folder / table.path[0]).read_bytes() == b"pixels" + table.path[0].encode()
    # the same manifest over changed files is new content: a new version, with its own folder
    second = tracking.register_dataset(manifest, "pneumo", root=source)
    assert (second.version, second.created, second.sha256) == (2, True, digest)
    assert (second.folder / table.path[0]).read_bytes().startswith(b"other pixels")
    again = tracking.register_dataset(manifest, "pneumo", root=source)
    assert (again.version, again.created, again.folder) == (2, False, second.folder)
    assert tracking.registered_folder("pneumo", 1) == first.folder


def test_registered_folder_names_a_changed_file_and_a_version_without_folder(tmp_path, store):
    table, source = _table(), tmp_path / "generated"
    _images(source, table)
    manifest, _ = write_manifest(table, tmp_path / "m.csv")
    version = tracking.register_dataset(manifest, "pneumo", root=source)
    (version.folder / table.path[3]).write_bytes(b"edited by hand")
    with pytest.raises(ChecksumMismatch, match=table.path[3].split("/")[-1]):
        tracking.registered_folder("pneumo")
    other, _ = write_manifest(table.iloc[:4], tmp_path / "n.csv")
    tracking.register_dataset(other, "manifest-only")
    with pytest.raises(DatasetError, match="without root="):
        tracking.registered_folder("manifest-only")


def test_registering_with_a_missing_file_or_over_a_stray_folder_says_what_to_do(tmp_path, store):
    table, source = _table(), tmp_path / "generated"
    _images(source, table.iloc[:-1])
    manifest, _ = write_manifest(table, tmp_path / "m.csv")
    with pytest.raises(DatasetError, match="does not exist"):
        tracking.register_dataset(manifest, "pneumo", root=source)
    assert not (tracking.data_dir() / "registered" / "pneumo").exists() or \
        not any((tracking.data_dir() / "registered" / "pneumo").iterdir())
    _images(source, table)
    stray = tracking.data_dir() / "registered" / "pneumo" / "1"
    stray.mkdir(parents=True)
    (stray / "manifest.csv").write_text("left from a deleted store\n")
    with pytest.raises(DatasetError, match="Move that folder away"):
        tracking.register_dataset(manifest, "pneumo", root=source)


def test_a_store_from_a_newer_mlflow_is_refused_with_what_to_do(tmp_path, store):
    import sqlite3

    db = tmp_path / "data" / "mlflow.db"
    with sqlite3.connect(db) as connection:  # as if another environment's newer MLflow had written it
        connection.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    connection.close()
    tracking._SCHEMA_CHECKED.clear()
    with pytest.raises(TrackingBackendUnavailable, match="newer MLflow .* MEDIMG_DATA_DIR"):
        tracking.local_store_uri()
