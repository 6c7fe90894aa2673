"""Live mode for instructors: a training call reuses a finished run of exactly the same configuration and data.

With ``MEDIMG_REUSE=1`` every function decorated with :func:`reusable` (the collection's trainers, and training
functions a notebook defines) first computes a fingerprint of the call: every argument's value (arrays and tables by
content, models by architecture and current weights, folders and listed files by the bytes they hold, functions by
their source), the source of the ``helpers`` package, the library versions and the device. It then looks in the
local tracking store (experiment ``medimg-live``) for a finished run with that fingerprint:

- found, and its files still hash to what was stored: the call returns the stored result, puts back the weights of
  the models it trains in place, the files it wrote (``outputs``), what it logged to the active MLflow run (params,
  metrics, artifacts) and the random number generators' state after training, and prints that it did so;
- not found: it trains as usual, stores the run, and says so. When a stored run of the same function exists whose
  configuration or data differ, the message names the arguments that differ: that run is refused, never reused.

``make warm`` runs every notebook in the full setting with ``MEDIMG_REUSE=1``, so the store holds every training
call; afterwards each notebook runs in live mode within a minute (``benchmarks/RESULTS.md``, "Live mode"). Without
``MEDIMG_REUSE`` nothing is looked up or stored: a decorated function is the plain function.

Stored results are Python pickles (``torch.save``) written by this machine's own training runs into the local store;
each file's SHA-256 is checked before anything is unpickled. Do not copy a store from someone you do not trust.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as _dt
import functools
import hashlib
import inspect
import json
import os
import pickle
import random
import re
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from helpers.config import data_dir
from helpers.errors import MedImgError

REUSE_ENV = "MEDIMG_REUSE"
EXPERIMENT = "medimg-live"
_NAME_TAG = "medimg.live.name"
_FINGERPRINT_TAG = "medimg.live.fingerprint"
_FILES_TAG = "medimg.live.files_sha256"
_SECONDS_TAG = "medimg.live.seconds"
_MAX_LISTED_FILES = 20_000
_PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"

F = TypeVar("F", bound=Callable[..., Any])


class CannotFingerprint(MedImgError, TypeError):
    """An argument of a reusable call has no content the fingerprint can read (the call then simply trains)."""


class StoredRunUnusable(MedImgError, ValueError):
    """A stored run matched the fingerprint but its files are missing or changed: it is refused, and the call trains."""


def enabled() -> bool:
    """True when live mode is on: ``$MEDIMG_REUSE`` is 1, true or yes."""
    return os.environ.get(REUSE_ENV, "").strip().lower() in ("1", "true", "yes")


@dataclasses.dataclass(frozen=True)
class Decision:
    """What one reusable call did: ``"reused"``, ``"trained"`` (and stored) or ``"refused"`` (a stored run of the same
    function differs in ``differs``; the call trained and stored a new run)."""

    name: str
    action: str
    run_id: str | None
    differs: tuple[str, ...] = ()
    seconds: float = 0.0
    message: str = ""


#: Every decision taken in this process, in order (a notebook's live-mode summary, and the tests, read it).
decisions: list[Decision] = []

_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("medimg_live_active", default=False)


# --- Fingerprints --------------------------------------------------------------------------------------------


def _h(*chunks: bytes | str) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        data = chunk.encode() if isinstance(chunk, str) else chunk
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


_FILE_CACHE: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        _FILE_CACHE[key] = h.hexdigest()
    return _FILE_CACHE[key]


def _shown_path(path: Path) -> str:
    """A path as the fingerprint sees it: relative to the data folder when inside it (a run stays valid if the folder
    is reached another way), else absolute."""
    resolved = path.expanduser().resolve()
    try:
        return "<data>/" + resolved.relative_to(data_dir().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def _path_digest(path: Path) -> str:
    """A file by its bytes; a folder by the relative names and bytes of every file under it; a missing path by name."""
    path = Path(path)
    if path.is_file():
        return _h("file", _file_digest(path))
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        if len(files) > _MAX_LISTED_FILES:
            raise CannotFingerprint(f"{path} holds {len(files)} files, more than live mode hashes ({_MAX_LISTED_FILES}).")
        return _h("dir", *(f"{p.relative_to(path).as_posix()}={_file_digest(p)}" for p in files))
    return _h("missing", _shown_path(path))


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is None:
            raise CannotFingerprint(f"the source of {obj!r} cannot be read") from None
        return repr((code.co_code, code.co_consts, code.co_names))


def _class_source(cls: type) -> str:
    """A class's source; for a class a notebook cell defines (where ``inspect`` finds no file on Python < 3.13), the
    sources of its methods, which IPython keeps."""
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        parts = [cls.__qualname__, repr([base.__qualname__ for base in cls.__mro__])]
        for name, member in sorted(vars(cls).items()):
            member = getattr(member, "__func__", member)  # staticmethod, classmethod
            if inspect.isfunction(member):
                parts.append(f"{name}={_source(member)}")
        return "\n".join(parts)


def _function_digest(fn: Any, seen: set[int]) -> str:
    """A function by its module, name and source, its defaults and closure values, and (for a function a notebook
    defines) the notebook functions and classes it calls: editing any of them makes another fingerprint."""
    fn = inspect.unwrap(fn)
    if isinstance(fn, functools.partial):
        return _h("partial", _digest(fn.func, seen), _digest(fn.args, seen), _digest(fn.keywords, seen))
    if isinstance(fn, types.MethodType):
        return _h("method", _digest(fn.__self__, seen), _function_digest(fn.__func__, seen))
    module = getattr(fn, "__module__", "") or ""
    name = getattr(fn, "__qualname__", repr(fn))
    if module.startswith("helpers.") or module == "helpers":
        return _h("helpers-function", module, name)  # the package's source is part of every fingerprint
    if isinstance(fn, (types.BuiltinFunctionType, types.BuiltinMethodType)) or not hasattr(fn, "__code__"):
        if module and module.split(".")[0] in sys.modules and module != "__main__":
            return _h("library-function", module, name)
        raise CannotFingerprint(f"{name} is neither a Python function nor a library function")
    if module != "__main__" and "<locals>" not in name and "<lambda>" not in name:
        return _h("library-function", module, name)
    parts = ["function", module, name, _source(fn), _digest(fn.__defaults__, seen), _digest(fn.__kwdefaults__, seen)]
    for cell in fn.__closure__ or ():
        try:
            parts.append(_digest(cell.cell_contents, seen))
        except ValueError:  # an empty cell
            parts.append("empty")
    globals_ = getattr(fn, "__globals__", {})
    for global_name in sorted(set(fn.__code__.co_names)):
        value = globals_.get(global_name)
        if getattr(value, "__module__", None) == "__main__" and (inspect.isfunction(value) or inspect.isclass(value)):
            if id(value) not in seen:
                seen.add(id(value))
                parts.append(global_name + "=" + (_function_digest(value, seen) if inspect.isfunction(value)
                                                  else _h("class", _class_source(value))))
    return _h(*parts)


def _frame_digest(frame: Any, seen: set[int]) -> str:
    import pandas as pd

    parts = ["frame", repr(list(map(str, frame.columns))), repr([str(t) for t in frame.dtypes]),
             pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes().hex()]
    for column in frame.columns:  # columns of file paths: the files' bytes too
        values = frame[column]
        textual = values.dtype == object or pd.api.types.is_string_dtype(values)
        if textual and len(values) and isinstance(values.iloc[0], (str, Path)):
            first = Path(str(values.iloc[0]))
            if len(str(values.iloc[0])) < 4096 and first.is_file():
                if len(values) > _MAX_LISTED_FILES:
                    raise CannotFingerprint(f"column {column!r} lists {len(values)} files")
                parts.extend(_path_digest(Path(str(v))) for v in values)
    return _h(*parts)


def _digest(value: Any, seen: set[int] | None = None) -> str:
    """SHA-256 of what ``value`` holds (see the module docstring); raises :class:`CannotFingerprint` when unknown."""
    seen = set() if seen is None else seen
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return _h(type(value).__name__, repr(value))
    if isinstance(value, np.generic):
        return _h("np", str(value.dtype), repr(value.item()))
    if isinstance(value, Path):
        return _h("path", _shown_path(value), _path_digest(value))
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        payload = array.tobytes() if array.dtype != object else repr(array.tolist()).encode()
        return _h("ndarray", str(array.dtype), repr(array.shape), hashlib.sha256(payload).hexdigest())
    fingerprint = getattr(value, "medimg_fingerprint", None)
    if isinstance(fingerprint, str) and not isinstance(value, type):
        try:
            state = _state_digest(value)
        except CannotFingerprint:  # a data pipeline, say: what it declares is all there is
            state = ""
        return _h("declared", type(value).__qualname__, fingerprint, state)
    if id(value) in seen:
        return _h("seen", type(value).__qualname__)
    seen = seen | {id(value)}
    module = type(value).__module__
    if module.startswith("torch"):
        import torch

        if isinstance(value, torch.Tensor):
            return _h("tensor", _digest(value.detach().cpu().contiguous().numpy(), seen))
        if isinstance(value, torch.nn.Module):
            return _h("module", _state_digest(value))
        if isinstance(value, torch.Generator):
            return _h("generator", _digest(value.get_state(), seen))
        if isinstance(value, torch.device):
            return _h("device", str(value))
    if _is_keras_model(value):
        return _h("keras", _state_digest(value))
    if type(value).__module__.startswith("pandas"):
        import pandas as pd

        if isinstance(value, pd.Series):
            return _h("series", str(value.name), _frame_digest(value.to_frame(), seen))
        if isinstance(value, pd.DataFrame):
            return _frame_digest(value, seen)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _h("dataclass", type(value).__qualname__,
                  *(f"{f.name}={_digest(getattr(value, f.name), seen)}" for f in dataclasses.fields(value)))
    if isinstance(value, Mapping):
        items = sorted((_digest(k, seen), _digest(v, seen)) for k, v in value.items())
        return _h("mapping", *(f"{k}:{v}" for k, v in items))
    if isinstance(value, (list, tuple)):
        return _h(type(value).__name__, *(_digest(v, seen) for v in value))
    if isinstance(value, (set, frozenset)):
        return _h("set", *sorted(_digest(v, seen) for v in value))
    if isinstance(value, range):
        return _h("range", repr(value))
    if inspect.isclass(value):
        return _h("class", value.__module__, value.__qualname__,
                  _class_source(value) if value.__module__ == "__main__" else "")
    if callable(value) and (inspect.isroutine(value) or isinstance(value, functools.partial)):
        return _function_digest(value, seen)
    if type(value).__repr__ is not object.__repr__ and " at 0x" not in repr(value):
        return _h("repr", type(value).__module__, type(value).__qualname__, repr(value))
    raise CannotFingerprint(f"live mode cannot read the content of a {type(value).__module__}.{type(value).__qualname__}")


def digest(*values: Any) -> str:
    """The fingerprint of ``values`` (hex SHA-256): equal exactly when their content is equal (see the module doc)."""
    return _digest(values)


def _is_keras_model(value: Any) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(value, keras.Model)


def _unnumbered(config: Any) -> str:
    """A Keras config as JSON, with the counters Keras appends to default names ("dense_3") removed: the same
    architecture built a second time in one process gets other names, and is the same call."""
    text = json.dumps(config, sort_keys=True, default=str)
    for name in set(re.findall(r'"name": "([^"]+_\d+)"', text)):
        text = text.replace(json.dumps(name), json.dumps(re.sub(r"_\d+$", "", name)))
    return text


def _state_digest(value: Any) -> str:
    """A model by its class, architecture and current weights: a fresh model fingerprints its initialisation (and so
    its seed); a model trained in place fingerprints differently afterwards."""
    model = getattr(value, "model", value)  # a fastai Learner holds its network as .model
    if _is_keras_model(model):
        parts = ["keras", type(model).__qualname__, _unnumbered(model.get_config())]
        parts += [hashlib.sha256(np.ascontiguousarray(w).tobytes()).hexdigest() for w in model.get_weights()]
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "get_config"):
            parts.append(_unnumbered(optimizer.get_config()))
        loss = getattr(model, "loss", None)
        parts.append(json.dumps(loss.get_config(), sort_keys=True, default=str) if hasattr(loss, "get_config")
                     else repr(loss))
        return _h(*parts)
    import torch

    if isinstance(model, torch.nn.Module):
        parts = ["torch", type(model).__module__, type(model).__qualname__, repr(model)]
        if type(model).__module__ == "__main__":
            parts.append(_class_source(type(model)))
        for key, tensor in model.state_dict().items():
            array = tensor.detach().cpu().contiguous()
            parts.append(f"{key}:{array.dtype}:{tuple(array.shape)}:"
                         f"{hashlib.sha256(array.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()}")
        if model is not value:  # a Learner: its loss and optimiser too
            for attribute in ("loss_func", "opt_func"):
                part = getattr(value, attribute, None)
                parts.append(f"{getattr(part, '__module__', '')}.{getattr(part, '__qualname__', '')}"
                             if inspect.isroutine(part) else _h(type(part).__qualname__, repr(part).split(" at 0x")[0]))
        return _h(*parts)
    raise CannotFingerprint(f"{type(value).__qualname__} is not a torch or Keras model")


# --- What a call changes besides its result ------------------------------------------------------------------


def _get_state(obj: Any) -> Any:
    model = getattr(obj, "model", obj)
    if _is_keras_model(model):
        return ("keras", [np.array(w) for w in model.get_weights()])
    import torch

    if isinstance(model, torch.nn.Module):
        return ("torch", {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    raise CannotFingerprint(f"live mode cannot store the state of a {type(obj).__qualname__}")


def _set_state(obj: Any, state: Any) -> None:
    model = getattr(obj, "model", obj)
    kind, values = state
    if kind == "keras":
        model.set_weights(values)
    else:
        model.load_state_dict(values)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"random": random.getstate(), "numpy": np.random.get_state()}
    if "torch" in sys.modules:
        state["torch"] = sys.modules["torch"].get_rng_state()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    if "torch" in state and "torch" in sys.modules:
        sys.modules["torch"].set_rng_state(state["torch"])


# --- The store ----------------------------------------------------------------------------------------------


def _client() -> Any:
    import mlflow

    from helpers import tracking

    return mlflow.MlflowClient(tracking_uri=tracking.tracking_uri("local"))


def _experiment(client: Any) -> str:
    from helpers import tracking

    return tracking._experiment_id(client, EXPERIMENT)


def stored_runs(name: str | None = None) -> Any:
    """The stored runs of live mode (all, or those of function ``name``), newest first: run id, function, date,
    training seconds, fingerprint."""
    import pandas as pd

    client = _client()
    query = f"tags.`{_NAME_TAG}` = '{name}'" if name else ""
    runs = client.search_runs([_experiment(client)], filter_string=query, order_by=["attributes.start_time DESC"],
                              max_results=5000)
    return pd.DataFrame([{"run_id": r.info.run_id, "function": r.data.tags.get(_NAME_TAG),
                          "stored": _when(r.info.start_time), "seconds": float(r.data.tags.get(_SECONDS_TAG, "nan")),
                          "fingerprint": r.data.tags.get(_FINGERPRINT_TAG, "")[:16]} for r in runs])


def _when(ms: int | None) -> str:
    return _dt.datetime.fromtimestamp((ms or 0) / 1000).strftime("%Y-%m-%d %H:%M")


def _files_sha(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return _h(*(f"{p.relative_to(folder).as_posix()}={_file_digest(p)}" for p in files))


_CODE_DIGEST: list[str] = []


def _code_digest() -> str:
    """The source of the whole ``helpers`` package (a change anywhere in it makes stored runs stale) and versions."""
    if not _CODE_DIGEST:
        root = Path(__file__).resolve().parent
        files = sorted(p for p in root.rglob("*.py"))
        _CODE_DIGEST.append(_h(*(f"{p.relative_to(root).as_posix()}={_file_digest(p)}" for p in files)))
    return _CODE_DIGEST[0]


def _environment() -> str:
    from helpers.config import get_device

    from importlib import metadata

    if not _ENVIRONMENT:
        versions = [f"python={sys.version_info[:3]}"]
        for package in ("numpy", "torch", "torchvision", "fastai", "keras", "tensorflow", "tensorflow-cpu",
                        "scikit-learn", "pandas"):
            try:
                versions.append(f"{package}={metadata.version(package)}")
            except metadata.PackageNotFoundError:
                versions.append(f"{package}=-")
        _ENVIRONMENT.append(_h(*versions))
    return _h(_ENVIRONMENT[0], f"device={get_device()}")


_ENVIRONMENT: list[str] = []


def _fingerprint(fn: Callable[..., Any], bound: inspect.BoundArguments, outputs: Sequence[str]) -> dict[str, str]:
    parts: dict[str, str] = {}
    for arg, value in bound.arguments.items():
        if arg in outputs:
            parts[arg] = _h("output", _shown_path(Path(value)) if isinstance(value, (str, Path)) else repr(value))
        else:
            try:
                parts[arg] = _digest(value)
            except CannotFingerprint as exc:
                raise CannotFingerprint(f"argument {arg!r}: {exc}") from None
    parts["code"] = _h(_code_digest(), _function_digest(fn, set()) if fn.__module__ == "__main__" else fn.__qualname__)
    parts["environment"] = _environment()
    return parts


def _total(parts: Mapping[str, str]) -> str:
    return _h(*(f"{k}={v}" for k, v in sorted(parts.items())))


def _lookup(client: Any, name: str, total: str, parts: Mapping[str, str]) -> tuple[Any | None, Any | None, list[str]]:
    """(the stored run with this fingerprint, else None; the closest other run of ``name``; the arguments in which
    it differs)."""
    runs = client.search_runs([_experiment(client)], filter_string=f"tags.`{_NAME_TAG}` = '{name}'",
                              order_by=["attributes.start_time DESC"], max_results=5000)
    runs = [r for r in runs if r.info.status == "FINISHED"]
    for run in runs:
        if run.data.tags.get(_FINGERPRINT_TAG) == total:
            return run, None, []
    best, best_differs = None, list(parts)
    for run in runs:
        stored = {k[len("arg."):]: v for k, v in run.data.params.items() if k.startswith("arg.")}
        differs = [k for k in parts if stored.get(k) != parts[k][:32]]
        differs += [k for k in stored if k not in parts]
        if len(differs) < len(best_differs):
            best, best_differs = run, differs
    return None, best, best_differs


def _active_run_snapshot() -> dict[str, Any] | None:
    import mlflow

    run = mlflow.active_run()
    if run is None:
        return None
    client = mlflow.MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    data = client.get_run(run.info.run_id).data
    return {"run_id": run.info.run_id, "params": dict(data.params),
            "metrics": {k: len(client.get_metric_history(run.info.run_id, k)) for k in data.metrics},
            "artifacts": set(_artifact_files(client, run.info.run_id))}


def _artifact_files(client: Any, run_id: str, path: str | None = None) -> list[str]:
    files = []
    for info in client.list_artifacts(run_id, path):
        files.extend(_artifact_files(client, run_id, info.path) if info.is_dir else [info.path])
    return files


def _logged_since(before: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """What the call logged in the active run: new params, new metric steps, new artifacts (copied into ``folder``)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    run_id = before["run_id"]
    data = client.get_run(run_id).data
    params = {k: v for k, v in data.params.items() if k not in before["params"]}
    metrics = []
    for key in data.metrics:
        history = client.get_metric_history(run_id, key)[before["metrics"].get(key, 0):]
        metrics += [(m.key, m.value, m.step) for m in history]
    artifacts = sorted(set(_artifact_files(client, run_id)) - before["artifacts"])
    for path in artifacts:
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with _no_progress_bar():
            client.download_artifacts(run_id, path, str(target.parent))
    return {"params": params, "metrics": metrics, "artifacts": artifacts}


