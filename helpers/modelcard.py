"""A model card (Mitchell et al. 2019) in Markdown, built from what a tracked MLflow run holds.

The card is written from the run, not from memory: the model and training settings come from the params
that :func:`helpers.tracking.log_config` logged (the ``TrainConfig`` of a training module), the data from
the run's ``data`` tag and dataset inputs, and the numbers from its metrics (``test_<key>`` for every key of
:func:`helpers.metrics.summarize_binary`, as the training lessons log them). Whatever the run does not hold
is written as "not logged", never guessed. The prose sections (intended use, limitations) default to text
for a teaching model; a real card needs people who know the clinical setting to write them.

No MLflow at import; it is imported when a card is built.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from helpers.errors import NoActiveRun

#: What the default card says the model is for.
DEFAULT_INTENDED_USE = (
    "Teaching: showing how a chest X-ray classifier is trained, evaluated, served over HTTP and monitored "
    "in a hands-on tutorial. Its outputs are examples to discuss, not findings."
)
#: What the default card says the model must not be used for.
DEFAULT_NOT_INTENDED_FOR = [
    "Clinical use of any kind: diagnosis, triage, screening, worklist prioritisation or second reading.",
    "Decisions about real patients, or images of real patients sent without an approved data agreement.",
    "Benchmarking against published models: the data and the evaluation are too small and too easy.",
]
#: Limitations every card of this collection lists (a data-specific one is added from the run's ``data`` tag).
DEFAULT_LIMITATIONS = [
    "Small model, short training and a small test set: the interval around each metric is wide, and the "
    "operating point (threshold) was chosen on a small split.",
    "Not validated on any external site, scanner, population or acquisition protocol; performance on "
    "other data is unknown and likely lower.",
    "Sees one frontal image at a time, without prior studies, clinical history or lateral views.",
    "Scores are not calibrated probabilities unless the expected calibration error (ECE, under Metrics) is small.",
]
#: Caveats and ethical considerations every card lists.
DEFAULT_CAVEATS = [
    "No subgroup analysis (sex, age, ethnicity, scanner, view): the model may work worse for some groups.",
    "Inputs unlike the training images (another scanner, inverted or windowed exports, children vs adults) "
    "give confident but meaningless scores: check served inputs for drift (helpers.monitoring).",
    "Labels of public chest X-ray sets are often text-mined from reports and are noisy; a metric is only as "
    "good as its reference standard.",
    "A model card documents one run; retraining, new data or a new threshold need a new card.",
]
#: What the run's ``data`` tag means, for the Training data section (and a data-specific limitation).
DATA_SOURCES = {
    "generated": (
        "Generated chest radiographs (helpers.datasets.generated): synthetic images, half of the patients with a "
        "pneumonia-like consolidation (the multi-label task adds effusion, cardiomegaly and nodules); no patient data.",
        "Trained and tested on generated images only: the metrics say nothing about real radiographs.",
    ),
    "kermany": (
        "Kermany et al. 2018 chest X-rays (paediatric patients aged 1-5, one centre in Guangzhou), normal vs "
        "pneumonia, split by patient.",
        "Paediatric images from one hospital: not representative of adults or of other sites.",
    ),
    "nih": (
        "NIH ChestX-ray14 (subset): frontal adult chest X-rays with findings text-mined from the reports.",
        "NIH labels were extracted from reports by NLP and are noisy; a subset was used.",
    ),
    "pneumoniamnist": (
        "PneumoniaMNIST (MedMNIST): the Kermany paediatric chest X-rays downsampled to 28 x 28 pixels.",
        "28 x 28 pixel images: far below clinical resolution; patient ids are unknown, so splits may leak.",
    ),
}
#: Metrics the card's table lists, in order, with their names (looked up as ``<prefix><key>``).
CARD_METRICS = {
    "auc": "ROC AUC",
    "average_precision": "Average precision",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "Positive predictive value",
    "npv": "Negative predictive value",
    "accuracy": "Accuracy",
    "ece": "Expected calibration error",
    "threshold": "Threshold (score >= counts positive)",
}
#: Keys of summarize_binary that describe the test set or the confusion counts rather than performance.
_COUNT_KEYS = ("n", "positives", "prevalence", "tp", "fp", "tn", "fn")
#: Artifact folder that :func:`write_model_card` logs the card under.
CARD_ARTIFACT_DIR = "model_card"
NOT_LOGGED = "not logged"


# --- Reading the run ---------------------------------------------------------------------------------


def _client_and_run(run_id: str, uri: str | None) -> tuple[Any, Any]:
    """(MlflowClient, run) for ``run_id`` in the store at ``uri`` (default :func:`helpers.tracking.tracking_uri`)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from helpers import tracking

    client = mlflow.MlflowClient(uri or tracking.tracking_uri())
    try:
        return client, client.get_run(run_id)
    except MlflowException as exc:
        raise ValueError(
            f"No MLflow run {run_id!r} in that tracking store ({type(exc).__name__}). Check the id "
            "(run.info.run_id of the training run) and pass uri= for the store it was logged to."
        ) from exc


