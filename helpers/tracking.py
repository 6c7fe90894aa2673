"""Experiment tracking with MLflow, and a small versioned data set registry on top of it.

The default store is local and needs no server: an SQLite database MLflow maintains, ``data_dir()/"mlflow.db"``,
with the runs' files under ``data_dir()/"mlartifacts"`` (MLflow 3's own default backend; it needs SQLAlchemy and
Alembic, which the collection installs beside ``mlflow-skinny``). Browse it with full MLflow:
``mlflow ui --backend-store-uri sqlite:///<data folder>/mlflow.db``.

**Earlier runs.** Until December 2026 the collection used MLflow's file store, ``data_dir()/"mlruns"``, which MLflow
3.13+ keeps in maintenance mode (it opens only with ``MLFLOW_ALLOW_FILE_STORE=true``). Nothing deletes or changes
that folder: the first time the new store is created beside an old one, a warning says so, and
:func:`migrate_file_store` copies its experiments and runs (parameters, metric histories, tags, artifacts, and so the
registered data sets) into the new store, once; the old folder stays as it was.

With an Azure ML workspace configured (see :mod:`helpers.azure`) and ``azureml-mlflow`` installed
(``pip install azureml-mlflow``, not part of the locked stack), runs can go to the workspace instead.

:func:`register_dataset` logs a manifest CSV (see :func:`helpers.datasets.splits.write_manifest`) with
its SHA-256 and counts as a run of the ``datasets`` experiment; versions count up per name and the same
content is never registered twice. :func:`load_registered_manifest` checks the hash before returning it.
Registered with ``root=`` (the folder the manifest's paths are relative to), a version also gets a folder of its own,
``data_dir()/"registered"/<name>/<version>/``: a copy of the manifest (``manifest.csv`` and its ``.sha256``) and of
every file it names, with ``files.sha256`` listing their hashes. Nothing writes there again, so a version keeps naming
exactly the files it was registered with, whatever later lessons regenerate in the source folder;
:func:`registered_folder` checks the hashes and hands the folder to a training job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd

from helpers.config import data_dir, display_path
from helpers.errors import (
    ChecksumMismatch,
    DatasetError,
    NoActiveRun,
    TrackingBackendUnavailable,
    WorkspaceNotConfigured,
)

if TYPE_CHECKING:
    import mlflow
    from matplotlib.figure import Figure

#: Experiment that holds one run per registered data set version.
DATASETS_EXPERIMENT = "datasets"
#: File (under :func:`helpers.config.data_dir`) of the local MLflow store: an SQLite database.
STORE_DB = "mlflow.db"
#: Folder (under :func:`helpers.config.data_dir`) of the local store's artifacts, one sub-folder per experiment.
ARTIFACTS_FOLDER = "mlartifacts"
#: Folder (under :func:`helpers.config.data_dir`) of the earlier local store, MLflow's file store (see above).
STORE_FOLDER = "mlruns"
#: Tag of a run copied by :func:`migrate_file_store`: the run id it had in the file store.
MIGRATED_TAG = "medimg.migrated_from"
#: Artifact folder of a data set run that holds the manifest CSV.
MANIFEST_ARTIFACT_DIR = "manifest"
#: Backends :func:`tracking_uri` knows.
BACKENDS = ("auto", "local", "azure")
#: Folder (under :func:`helpers.config.data_dir`) of the registered versions' own copies: ``<name>/<version>/``.
REGISTERED_FOLDER = "registered"
#: In a version's folder: the hash and relative path of every file the manifest names (``sha256sum`` format).
FILES_LIST = "files.sha256"
#: Environment variable MLflow 3.13+ needs before it opens a file store.
ALLOW_FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"
#: Columns of :func:`list_dataset_versions`.
VERSION_COLUMNS = [
    "name", "version", "sha256", "rows", "patients", "splits", "manifest", "description", "registered", "run_id",
]


@dataclasses.dataclass(frozen=True)
class DatasetVersion:
    """One registered version of a data set: its manifest hash, counts and the MLflow run that holds it."""

    name: str
    version: int
    sha256: str
    run_id: str
    rows: int
    patients: int | None
    splits: dict[str, int]
    manifest: str
    created: bool
    folder: Path | None = None  # the version's own copy (manifest.csv and its files), when registered with root=


# --- Where runs go -----------------------------------------------------------------------------------


def local_store_uri() -> str:
    """``sqlite:///`` URI of the local MLflow store, ``data_dir()/"mlflow.db"``, created on first use."""
    for module in ("sqlalchemy", "alembic"):
        try:
            __import__(module)
        except ImportError:
            raise TrackingBackendUnavailable(
                f"MLflow's local store is an SQLite database, which needs {module}: pip install sqlalchemy alembic "
                "(both are in the collection's extras; pip install -e '.[torch]' brings them)."
            ) from None
    _quiet_store_logs()
    db = (data_dir() / STORE_DB).resolve()
    if not db.exists():
        _create_store(db)
    elif db not in _SCHEMA_CHECKED:
        _ensure_schema(db)
    _SCHEMA_CHECKED.add(db)
    return f"sqlite:///{db.as_posix()}"