def _replay_logged(logged: Mapping[str, Any], folder: Path) -> None:
    import mlflow
    from mlflow.entities import Metric, Param

    run = mlflow.active_run()
    if run is None or not (logged["params"] or logged["metrics"] or logged["artifacts"]):
        return
    client = mlflow.MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    now = int(time.time() * 1000)
    existing = client.get_run(run.info.run_id).data.params
    params = [Param(k, v) for k, v in logged["params"].items() if k not in existing]
    metrics = [Metric(k, float(v), now, int(s)) for k, v, s in logged["metrics"]]
    for start in range(0, max(len(metrics), 1), 900):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run.info.run_id, metrics=metrics[start:start + 900], params=params if start == 0 else [])
    for path in logged["artifacts"]:
        parent = str(Path(path).parent)
        client.log_artifact(run.info.run_id, str(folder / path), None if parent == "." else parent)
    client.set_tag(run.info.run_id, "medimg.live.reused", "true")


def _store(client: Any, name: str, total: str, parts: Mapping[str, str], payload: Path, seconds: float) -> str:
    files_sha = _files_sha(payload)
    run = client.create_run(_experiment(client), run_name=name.rsplit(".", 1)[-1],
                            tags={_NAME_TAG: name, _FINGERPRINT_TAG: total, _FILES_TAG: files_sha,
                                  _SECONDS_TAG: f"{seconds:.1f}"})
    run_id = run.info.run_id
    from mlflow.entities import Param

    client.log_batch(run_id, params=[Param(f"arg.{k}", v[:32]) for k, v in parts.items()])
    client.log_artifacts(run_id, str(payload), "live")
    client.set_terminated(run_id, "FINISHED")
    return run_id


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a progress bar per download; in a notebook's output it says nothing."""
    saved = os.environ.get(_PROGRESS_BAR_ENV)
    os.environ[_PROGRESS_BAR_ENV] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(_PROGRESS_BAR_ENV, None)
        else:
            os.environ[_PROGRESS_BAR_ENV] = saved