def _param(params: Mapping[str, str], key: str, unit: str = "") -> str:
    """Param ``key`` as text with ``unit``, or "not logged"."""
    if key not in params or params[key] in ("", "None"):
        return NOT_LOGGED
    return f"{params[key]}{unit}"


def _label_names(params: Mapping[str, str]) -> list[str]:
    """The ``label_names`` param (logged as ``"['pneumonia']"``) as a list; empty if not logged."""
    raw = params.get("label_names")
    if not raw:
        return []
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return [raw]
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _fmt(value: float | None) -> str:
    """A metric value: 3 decimals, whole counts as integers, NaN as "undefined", None as "not logged"."""
    if value is None:
        return NOT_LOGGED
    if math.isnan(value):
        return "undefined (NaN)"
    if value.is_integer() and abs(value) >= 2:
        return str(int(value))
    return f"{value:.3f}"


def _with_interval(metrics: Mapping[str, float], key: str) -> str:
    """``"0.912 (0.871-0.948)"`` when ``key``, ``key_low`` and ``key_high`` are logged; the value alone otherwise."""
    value = metrics.get(key)
    text = _fmt(value)
    low, high = metrics.get(f"{key}_low"), metrics.get(f"{key}_high")
    if value is not None and not math.isnan(value) and low is not None and high is not None \
            and not (math.isnan(low) or math.isnan(high)):
        text += f" ({low:.3f}-{high:.3f})"
    return text


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _bullets(items: str | Sequence[str]) -> str:
    """A paragraph as is, or a list of sentences as Markdown bullets."""
    if isinstance(items, str):
        return items.strip()
    return "\n".join(f"- {item}" for item in items)


def _epochs_run(client: Any, run_id: str) -> int | None:
    """How many epochs logged a validation AUC (``val_auc`` steps), or None if none did."""
    history = client.get_metric_history(run_id, "val_auc")
    return len({m.step for m in history}) or None


def _epochs_text(planned: str | None, run: int | None) -> str:
    """``"4 planned, 3 run"``, with "not logged" for a missing half, or just "not logged"."""
    if not planned and not run:
        return NOT_LOGGED
    return (f"{planned} planned" if planned else f"planned {NOT_LOGGED}") + ", " + (
        f"{run} run" if run else f"run {NOT_LOGGED}")


def _dataset_inputs(run: Any) -> list[str]:
    """One line per MLflow dataset input of ``run``: name, version, context and digest."""
    lines = []
    inputs = getattr(run, "inputs", None)
    for item in getattr(inputs, "dataset_inputs", None) or []:
        tags = {t.key: t.value for t in item.tags}
        details = [f"version {tags['version']}" if "version" in tags else "",
                   f"context {tags['mlflow.data.context']}" if "mlflow.data.context" in tags else "",
                   f"digest {item.dataset.digest}" if item.dataset.digest else ""]
        lines.append(f"`{item.dataset.name}` ({', '.join(d for d in details if d)})")
    return lines


# --- Sections ----------------------------------------------------------------------------------------