_SCHEMA_CHECKED: set[Path] = set()


def _ensure_schema(db: Path) -> None:
    """Bring a store written by an older MLflow (another environment sharing the data folder, say Colab's, or before
    an upgrade) to this MLflow's schema, after keeping a copy of the file; refuse one written by a newer MLflow with a
    message saying what to do. MLflow itself would stop with "out-of-date database schema"."""
    import mlflow
    import sqlalchemy

    try:
        from alembic.script import ScriptDirectory
        from mlflow.store.db import utils as db_utils

        engine = sqlalchemy.create_engine(f"sqlite:///{db.as_posix()}")
        current, head = db_utils._get_schema_version(engine), db_utils._get_latest_schema_revision()
        script = ScriptDirectory.from_config(db_utils._get_alembic_config(""))
    except (ImportError, AttributeError):  # MLflow moved its helpers: leave the check to MLflow's own message
        return
    try:
        if current == head:
            return
        try:
            known = script.get_revision(current) is not None
        except Exception:  # noqa: BLE001 (alembic raises several kinds for an unknown revision)
            known = False
        if not known:
            raise TrackingBackendUnavailable(
                f"{display_path(db)} was written by a newer MLflow (schema {current}) than this one "
                f"({mlflow.__version__}), which cannot read it. Use that MLflow version, or set MEDIMG_DATA_DIR to "
                "another folder for this environment.")
        backup = db.with_name(f"{db.name}.before-upgrade-{current}")
        shutil.copyfile(db, backup)
        db_utils._upgrade_db(engine)
        warnings.warn(f"{display_path(db)} came from an older MLflow; it was upgraded to the schema of MLflow "
                      f"{mlflow.__version__} (the old file is kept as {backup.name}).", stacklevel=3)
    finally:
        engine.dispose()


def _quiet_store_logs() -> None:
    """MLflow and Alembic log each step of creating or upgrading the database at INFO: noise in a notebook."""
    import logging

    for name in ("mlflow.store.db.utils", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _empty_store_template() -> Path:
    """An empty store of this MLflow version, made once per machine: building the tables runs some fifty Alembic
    migrations (seconds), and every fresh data folder (each test, each Colab session) would pay for them."""
    import mlflow

    template = Path(tempfile.gettempdir()) / f"medimg-mlflow-{mlflow.__version__}-empty.db"
    if not template.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "empty.db"
            mlflow.MlflowClient(f"sqlite:///{path.as_posix()}").search_experiments()  # MLflow builds the tables
            _dispose_engines()
            shutil.copyfile(path, Path(tmp) / "copy.db")
            os.replace(Path(tmp) / "copy.db", template)  # atomic: a concurrent maker changes nothing
    return template


def _dispose_engines() -> None:
    """Close MLflow's cached SQLAlchemy engines (so a database file can be copied or removed)."""
    try:
        from mlflow.store.db import utils as db_utils

        for engine in getattr(db_utils, "_engine_cache", {}).values():  # absent in some MLflow versions
            engine.dispose()
    except Exception:  # noqa: BLE001 (best effort: nothing depends on it)
        pass


def _create_store(db: Path) -> None:
    """Create the local store at ``db`` from the template; its Default experiment's files go under the data folder."""
    import sqlite3

    db.parent.mkdir(parents=True, exist_ok=True)
    staging = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    shutil.copyfile(_empty_store_template(), staging)
    with sqlite3.connect(staging) as connection:  # the template's Default experiment points where it was made
        connection.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                           ((db.parent / ARTIFACTS_FOLDER / "0").as_uri(),))
    connection.close()
    os.replace(staging, db)
    old = db.parent / STORE_FOLDER
    if old.is_dir() and any(old.glob("*/meta.yaml")):
        warnings.warn(
            f"Runs are now tracked in {display_path(db)} (an SQLite database MLflow maintains). Your earlier runs are "
            f"in MLflow's old file store, {display_path(old)}: nothing changed or deleted them. To bring them (and "
            "the data sets registered there) into the new store, run helpers.tracking.migrate_file_store() once.",
            stacklevel=3,
        )