def _fetch(client: Any, run: Any, folder: Path) -> Path:
    """Download a stored run's files into ``folder`` and check them against the hash stored with the run."""
    from mlflow.exceptions import MlflowException

    try:
        with _no_progress_bar():
            client.download_artifacts(run.info.run_id, "live", str(folder))
    except (MlflowException, OSError) as exc:
        raise StoredRunUnusable(f"its files cannot be read ({type(exc).__name__}: {exc})") from None
    payload = folder / "live"
    if _files_sha(payload) != run.data.tags.get(_FILES_TAG):
        raise StoredRunUnusable("its files changed since it was stored (SHA-256 mismatch)")
    return payload


def _torch_save(obj: Any, path: Path) -> None:
    if "torch" in sys.modules:
        sys.modules["torch"].save(obj, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(obj, handle)


def _torch_load(path: Path) -> Any:
    if "torch" in sys.modules:
        return sys.modules["torch"].load(path, weights_only=False, map_location="cpu")
    with open(path, "rb") as handle:
        return pickle.load(handle)


def _short(name: str) -> str:
    return name.removeprefix("helpers.").replace(".<locals>.", ".")


def _say(decision: Decision) -> Decision:
    decisions.append(decision)
    print(decision.message)
    return decision


def _names(values: Iterable[str] | str, bound: inspect.BoundArguments) -> list[str]:
    names = [values] if isinstance(values, str) else list(values)
    unknown = [n for n in names if n not in bound.signature.parameters]
    if unknown:
        raise TypeError(f"reusable(): {unknown} are not parameters of the function")
    return names


def reusable(fn: F | None = None, *, outputs: Sequence[str] | str = (), mutates: Sequence[str] | str = ()) -> Any:
    """Decorate a training function so that live mode (``MEDIMG_REUSE=1``) can reuse a finished run of the same call.

    ``outputs`` names the parameters that are folders (or files) the function writes: the fingerprint takes their
    path, not their content, and a reused call writes back what the stored run wrote there. ``mutates`` names the
    parameters the function trains in place (a torch module, a fastai Learner, a Keras model): a reused call loads
    the trained weights into them. Calls nested in a reusable call run as they are. Without live mode the
    decorated function is the function itself. Use it in a notebook as::

        @live.reusable(mutates="model")
        def fit(model, x, y, epochs): ...
    """

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)
        name = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not enabled() or _ACTIVE.get():
                return fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            output_names, mutated_names = _names(outputs, bound), _names(mutates, bound)
            try:
                parts = _fingerprint(fn, bound, output_names)
            except CannotFingerprint as exc:
                _say(Decision(name, "trained", None, message=f"live mode: {_short(name)} trains ({exc}; not stored)"))
                return fn(*args, **kwargs)
            total = _total(parts)
            client = _client()
            found, closest, differs = _lookup(client, name, total, parts)
            refused = ""
            if found is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    try:
                        payload = _fetch(client, found, Path(tmp))
                        result = _restore(payload, bound, output_names, mutated_names)
                    except StoredRunUnusable as exc:
                        refused = f"stored run {found.info.run_id[:8]} is refused: {exc}; "
                    else:
                        seconds = float(found.data.tags.get(_SECONDS_TAG, "nan"))
                        _say(Decision(name, "reused", found.info.run_id, seconds=seconds, message=(
                            f"live mode: {_short(name)} reused stored run {found.info.run_id[:8]} (trained "
                            f"{_when(found.info.start_time)} in {seconds:.0f} s; same configuration, data and code)")))
                        return result
            elif closest is not None:
                refused = (f"the closest stored run ({closest.info.run_id[:8]}, {_when(closest.info.start_time)}) "
                           f"differs in {', '.join(differs)}, so it is not reused; ")
            token = _ACTIVE.set(True)
            try:
                before = _active_run_snapshot()
                start = time.perf_counter()
                result = fn(*args, **kwargs)
                seconds = time.perf_counter() - start
            finally:
                _ACTIVE.reset(token)
            with tempfile.TemporaryDirectory() as tmp:
                payload = Path(tmp) / "live"
                payload.mkdir()
                try:
                    _save(payload, result, bound, output_names, mutated_names, before)
                except (CannotFingerprint, pickle.PicklingError, TypeError, AttributeError) as exc:
                    _say(Decision(name, "trained", None, seconds=seconds, message=(
                        f"live mode: {_short(name)} trained in {seconds:.0f} s; {refused}its result cannot be stored "
                        f"({type(exc).__name__}: {exc})")))
                    return result
                run_id = _store(client, name, total, parts, payload, seconds)
            action = "refused" if refused else "trained"
            _say(Decision(name, action, run_id, tuple(differs) if closest is not None else (), seconds, (
                f"live mode: {refused}{_short(name)} trained in {seconds:.0f} s and was stored as run {run_id[:8]}")))
            return result

        wrapper.medimg_reusable = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return wrap(fn) if fn is not None else wrap