def _data_section(run: Any, data_description: str | None, prefix: str) -> list[str]:
    """The Training data section: description, source tag, labels, image size, dataset inputs, test set size."""
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    source = tags.get("data")
    known = DATA_SOURCES.get(str(source).lower()) if source else None
    description = data_description or (known[0] if known else
                                       f"Description {NOT_LOGGED}: pass data_description= to model_card.")
    labels = _label_names(params)
    size = params.get("image_size")
    lines = [description, "",
             f"- Source (run tag `data`): {f'`{source}`' if source else NOT_LOGGED}",
             f"- Labels: {', '.join(labels) if labels else NOT_LOGGED}",
             f"- Input: {f'{size} x {size} pixels, greyscale' if size else f'image size {NOT_LOGGED}'}"]
    registered = {k: v for k, v in tags.items() if k.startswith("dataset.") and not k.endswith(".sha256")}
    for key, value in sorted(registered.items()):
        lines.append(f"- Registered data set ({key.split('.', 1)[1]}): `{value}`")
    for line in _dataset_inputs(run):
        lines.append(f"- Dataset input: {line}")
    n, pos = metrics.get(f"{prefix}n"), metrics.get(f"{prefix}positives")
    if n is not None:
        test = f"{int(n)} images"
        if pos is not None:
            test += f", {int(pos)} positive ({pos / n:.0%})" if n else ""
        lines.append(f"- Test set: {test}")
    else:
        lines.append(f"- Test set: size {NOT_LOGGED}")
    return lines


def _procedure_section(client: Any, run: Any) -> list[str]:
    """The Training procedure section from the TrainConfig params and the training metrics."""
    params, metrics = run.data.params, run.data.metrics
    run_epochs = _epochs_run(client, run.info.run_id)
    best = metrics.get("best_epoch")
    pretrained = params.get("pretrained")
    return [
        f"- Architecture: {_param(params, 'model')}"
        + (f" ({'ImageNet-pretrained' if pretrained == 'True' else 'trained from scratch'})" if pretrained else ""),
        "- Epochs: " + _epochs_text(params.get("epochs"), run_epochs)
        + (f", early-stopping patience {params['patience']}" if "patience" in params else ""),
        f"- Best epoch (highest validation AUC): {_fmt(best) if best is None else int(best)}, "
        f"validation AUC {_fmt(metrics.get('best_val_auc'))}",
        f"- Learning rate: {_param(params, 'lr')} ({_param(params, 'schedule')} schedule), "
        f"weight decay {_param(params, 'weight_decay')}",
        f"- Batch size: {_param(params, 'batch_size')}; augmentation: {_param(params, 'augment')}; "
        f"positive-class weight: {_param(params, 'pos_weight')}",
        f"- Seed: {_param(params, 'seed')}",
    ]


def _metrics_section(metrics: Mapping[str, float], prefix: str, names: Mapping[str, str]) -> list[str]:
    """The Metrics table: every metric of ``names`` (and any other ``prefix`` metric), intervals where logged."""
    shown = dict(names)
    for key in sorted(metrics):
        if key.startswith(prefix) and key != prefix:
            short = key[len(prefix):]
            if short not in shown and short not in _COUNT_KEYS and not short.endswith(("_low", "_high")):
                shown[short] = short.replace("_", " ")
    lines = ["| Metric | MLflow key | Value (95% interval) |", "|---|---|---|"]
    for short, label in shown.items():
        lines.append(f"| {_cell(label)} | `{prefix}{short}` | {_cell(_with_interval(metrics, prefix + short))} |")
    counts = [f"{k.upper()} {int(metrics[prefix + k])}" for k in ("tp", "fp", "tn", "fn")
              if prefix + k in metrics and not math.isnan(metrics[prefix + k])]
    lines.append("")
    if counts:
        lines.append(f"At the threshold: {', '.join(counts)}.")
    lines.append(f"Intervals are the logged `<metric>_low` and `<metric>_high` (95%, bootstrap in "
                 f"helpers.metrics.summarize_binary); a metric without them has no interval. \"{NOT_LOGGED}\" "
                 "means the run holds no such metric.")
    return lines


# --- The card ----------------------------------------------------------------------------------------