def _artifact_location(client: Any, name: str) -> str | None:
    """Where a new experiment's files go in the local store: ``data_dir()/"mlartifacts"/<name>``; None elsewhere (a
    server or Azure ML decides)."""
    uri = str(getattr(client, "tracking_uri", "") or "")
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///"):])
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "experiment"
    return (db.parent / ARTIFACTS_FOLDER / slug).resolve().as_uri()


def _azureml_mlflow_installed() -> bool:
    """True if the ``azureml-mlflow`` plugin (the ``azureml://`` tracking scheme) can be imported."""
    import importlib.util

    try:
        return importlib.util.find_spec("azureml.mlflow") is not None
    except ModuleNotFoundError:
        return False


def azure_tracking_uri(config: Mapping[str, str] | None = None) -> str:
    """The Azure ML workspace's MLflow URI (contacts Azure; holds the subscription id: never print it unredacted)."""
    from helpers import azure

    config = config if config is not None else azure.workspace_config()
    if config is None:
        raise WorkspaceNotConfigured(azure.setup_steps())
    if not _azureml_mlflow_installed():
        raise TrackingBackendUnavailable(
            "Logging MLflow runs to Azure ML needs the azureml-mlflow plugin: pip install azureml-mlflow "
            "(it is not in the locked stack). Without it, use tracking_uri('local')."
        )
    client = azure.get_ml_client(config)
    return client.workspaces.get(client.workspace_name).mlflow_tracking_uri


def tracking_uri(backend: str = "auto") -> str:
    """The MLflow tracking URI for ``backend``: ``"local"`` file store, ``"azure"`` workspace, or ``"auto"``.

    ``auto`` is ``$MLFLOW_TRACKING_URI`` if set, else the workspace's URI when a workspace is configured and
    azureml-mlflow is installed (one call to Azure), else the local store (with a warning when a workspace is
    configured but azureml-mlflow is missing). An Azure URI holds the subscription id: pass it on, never print it.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; use one of {', '.join(BACKENDS)}.")
    if backend == "local":
        return local_store_uri()
    if backend == "azure":
        return azure_tracking_uri()
    if os.environ.get("MLFLOW_TRACKING_URI"):
        uri = os.environ["MLFLOW_TRACKING_URI"]
        if uri.startswith("file:") or "://" not in uri:  # a file store set by hand: MLflow 3.13+ refuses it otherwise
            os.environ.setdefault(ALLOW_FILE_STORE_ENV, "true")
        return uri
    from helpers.azure import workspace_config

    config = workspace_config()
    if config is None:
        return local_store_uri()
    if not _azureml_mlflow_installed():
        warnings.warn(
            "An Azure ML workspace is configured but azureml-mlflow is not installed, so runs are logged locally "
            f"in {display_path(data_dir() / STORE_DB)}. pip install azureml-mlflow to log to the workspace.",
            stacklevel=2,
        )
        return local_store_uri()
    return azure_tracking_uri(config)


# --- Runs --------------------------------------------------------------------------------------------


@contextmanager
def start_run(
    experiment: str,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    uri: str | None = None,
    run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run in ``experiment`` at ``uri`` (default :func:`tracking_uri`), ended on exit (FAILED on error).

    With ``run_id``, that finished run of ``experiment`` is reopened instead (to add test metrics or figures
    later). This sets MLflow's process-wide tracking URI, so ``mlflow.*`` calls afterwards see the same store.
    """
    import mlflow

    mlflow.set_tracking_uri(uri or tracking_uri())
    experiment_id = _experiment_id(mlflow.MlflowClient(), experiment)
    if run_id is not None:
        with mlflow.start_run(run_id=run_id, experiment_id=experiment_id) as run:
            yield run
        return
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        description=description,
    ) as run:
        yield run