def _save(payload: Path, result: Any, bound: inspect.BoundArguments, outputs: Sequence[str], mutates: Sequence[str],
          before: Mapping[str, Any] | None) -> None:
    _torch_save(result, payload / "result.pt")
    _torch_save({n: _get_state(bound.arguments[n]) for n in mutates}, payload / "state.pt")
    _torch_save(_rng_state(), payload / "rng.pt")
    for n in outputs:
        source = Path(bound.arguments[n])
        if source.is_dir():
            shutil.copytree(source, payload / "outputs" / n)
        elif source.is_file():
            (payload / "outputs").mkdir(exist_ok=True)
            shutil.copy2(source, payload / "outputs" / n)
    logged = {"params": {}, "metrics": [], "artifacts": []}
    if before is not None:
        logged = _logged_since(before, payload / "logged")
    (payload / "logged.json").write_text(json.dumps(logged))


def _restore(payload: Path, bound: inspect.BoundArguments, outputs: Sequence[str], mutates: Sequence[str]) -> Any:
    try:
        result = _torch_load(payload / "result.pt")
        states = _torch_load(payload / "state.pt")
        rng = _torch_load(payload / "rng.pt")
        logged = json.loads((payload / "logged.json").read_text())
    except Exception as exc:  # an unpickling error names whatever class failed: report it, then train
        raise StoredRunUnusable(f"its result cannot be loaded here ({type(exc).__name__}: {exc})") from None
    for n in mutates:
        _set_state(bound.arguments[n], states[n])
    for n in outputs:
        stored, target = payload / "outputs" / n, Path(bound.arguments[n])
        if stored.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copytree(stored, target, dirs_exist_ok=True)
        elif stored.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(stored, target)
    _replay_logged(logged, payload / "logged")
    _set_rng_state(rng)
    return result


def summary() -> str:
    """One line on this process's reusable calls: how many were reused, trained or refused."""
    if not decisions:
        return "live mode: no training call so far" if enabled() else "live mode is off (set MEDIMG_REUSE=1)"
    counts = {a: sum(d.action == a for d in decisions) for a in ("reused", "trained", "refused")}
    saved = sum(d.seconds for d in decisions if d.action == "reused")
    return (f"live mode: {counts['reused']} training calls reused ({saved:.0f} s of training saved), "
            f"{counts['trained'] + counts['refused']} trained")