def model_card(
    run_id: str,
    uri: str | None = None,
    intended_use: str = DEFAULT_INTENDED_USE,
    limitations: str | Sequence[str] | None = None,
    data_description: str | None = None,
    not_intended_for: str | Sequence[str] = tuple(DEFAULT_NOT_INTENDED_FOR),
    caveats: str | Sequence[str] = tuple(DEFAULT_CAVEATS),
    metric_prefix: str = "test_",
    metrics: Mapping[str, str] | None = None,
) -> str:
    """The Markdown model card of MLflow run ``run_id`` at ``uri`` (default :func:`helpers.tracking.tracking_uri`).

    Sections: a header (model, labels, run, experiment, date), Intended use, Not intended for, Training
    data, Training procedure, Metrics (``<metric_prefix><key>`` for each key of ``metrics``, default
    :data:`CARD_METRICS`, with ``(low-high)`` where ``_low``/``_high`` are logged), Limitations (default
    :data:`DEFAULT_LIMITATIONS` plus one for the run's ``data`` tag) and Ethical considerations and
    caveats. Values the run lacks read "not logged". The same run always gives the same text.
    """
    client, run = _client_and_run(run_id, uri)
    params, tags = run.data.params, run.data.tags
    experiment = client.get_experiment(run.info.experiment_id)
    model = params.get("model") or NOT_LOGGED
    labels = _label_names(params)
    started = datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc)
    source = str(tags.get("data", "")).lower()
    if limitations is None:
        limitations = list(DEFAULT_LIMITATIONS)
        if source in DATA_SOURCES:
            limitations.insert(0, DATA_SOURCES[source][1])
    title = f"Model card: {model}" + (f" ({', '.join(labels)})" if labels else "")
    header = [
        f"# {title}", "",
        f"- Model: `{model}`, {len(labels) or NOT_LOGGED} output(s): {', '.join(labels) or 'labels ' + NOT_LOGGED}",
        f"- MLflow run: `{run.info.run_id}` ({run.info.run_name or 'unnamed'}), experiment "
        f"`{experiment.name if experiment else run.info.experiment_id}`, status {run.info.status}",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC (run start)",
    ]
    note = tags.get("mlflow.note.content")
    if note:
        header.append(f"- Description: {note.strip()}")
    sections = [
        header,
        ["## Intended use", "", intended_use.strip()],
        ["## Not intended for", "", _bullets(not_intended_for)],
        ["## Training data", "", *_data_section(run, data_description, metric_prefix)],
        ["## Training procedure", "", *_procedure_section(client, run)],
        ["## Metrics", "", f"Held-out test set (`{metric_prefix}*` metrics of the run).", "",
         *_metrics_section(run.data.metrics, metric_prefix, metrics if metrics is not None else CARD_METRICS)],
        ["## Limitations", "", _bullets(limitations)],
        ["## Ethical considerations and caveats", "", _bullets(caveats)],
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def write_model_card(run_id: str, path: str | Path, log_to_run: bool | None = None, **kwargs: Any) -> Path:
    """Write :func:`model_card` of ``run_id`` to ``path`` (UTF-8 Markdown); return the path.

    ``log_to_run`` None logs the file as the artifact ``model_card/<name>`` when the active MLflow run is
    ``run_id`` (reopen it with ``tracking.start_run(experiment, run_id=run_id)``), True requires that, False
    never logs. ``kwargs`` go to :func:`model_card`.
    """
    path = Path(path)
    text = model_card(run_id, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if log_to_run is False:
        return path
    import mlflow

    from helpers import tracking

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        tracking.log_artifact(path, CARD_ARTIFACT_DIR)
    elif log_to_run and active is None:
        raise NoActiveRun(
            f"log_to_run=True but no run is active: log the card inside "
            f"`with tracking.start_run(experiment, run_id={run_id!r}):` (the card is written to {path})."
        )
    elif log_to_run:
        raise ValueError(
            f"The active run is {active.info.run_id}, not {run_id}: the card belongs with its own run. Log it "
            f"inside `with tracking.start_run(experiment, run_id={run_id!r}):`."
        )
    return path


__all__ = [
    "CARD_ARTIFACT_DIR", "CARD_METRICS", "DATA_SOURCES", "DEFAULT_CAVEATS", "DEFAULT_INTENDED_USE",
    "DEFAULT_LIMITATIONS", "DEFAULT_NOT_INTENDED_FOR", "NOT_LOGGED", "model_card", "write_model_card",
]