def _active_run() -> mlflow.ActiveRun:
    """The active MLflow run, or NoActiveRun (MLflow would otherwise start a stray run in the default store)."""
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise NoActiveRun("No run is active: log inside `with helpers.tracking.start_run('experiment'):`.")
    return run


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts/dataclasses flattened to ``a.b`` keys; paths, lists and other leaves kept for str()."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def _jsonable(value: Any) -> Any:
    """``value`` with paths, tuples, sets and numpy scalars turned into JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def log_config(config: Any) -> dict[str, str]:
    """Log a dataclass or (nested) dict as run params (``a.b`` keys) plus ``config.json``; return the params logged."""
    import mlflow

    _active_run()
    if not (isinstance(config, Mapping) or (dataclasses.is_dataclass(config) and not isinstance(config, type))):
        raise TypeError(f"log_config takes a dataclass instance or a dict, got {type(config).__name__}.")
    params = {key: str(_jsonable(value)) for key, value in _flatten(config).items()}
    mlflow.log_params(params)
    mlflow.log_dict(_jsonable(config), "config.json")
    return params


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log numeric ``metrics`` (numpy scalars and 0-d arrays accepted) at ``step`` in the active run."""
    import mlflow

    _active_run()
    values = {}
    for key, value in metrics.items():
        number = float(value.item() if hasattr(value, "item") else value)
        if math.isinf(number):
            raise ValueError(f"Metric {key!r} is infinite; log a finite value (NaN is allowed for 'undefined').")
        values[str(key)] = number
    mlflow.log_metrics(values, step=step)


def log_history(history: pd.DataFrame, step_col: str = "epoch", prefix: str = "") -> int:
    """Log every numeric column of a per-epoch ``history`` table at its ``step_col`` step; returns rows logged.

    NaN values (e.g. an AUC undefined in one epoch) are logged as NaN; non-numeric columns are skipped.
    """
    if step_col not in history.columns:
        raise ValueError(f"history has no {step_col!r} column; its columns: {list(history.columns)}.")
    numeric = [c for c in history.columns if c != step_col and pd.api.types.is_numeric_dtype(history[c])
               and not pd.api.types.is_bool_dtype(history[c])]
    for _, row in history.iterrows():
        log_metrics({f"{prefix}{c}": row[c] for c in numeric}, step=int(row[step_col]))
    return len(history)


def log_figure(figure: Figure, name: str) -> str:
    """Save a matplotlib ``figure`` in the run as ``figures/<name>`` (``.png`` if no suffix); return that path."""
    import mlflow

    _active_run()
    artifact_file = name if "/" in name else f"figures/{name}"
    if not Path(artifact_file).suffix:
        artifact_file += ".png"
    mlflow.log_figure(figure, artifact_file)
    return artifact_file


def log_artifact(path: str | Path, artifact_path: str | None = None) -> str:
    """Copy a file or folder into the active run (under ``artifact_path``); return its artifact URI."""
    import mlflow

    run = _active_run()
    path = Path(path)
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path)
    elif path.is_file():
        mlflow.log_artifact(str(path), artifact_path)
    else:
        raise FileNotFoundError(f"{path} does not exist; nothing was logged.")
    sub = f"{artifact_path}/{path.name}" if artifact_path else path.name
    return f"{run.info.artifact_uri.rstrip('/')}/{sub}"


# --- Data set registry -------------------------------------------------------------------------------


def _experiment_id(client: Any, name: str) -> str:
    """Id of experiment ``name``, created quietly if it does not exist (restored if it was deleted)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, artifact_location=_artifact_location(client, name))
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def use_experiment(name: str) -> str:
    """Make ``name`` the active experiment of MLflow's fluent API (``mlflow.start_run``), created where
    :func:`start_run` would create it (in the local store, its files under the data folder, not the working
    directory); return its id. For command-line entry points that manage their own runs."""
    import mlflow

    experiment_id = _experiment_id(mlflow.MlflowClient(), name)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def migrate_file_store(source: str | Path | None = None, uri: str | None = None) -> pd.DataFrame:
    """Copy every run of MLflow's file store at ``source`` (default: the old ``data_dir()/"mlruns"``) into the store
    at ``uri`` (default: the local SQLite store); return the runs copied per experiment.

    Each run keeps its name, start and end times, status, parameters, tags and whole metric histories, and gets its
    artifacts (checkpoints, figures, registered manifests) copied; its old id is in the tag ``medimg.migrated_from``,
    so a second migration copies nothing twice. The file store itself is only read.
    """
    import mlflow
    from mlflow.entities import Metric, Param, RunTag, ViewType

    source = Path(source) if source is not None else data_dir() / STORE_FOLDER
    if not source.is_dir():
        raise DatasetError(f"No MLflow file store at {source}: nothing to migrate.")
    previous = os.environ.get(ALLOW_FILE_STORE_ENV)
    os.environ[ALLOW_FILE_STORE_ENV] = "true"  # MLflow 3.13+ opens a file store only with this
    try:
        old = mlflow.MlflowClient(source.resolve().as_uri())
        new = mlflow.MlflowClient(uri or local_store_uri())
        rows = []
        for experiment in old.search_experiments(view_type=ViewType.ALL):
            runs = old.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=50_000)
            if not runs:
                continue
            target = _experiment_id(new, experiment.name)
            done = {r.data.tags.get(MIGRATED_TAG) for r in
                    new.search_runs([target], run_view_type=ViewType.ALL, max_results=50_000)}
            copied = 0
            for run in sorted(runs, key=lambda r: r.info.start_time or 0):
                if run.info.run_id in done:
                    continue
                created = new.create_run(target, start_time=run.info.start_time, run_name=run.info.run_name)
                run_id = created.info.run_id
                metrics = [Metric(m.key, m.value, m.timestamp, m.step)
                           for key in run.data.metrics for m in old.get_metric_history(run.info.run_id, key)]
                params = [Param(k, v) for k, v in run.data.params.items()]
                tags = [RunTag(k, v) for k, v in {**run.data.tags, MIGRATED_TAG: run.info.run_id}.items()
                        if k != "mlflow.runName"]
                for i in range(0, len(metrics), 900):  # MLflow's limits per batch: 1000 metrics, 100 params/tags
                    new.log_batch(run_id, metrics=metrics[i:i + 900])
                for i in range(0, max(len(params), len(tags)), 90):
                    new.log_batch(run_id, params=params[i:i + 90], tags=tags[i:i + 90])
                files = Path(url2pathname(urlparse(run.info.artifact_uri).path))
                if files.is_dir() and any(files.iterdir()):
                    new.log_artifacts(run_id, str(files))
                new.set_terminated(run_id, status=run.info.status, end_time=run.info.end_time)
                copied += 1
            rows.append({"experiment": experiment.name, "runs": len(runs), "copied": copied})
        return pd.DataFrame(rows, columns=["experiment", "runs", "copied"])
    finally:
        if previous is None:
            os.environ.pop(ALLOW_FILE_STORE_ENV, None)
        else:
            os.environ[ALLOW_FILE_STORE_ENV] = previous


def _dataset_runs(client: Any, name: str) -> list:
    """Finished runs of the datasets experiment registered under ``name``, oldest version first."""
    experiment = client.get_experiment_by_name(DATASETS_EXPERIMENT)
    if experiment is None:
        return []
    escaped = name.replace("'", "\\'")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.name = '{escaped}' and attributes.status = 'FINISHED'",
        max_results=10_000,
    )
    return sorted(runs, key=lambda r: int(r.data.tags.get("version", 0)))


def _check_name(name: str) -> str:
    """``name`` if it is a usable data set name, else ValueError."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"Data set name must be non-empty text without surrounding spaces, got {name!r}.")
    return name


def _counts(table: pd.DataFrame, patient_col: str, split_col: str) -> tuple[int, int | None, dict[str, int]]:
    """(rows, distinct patients or None, rows per split) of a manifest table."""
    patients = int(table[patient_col].nunique()) if patient_col in table.columns else None
    splits = {}
    if split_col in table.columns:
        splits = {str(k): int(v) for k, v in table[split_col].astype(str).value_counts().sort_index().items()}
    return len(table), patients, splits


def _from_run(run: Any, created: bool) -> DatasetVersion:
    """The DatasetVersion a registry run describes."""
    tags, metrics = run.data.tags, run.data.metrics
    return DatasetVersion(
        name=tags["name"],
        version=int(tags["version"]),
        sha256=tags["sha256"],
        run_id=run.info.run_id,
        rows=int(metrics.get("rows", 0)),
        patients=int(metrics["patients"]) if "patients" in metrics else None,
        splits=json.loads(tags.get("splits", "{}")),
        manifest=tags.get("manifest", ""),
        created=created,
        folder=(data_dir() / tags["folder"]) if tags.get("folder") else None,
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files_list(table: pd.DataFrame, root: Path, path_col: str) -> str:
    """``sha256sum``-style lines for every file of ``table[path_col]`` (relative to ``root``), in manifest order."""
    if path_col not in table.columns:
        raise DatasetError(f"The manifest has no {path_col!r} column, so there are no files to register with root=.")
    lines = []
    for rel in dict.fromkeys(table[path_col].astype(str)):
        path = root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise DatasetError(f"{rel} is not a path inside {root}: write the manifest with write_manifest(root=...).")
        if not path.is_file():
            raise DatasetError(f"{path} is named in the manifest but does not exist; regenerate or restore it, or "
                               "write the manifest again from the files that are there.")
        lines.append(f"{_sha256_file(path)}  {rel}")
    return "\n".join(lines) + "\n"


def _snapshot(manifest_bytes: bytes, files_list: str, root: Path, target: Path) -> None:
    """Copy the manifest (as manifest.csv + .sha256) and every listed file from ``root`` into ``target``, through a
    temporary folder beside it, so that ``target`` appears complete or not at all."""
    if target.exists():
        if (target / FILES_LIST).is_file() and (target / FILES_LIST).read_text() == files_list and \
                (target / "manifest.csv").is_file() and (target / "manifest.csv").read_bytes() == manifest_bytes:
            return  # the same content, copied before (its registry run was lost): keep it
        raise DatasetError(
            f"{target} already holds other files, but no registered version names them (was the MLflow store "
            f"under {data_dir() / STORE_FOLDER} deleted?). Move that folder away, or register under another name.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for line in files_list.splitlines():
            rel = line.split("  ", 1)[1]
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, staging / rel)
        (staging / "manifest.csv").write_bytes(manifest_bytes)
        (staging / "manifest.csv.sha256").write_text(f"{hashlib.sha256(manifest_bytes).hexdigest()}  manifest.csv\n")
        (staging / FILES_LIST).write_text(files_list)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def register_dataset(
    manifest_path: str | Path,
    name: str,
    version: int | None = None,
    description: str = "",
    uri: str | None = None,
    patient_col: str = "patient_id",
    split_col: str = "split",
    root: str | Path | None = None,
    path_col: str = "path",
) -> DatasetVersion:
    """Register a manifest CSV as version ``version`` (default: the next) of data set ``name``; return that version.

    Logs the CSV, its SHA-256 (tags ``name``/``version``/``sha256``) and row/patient/split counts as a run of
    the ``datasets`` experiment, plus an MLflow dataset input. Registering content already registered under
    ``name`` returns that version (``created=False``). A ``.sha256`` file beside the manifest is checked first.

    With ``root`` (the folder ``path_col``'s relative paths start from), the version also gets its own copy of the
    manifest and of every file it names (``DatasetVersion.folder``; see the module's docstring), and "the same
    content" means the same manifest *and* the same files: a manifest whose images were regenerated differently
    is a new version. Every named file must exist.
    """
    import mlflow

    _check_name(name)
    manifest_path = Path(manifest_path)
    if not manifest_path.is_file():
        raise DatasetError(f"Manifest {manifest_path} does not exist; write it with write_manifest() first.")
    data = manifest_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    sidecar = manifest_path.with_name(manifest_path.name + ".sha256")
    if sidecar.is_file() and sidecar.read_text().split()[:1] != [digest]:
        raise ChecksumMismatch(
            f"{manifest_path} changed since write_manifest wrote it (SHA-256 {digest} differs from {sidecar.name}). "
            "Restore the file or rebuild it with write_manifest before registering it."
        )
    table = pd.read_csv(io.BytesIO(data), dtype={patient_col: str, path_col: str})
    rows, patients, splits = _counts(table, patient_col, split_col)
    files_list = _files_list(table, Path(root), path_col) if root is not None else None
    files_digest = hashlib.sha256(files_list.encode()).hexdigest() if files_list is not None else None

    client = mlflow.MlflowClient(uri or local_store_uri())
    existing = _dataset_runs(client, name)
    for run in existing:
        if run.data.tags.get("sha256") == digest and run.data.tags.get("files_sha256") == files_digest:
            return _from_run(run, created=False)
    taken = {int(run.data.tags["version"]) for run in existing}
    if version is None:
        version = max(taken, default=0) + 1
    elif int(version) in taken:
        raise DatasetError(
            f"{name} version {version} is already registered with other content; leave version=None to get "
            f"version {max(taken) + 1}, or register under another name."
        )
    version = int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}.")
    folder = None
    if files_list is not None:
        folder = Path(REGISTERED_FOLDER) / name / str(version)
        _snapshot(data, files_list, Path(root), data_dir() / folder)

    tags = {
        "name": name,
        "version": str(version),
        "sha256": digest,
        "manifest": manifest_path.name,
        "splits": json.dumps(splits, sort_keys=True),
        "mlflow.note.content": description,
        **({"files_sha256": files_digest, "folder": folder.as_posix()} if folder is not None else {}),
    }
    run = client.create_run(_experiment_id(client, DATASETS_EXPERIMENT), tags=tags, run_name=f"{name} v{version}")
    run_id = run.info.run_id
    try:
        metrics = {"rows": rows, **({"patients": patients} if patients is not None else {})}
        metrics.update({f"rows_{split}": count for split, count in splits.items()})
        if patients is not None and split_col in table.columns:
            per_split = table.groupby(table[split_col].astype(str))[patient_col].nunique()
            metrics.update({f"patients_{split}": int(n) for split, n in per_split.items()})
        for key, value in metrics.items():
            client.log_metric(run_id, key, float(value))
        client.log_param(run_id, "columns", ",".join(map(str, table.columns)))
        client.log_artifact(run_id, str(manifest_path), MANIFEST_ARTIFACT_DIR)
        summary = {"name": name, "version": version, "sha256": digest, "rows": rows, "patients": patients,
                   "splits": splits, "manifest": manifest_path.name, "description": description}
        client.log_dict(run_id, summary, "dataset.json")
        _log_dataset_input(client, run_id, table, name, version, digest)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return _from_run(client.get_run(run_id), created=True)


def _log_dataset_input(client: Any, run_id: str, table: pd.DataFrame, name: str, version: int, digest: str) -> None:
    """Record the manifest as an MLflow dataset input of the run (``mlflow.data``; works with mlflow-skinny)."""
    run = client.get_run(run_id)
    source = f"{run.info.artifact_uri.rstrip('/')}/{MANIFEST_ARTIFACT_DIR}/{run.data.tags['manifest']}"
    client.log_inputs(run_id, datasets=[_dataset_input(table, source, name, version, digest, "registry")])


def _dataset_input(table: pd.DataFrame, source: str, name: str, version: int, digest: str, context: str) -> Any:
    """An MLflow ``DatasetInput`` for a manifest table (schema and row count come from the table)."""
    import mlflow.data
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import DatasetInput, InputTag

    # MLflow's SQL stores cap dataset digests at 36 characters; the full hash is in the registry run's tags.
    tags = [InputTag("mlflow.data.context", context), InputTag("version", str(version))]
    with warnings.catch_warnings():  # schema inference hints about integer columns concern models, not manifests
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
        dataset = mlflow.data.from_pandas(
            table, source=LocalArtifactDatasetSource(source), name=name, digest=digest[:32]
        )
        # _to_mlflow_entity is what mlflow.log_input itself uses; MlflowClient has no public Dataset -> entity call.
        return DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags)


def list_dataset_versions(name: str, uri: str | None = None) -> pd.DataFrame:
    """Every registered version of data set ``name`` (columns :data:`VERSION_COLUMNS`), oldest first; empty if none."""
    import mlflow

    _check_name(name)
    client = mlflow.MlflowClient(uri or local_store_uri())
    records = []
    for run in _dataset_runs(client, name):
        version = _from_run(run, created=False)
        records.append({
            "name": version.name, "version": version.version, "sha256": version.sha256, "rows": version.rows,
            "patients": version.patients, "splits": version.splits, "manifest": version.manifest,
            "description": run.data.tags.get("mlflow.note.content", ""),
            "registered": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"), "run_id": version.run_id,
        })
    return pd.DataFrame.from_records(records, columns=VERSION_COLUMNS)


def _find_version(client: Any, name: str, version: int | str) -> Any:
    """The registry run of ``name`` at ``version`` (``"latest"``: the highest), or DatasetError listing what exists."""
    runs = _dataset_runs(client, name)
    if not runs:
        raise DatasetError(f"No data set {name!r} is registered; register its manifest with register_dataset().")
    if version == "latest":
        return runs[-1]
    for run in runs:
        if run.data.tags["version"] == str(version):
            return run
    available = ", ".join(run.data.tags["version"] for run in runs)
    raise DatasetError(f"{name!r} has no version {version!r}; registered versions: {available}.")


def _artifact_bytes(client: Any, run: Any, artifact_path: str) -> bytes:
    """Bytes of a run artifact: read in place from a local store, downloaded to a temporary folder otherwise."""
    artifact_uri = run.info.artifact_uri.rstrip("/")
    parsed = urlparse(artifact_uri)
    if parsed.scheme in ("", "file"):
        local = Path(url2pathname(parsed.path)) / artifact_path
        if not local.is_file():
            raise DatasetError(f"The registered manifest {local} is missing from the store; register it again.")
        return local.read_bytes()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run.info.run_id, artifact_path, tmp)).read_bytes()


def load_registered_manifest(
    name: str,
    version: int | str = "latest",
    uri: str | None = None,
    path_col: str = "path",
    patient_col: str = "patient_id",
) -> pd.DataFrame:
    """The manifest table of data set ``name`` at ``version`` (default the latest), after checking its SHA-256.

    Raises ChecksumMismatch if the stored CSV no longer matches the hash recorded when it was registered.
    """
    import mlflow

    _check_name(name)
    client = mlflow.MlflowClient(uri or local_store_uri())
    run = _find_version(client, name, version)
    tags = run.data.tags
    data = _artifact_bytes(client, run, f"{MANIFEST_ARTIFACT_DIR}/{tags['manifest']}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != tags["sha256"]:
        raise ChecksumMismatch(
            f"The stored manifest of {name} v{tags['version']} changed after registration: SHA-256 {actual}, "
            f"registered {tags['sha256']}. Do not edit registered files; register the edited manifest as a new "
            "version and restore this one (or delete its run)."
        )
    return pd.read_csv(io.BytesIO(data), dtype={path_col: str, patient_col: str})


def registered_folder(name: str, version: int | str = "latest", uri: str | None = None) -> Path:
    """The folder of data set ``name`` at ``version`` (manifest.csv and the files it names, as registered), after
    checking every file against the hashes recorded at registration: what a training job's ``--data`` gets.

    Raises DatasetError when the version was registered without ``root=`` (it has no folder) and ChecksumMismatch
    when a file changed, naming it.
    """
    import mlflow

    _check_name(name)
    client = mlflow.MlflowClient(uri or local_store_uri())
    registered = _from_run(_find_version(client, name, version), created=False)
    if registered.folder is None:
        raise DatasetError(f"{name} v{registered.version} was registered without root=, so only its manifest was "
                           "kept; register it again with root=<the data folder> to give it a folder of its own.")
    listed = registered.folder / FILES_LIST
    if not listed.is_file() or hashlib.sha256(listed.read_bytes()).hexdigest() != \
            client.get_run(registered.run_id).data.tags.get("files_sha256"):
        raise ChecksumMismatch(f"{listed} is missing or changed since {name} v{registered.version} was registered. "
                               "Delete the folder and register the data set again.")
    manifest = registered.folder / "manifest.csv"
    if not manifest.is_file() or _sha256_file(manifest) != registered.sha256:
        raise ChecksumMismatch(f"{manifest} is missing or changed since {name} v{registered.version} was registered.")
    for line in listed.read_text().splitlines():
        expected, rel = line.split("  ", 1)
        path = registered.folder / rel
        if not path.is_file() or _sha256_file(path) != expected:
            raise ChecksumMismatch(f"{path} is missing or changed since {name} v{registered.version} was registered "
                                   "(registered files are never rewritten: something edited it by hand). Delete the "
                                   "folder and register the data set again from its source.")
    return registered.folder


def log_dataset_input(
    name: str, version: int | str = "latest", context: str = "training", uri: str | None = None
) -> DatasetVersion:
    """Record registered data set ``name`` at ``version`` (hash checked) as a dataset input of the active run.

    Also tags the run ``dataset.<context>`` = ``name:version`` and ``dataset.<context>.sha256``.
    """
    import mlflow

    run = _active_run()
    client = mlflow.MlflowClient(uri or local_store_uri())
    registry_run = _find_version(client, name, version)
    registered = _from_run(registry_run, created=False)
    table = load_registered_manifest(name, registered.version, uri=uri)
    source = f"{registry_run.info.artifact_uri.rstrip('/')}/{MANIFEST_ARTIFACT_DIR}/{registered.manifest}"
    entity = _dataset_input(table, source, name, registered.version, registered.sha256, context)
    mlflow.MlflowClient().log_inputs(run.info.run_id, datasets=[entity])
    mlflow.set_tags({
        f"dataset.{context}": f"{name}:{registered.version}",
        f"dataset.{context}.sha256": registered.sha256,
    })
    return registered
