"""Azure Machine Learning (SDK v2, ``azure-ai-ml``): workspace configuration, data assets, jobs and online endpoints.

Everything here can be built, dumped to YAML and validated offline; only :func:`get_ml_client`,
:func:`register_data_asset` and :func:`deploy_online` talk to Azure, and only when a workspace is configured.
The SDK is imported inside the functions that need it, so ``import helpers.azure`` is cheap. The v1 SDK
(``azureml-core``) is out of support and is never used.

Specs are meant to be shared: :func:`dump_spec` refuses to write a subscription id, any GUID, a SAS
signature or a key, and :func:`redact` masks them in text meant for display. A workspace configuration
prints as ``subscription_id='****'``; do not display an ``MLClient`` itself (its repr shows the id).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from helpers.errors import SpecValidationError, WorkspaceNotConfigured

if TYPE_CHECKING:
    from azure.ai.ml import Input, MLClient, Output
    from azure.ai.ml.entities import CommandJob, Data, Job, ManagedOnlineDeployment, ManagedOnlineEndpoint

#: Environment variables that configure a workspace (all three are needed).
ENV_VARS = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME")
#: Keys of a workspace configuration, as in the ``config.json`` the Azure portal downloads.
CONFIG_KEYS = ("subscription_id", "resource_group", "workspace_name")
#: Folders searched for ``config.json`` at each level, in ``MLClient.from_config``'s order (``""``: the level itself).
CONFIG_SUBDIRS = (".azureml", "aml_config", "")
#: How many parent folders :func:`workspace_config` climbs, as ``MLClient.from_config`` does.
CONFIG_SEARCH_LEVELS = 20
#: Data asset types of the v2 SDK.
ASSET_TYPES = ("uri_folder", "uri_file", "mltable")
#: Input modes a job input may use (see :data:`MOUNT_VS_DOWNLOAD`).
INPUT_MODES = ("ro_mount", "download", "direct", "eval_mount", "eval_download")
#: URI prefixes accepted as cloud data paths (anything else must be an existing local path).
REMOTE_PREFIXES = ("azureml://", "https://", "abfss://", "wasbs://", "azureml:")

MOUNT_VS_DOWNLOAD = """\
How a job sees its input data (``job_input(..., mode=...)``):

ro_mount (default): the data stays in storage and the job sees a read-only folder (a FUSE mount) whose
  files are fetched when opened. The job starts at once and node disk size does not matter. It pays off
  for data larger than the node's disk, for a single pass over the data, or when the script reads only
  part of the files. Each first open of a file is a network round trip, so tens of thousands of small
  files (one DICOM per slice) read slowly in the first epoch; later epochs are faster while the mount's
  cache holds them.

download: the whole input is copied to the node's local disk before the script starts. Start-up takes
  longer (proportional to the size) and the copy must fit on the disk, but afterwards every read is
  local. It pays off when the data fits on disk and is read many times: several epochs of random
  access over many small files, or libraries that need real local files (memory maps, seeks, SQLite).

direct: only the URI is passed; the script reads storage itself (e.g. with azureml-fsspec). For
  streaming readers that want full control.

Rule of thumb for these lessons: a few GB of PNG/DICOM trained for many epochs -> download; a large
archive read once, or a subset of a big data set -> ro_mount.
"""

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
#: What must never appear in a spec or displayed text: (description, pattern).
_SECRET_PATTERNS = (
    ("a subscription path", re.compile(r"subscriptions/[^/\s'\"]+", re.IGNORECASE)),
    ("a GUID (subscription or tenant id)", re.compile(_GUID)),
    ("a SAS token signature", re.compile(r"[?&]sig=[^&\s'\"]+", re.IGNORECASE)),
    ("a storage account key", re.compile(r"AccountKey=[^;\s'\"]+", re.IGNORECASE)),
    ("a shared access signature", re.compile(r"SharedAccessSignature=[^;\s'\"]+", re.IGNORECASE)),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
)
#: Parts of an environment-variable name (split at ``_``) that suggest a secret (refused in job specs).
_SECRET_NAME_PARTS = {
    "SECRET", "PASSWORD", "PASSWD", "PWD", "TOKEN", "KEY", "APIKEY", "SAS", "CREDENTIAL", "CREDENTIALS",
}
_LONG_DATASTORE_URI = re.compile(
    r"^azureml://subscriptions/[^/]+/resource[gG]roups/[^/]+/workspaces/[^/]+/datastores/(.+)$"
)
#: How azure-ai-ml 1.35's job dump writes a local input path: ``azureml:`` glued to the path (not loadable).
_MANGLED_LOCAL_INPUT = re.compile(r"^azureml:(?!//)([./~\\]|[A-Za-z]:[\\/])")
_BINDING = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")


# --- Workspace ---------------------------------------------------------------------------------------


class WorkspaceConfig(dict):
    """Workspace settings (``subscription_id``, ``resource_group``, ``workspace_name``, ``source``), printed masked."""

    def __repr__(self) -> str:
        """The dict with the subscription id shown as ``****``."""
        shown = {k: ("****" if k == "subscription_id" else v) for k, v in self.items()}
        return f"WorkspaceConfig({shown!r})"

    __str__ = __repr__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython display: the masked repr (never the raw subscription id)."""
        printer.text(repr(self))


def redact(text: str) -> str:
    """``text`` with subscription paths, GUIDs, SAS signatures and keys replaced by placeholders."""
    text = re.sub(r"(subscriptions/)[^/\s'\"]+", r"\1<subscription-id>", text, flags=re.IGNORECASE)
    text = re.sub(_GUID, "<guid>", text)
    text = re.sub(r"([?&]sig=)[^&\s'\"]+", r"\1<redacted>", text, flags=re.IGNORECASE)
    text = re.sub(r"(AccountKey=|SharedAccessSignature=)[^;\s'\"]+", r"\1<redacted>", text, flags=re.IGNORECASE)
    return text


def _config_from_file(path: Path) -> WorkspaceConfig | None:
    """The workspace configuration in ``path`` (portal ``config.json`` or ``Scope`` form), or None if it has none."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    if all(isinstance(raw.get(k), str) and raw[k] for k in CONFIG_KEYS):
        values = [raw[k] for k in CONFIG_KEYS]
    elif isinstance(raw.get("Scope"), str) and len(raw["Scope"].split("/")) > 8:
        pieces = raw["Scope"].split("/")
        values = [pieces[2], pieces[4], pieces[8]]
    else:
        return None
    return WorkspaceConfig(zip(CONFIG_KEYS, values), source=str(path))


def find_config_file(start: str | Path | None = None) -> Path | None:
    """The first ``config.json`` naming a workspace, upwards from ``start`` (default cwd) like ``MLClient.from_config``.

    Each of ``.azureml/``, ``aml_config/`` and the folder itself is searched up to 20 parents; unlike the SDK,
    a ``config.json`` without workspace keys (another tool's) is skipped instead of raising.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    if here.is_file():
        return here if _config_from_file(here) else None
    levels = [here, *list(here.parents)[:CONFIG_SEARCH_LEVELS]]
    for subdir in CONFIG_SUBDIRS:
        for folder in levels:
            candidate = folder / subdir / "config.json" if subdir else folder / "config.json"
            if candidate.is_file() and _config_from_file(candidate) is not None:
                return candidate
    return None


def workspace_config(start: str | Path | None = None) -> WorkspaceConfig | None:
    """The configured workspace (the three :data:`ENV_VARS`, else a ``config.json`` upwards from ``start``), or None."""
    values = [os.environ.get(name, "").strip() for name in ENV_VARS]
    if all(values):
        return WorkspaceConfig(zip(CONFIG_KEYS, values), source="environment")
    found = find_config_file(start)
    return _config_from_file(found) if found is not None else None


def setup_steps() -> str:
    """How to configure a workspace for these helpers (the text :class:`WorkspaceNotConfigured` carries)."""
    missing = [name for name in ENV_VARS if not os.environ.get(name, "").strip()]
    return (
        "No Azure ML workspace is configured. To use one:\n"
        "  1. pip install azure-ai-ml azure-identity (plus azureml-mlflow to log MLflow runs to the workspace).\n"
        "  2. Either download config.json from the Azure portal (your workspace > Overview > Download config.json)\n"
        "     into this folder, a parent folder or .azureml/, or set the environment variables "
        f"{', '.join(ENV_VARS)} (missing now: {', '.join(missing) or 'none'}).\n"
        "  3. Sign in so DefaultAzureCredential finds a credential: `az login` (Azure CLI), the VS Code Azure\n"
        "     account extension, or a managed identity on Azure ML compute.\n"
        "  4. Keep config.json out of version control. Everything else in these lessons runs without Azure."
    )


def get_ml_client(config: Mapping[str, str] | None = None, credential: Any = None) -> MLClient:
    """An ``MLClient`` for ``config`` (default :func:`workspace_config`); WorkspaceNotConfigured (with steps) if none.

    ``DefaultAzureCredential`` is created only here and only when a workspace is configured; nothing is sent
    until an operation runs. Do not display the client: its repr shows the subscription id.
    """
    config = config if config is not None else workspace_config()
    if not config or not all(config.get(k) for k in CONFIG_KEYS):
        raise WorkspaceNotConfigured(setup_steps())
    from azure.ai.ml import MLClient

    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return MLClient(
        credential=credential,
        subscription_id=config["subscription_id"],
        resource_group_name=config["resource_group"],
        workspace_name=config["workspace_name"],
    )


# --- Data assets -------------------------------------------------------------------------------------


def _is_remote(path: str | Path) -> bool:
    """True for a cloud URI (``azureml://``, ``azureml:``, ``https://`` ...), False for a local path."""
    return isinstance(path, str) and path.startswith(REMOTE_PREFIXES)


def _check_no_secret(text: str, where: str) -> None:
    """Raise SpecValidationError if ``text`` holds a subscription path, GUID, SAS signature or key."""
    for what, pattern in _SECRET_PATTERNS:
        if pattern.search(text):
            raise SpecValidationError(
                where,
                f"holds {what}, which must not go into a spec or a shared notebook. Use a short datastore URI "
                "(azureml://datastores/<name>/paths/<folder>) or an asset reference (azureml:<name>:<version>) "
                "and identity-based access instead of keys or SAS tokens.",
            )


def _normalise_cloud_path(path: str) -> str:
    """A long ``azureml://subscriptions/...`` datastore URI shortened to ``azureml://datastores/...``."""
    match = _LONG_DATASTORE_URI.match(path)
    return f"azureml://datastores/{match.group(1)}" if match else path


def _check_asset_type(asset_type: str, field: str = "type") -> str:
    """``asset_type`` if it is one of :data:`ASSET_TYPES`, else SpecValidationError naming ``field``."""
    if asset_type not in ASSET_TYPES:
        raise SpecValidationError(
            field, f"{asset_type!r} is not a data asset type; use one of {', '.join(ASSET_TYPES)}."
        )
    return asset_type


def _check_local_path(path: Path, asset_type: str) -> None:
    """Raise SpecValidationError if a local ``path`` is missing or does not match ``asset_type``."""
    if not path.exists():
        raise SpecValidationError("path", f"{path} does not exist; give an existing folder or file to upload.")
    if asset_type == "uri_file" and not path.is_file():
        raise SpecValidationError("type", f"uri_file needs a file, but {path} is a folder; use uri_folder.")
    if asset_type in ("uri_folder", "mltable") and not path.is_dir():
        raise SpecValidationError("type", f"{asset_type} needs a folder, but {path} is a file; use uri_file.")
    if asset_type == "mltable" and not (path / "MLTable").is_file():
        raise SpecValidationError("type", f"mltable needs an MLTable file in {path}; use uri_folder for plain files.")


def build_data_asset(
    name: str,
    path: str | Path,
    version: str | int,
    description: str = "",
    tags: Mapping[str, Any] | None = None,
    asset_type: str = "uri_folder",
) -> Data:
    """A v2 ``Data`` asset for a local folder/file (uploaded when registered) or a cloud URI; nothing is sent.

    Cloud paths are ``azureml://datastores/<store>/paths/<folder>`` (long ``azureml://subscriptions/...`` forms
    are shortened so no subscription id reaches the spec) or ``https://`` without a SAS token.
    """
    from azure.ai.ml.entities import Data

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", name or ""):
        raise SpecValidationError("name", f"{name!r} is not a valid asset name (letters, digits, '-', '_', '.').")
    version = str(version).strip()
    if not version:
        raise SpecValidationError("version", "give a version, e.g. '1' (Azure ML keeps every version).")
    _check_asset_type(asset_type)
    if _is_remote(path):
        spec_path: str = _normalise_cloud_path(str(path))
        _check_no_secret(spec_path, "path")
    else:
        local = Path(path).expanduser().resolve()
        _check_local_path(local, asset_type)
        spec_path = str(local)
    clean_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    _check_no_secret(json.dumps(clean_tags) + description, "tags/description")
    return Data(name=name, version=version, description=description, tags=clean_tags, type=asset_type, path=spec_path)


def dump_spec(entity: Any, path: str | Path) -> Path:
    """Write ``entity`` (Data asset, job, online endpoint or deployment) as YAML at ``path``, overwriting; refuse
    specs holding ids or secrets.

    Local paths are written relative to the YAML's folder (the ``load_*`` functions resolve them from there), so
    the spec carries no machine path: a data asset's ``path``, a job's (or a sweep trial's) ``code``, a
    deployment's ``code_configuration.code`` and ``model.path``. A local model is written without the content-hash
    name and version the SDK gave it, so loading the spec hashes the files as they are then. The check runs on the
    written text; on failure the file is removed and SpecValidationError raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as stream, _quiet_experimental_notices():
        returned = entity.dump(stream)  # a deployment's model schema logs an "experimental class" notice
    try:
        text = path.read_text(encoding="utf-8")
        changed = False
        if not text.strip() and isinstance(returned, Mapping):  # ManagedOnlineEndpoint.dump ignores its stream
            raw = json.loads(json.dumps(returned))  # OrderedDicts -> plain dicts for safe_dump
            changed = True
        else:
            raw = yaml.safe_load(text)
        folder = path.parent.resolve()
        holders = []
        if isinstance(raw, dict):  # a job's code, a sweep trial's code, a deployment's code and model, an asset's path
            holders = [(raw, "code"), (raw.get("trial"), "code"), (raw.get("code_configuration"), "code"),
                       (raw.get("model"), "path")]
            if "type" in raw and "jobs" not in raw:
                holders.append((raw, "path"))
        for holder, key in holders:
            value = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(value, str) and not _is_remote(value) and Path(value).is_absolute():
                holder[key] = Path(os.path.relpath(value, folder)).as_posix()
                changed = True
        model = raw.get("model") if isinstance(raw, dict) and "endpoint_name" in raw else None
        if isinstance(model, dict) and getattr(getattr(entity, "model", None), "_is_anonymous", False):
            for key in ("name", "version"):  # content hash of the files at build time; reloading recomputes it
                changed |= model.pop(key, None) is not None
        if changed:
            text = yaml.safe_dump(raw, sort_keys=True)
            path.write_text(text, encoding="utf-8")
        _check_no_secret(text, f"spec {path.name}")
        _check_job_input_paths(raw, path.name)  # raw is what text holds (rewritten or as read)
    except SpecValidationError:
        path.unlink()
        raise
    return path


def _check_job_input_paths(raw: Any, where: str) -> None:
    """Raise SpecValidationError if a job spec's input path is a local path the SDK wrote as ``azureml:<path>``."""
    inputs = raw.get("inputs") if isinstance(raw, dict) else None
    for key, value in (inputs or {}).items():
        path = value.get("path") if isinstance(value, dict) else None
        if isinstance(path, str) and _MANGLED_LOCAL_INPUT.match(path):
            raise SpecValidationError(
                "inputs",
                f"input {key!r} of {where} is a local path, which azure-ai-ml writes to YAML as {path!r} (an asset "
                "reference that does not exist). Register it with build_data_asset + register_data_asset and use "
                "job_input(asset), or submit the job object from Python instead of the YAML.",
            )


def _code_from_yaml(code: Any, yaml_path: str | Path) -> Path:
    """A job's local code folder as loaded from a spec: relative paths are relative to the YAML's folder."""
    folder = Path(str(code)).expanduser()
    return folder if folder.is_absolute() else Path(yaml_path).parent / folder


def _same_local_path(a: Any, b: Any) -> bool:
    """True when two local paths name the same file or folder."""
    return Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()


def _compare_path(loaded: Any, expected: Any) -> bool:
    """True when a loaded asset path equals the expected one (cloud URIs as text, local paths resolved)."""
    if _is_remote(str(expected)) or _is_remote(str(loaded)):
        return str(loaded).rstrip("/") == str(expected).rstrip("/")
    return _same_local_path(loaded, expected)


def _field_from_error(error: Exception, fields: tuple[str, ...]) -> str:
    """The first of ``fields`` that an SDK validation message names, else ``"spec"``."""
    text = str(error)
    for field in fields:
        if f'"{field}"' in text or f"'{field}'" in text:
            return field
    return "spec"


def validate_data_asset_yaml(path: str | Path, expected: Data | None = None) -> Data:
    """The asset ``azure.ai.ml.load_data`` reads from ``path``, checked; SpecValidationError names a bad field.

    Fails if name/version/type/path is missing or invalid, a local path disagrees with the type, or (with
    ``expected``, the asset that was dumped) name, version, type or path differ.
    """
    from azure.ai.ml import load_data

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    _check_no_secret(text, f"spec {path.name}")
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise SpecValidationError("spec", f"{path} is not a YAML mapping.")
    for field in ("name", "version", "type", "path"):
        if raw.get(field) in (None, ""):
            raise SpecValidationError(field, f"missing in {path.name}.")
    _check_asset_type(str(raw["type"]))
    try:
        data = load_data(source=path)
    except Exception as error:  # the SDK raises marshmallow / its own ValidationException
        field = _field_from_error(error, ("type", "path", "name", "version", "description", "tags"))
        raise SpecValidationError(field, f"load_data rejected {path.name}: {redact(str(error))[:500]}") from error
    if not _is_remote(str(data.path)):
        _check_local_path(Path(str(data.path)), str(data.type))
    checks = {"name": raw["name"], "version": str(raw["version"]), "type": raw["type"]}
    for field, value in checks.items():
        if str(getattr(data, field)) != str(value):
            raise SpecValidationError(field, f"YAML has {value!r} but load_data gave {getattr(data, field)!r}.")
    if expected is not None:
        for field in ("name", "version", "type"):
            got, want = str(getattr(data, field)), str(getattr(expected, field))
            if got != want:
                raise SpecValidationError(field, f"{path.name} has {got!r}, the asset built has {want!r}.")
        if not _compare_path(data.path, expected.path):
            raise SpecValidationError("path", f"{path.name} points elsewhere than the asset built.")
    return data


def register_data_asset(ml_client: MLClient, data: Data) -> Data:
    """Register ``data`` in the workspace with ``ml_client.data.create_or_update`` (uploads a local path first)."""
    if not _is_remote(str(data.path)):
        _check_local_path(Path(str(data.path)), str(data.type))
    return ml_client.data.create_or_update(data)


# --- Jobs --------------------------------------------------------------------------------------------


def job_input(data_asset_or_uri: Data | str | Path, mode: str = "ro_mount", asset_type: str | None = None) -> Input:
    """A job ``Input`` read with ``mode`` (see :data:`MOUNT_VS_DOWNLOAD`) for a Data asset, a cloud URI or a local path.

    A Data asset is referenced as ``azureml:<name>:<version>`` (register it first); a local ``Path`` is uploaded
    when the job object is submitted from Python (such a job cannot be dumped: the SDK mangles local input
    paths). ``asset_type`` defaults to the asset's type, else ``uri_folder`` (``uri_file`` for a file).
    """
    from azure.ai.ml import Input
    from azure.ai.ml.entities import Data

    if mode not in INPUT_MODES:
        raise ValueError(
            f"mode={mode!r} is not an input mode; use one of {', '.join(INPUT_MODES)} (see MOUNT_VS_DOWNLOAD)."
        )
    if isinstance(data_asset_or_uri, Data):
        if not data_asset_or_uri.name or not data_asset_or_uri.version:
            raise SpecValidationError("input", "the Data asset needs a name and a version to be referenced.")
        uri = f"azureml:{data_asset_or_uri.name}:{data_asset_or_uri.version}"
        kind = asset_type or str(data_asset_or_uri.type or "uri_folder")
    elif isinstance(data_asset_or_uri, Path) or not _is_remote(data_asset_or_uri):
        local = Path(data_asset_or_uri).expanduser().resolve()
        kind = asset_type or ("uri_file" if local.is_file() else "uri_folder")
        _check_asset_type(kind, "input")
        _check_local_path(local, kind)
        uri = str(local)
    else:
        uri = _normalise_cloud_path(str(data_asset_or_uri))
        kind = asset_type or "uri_folder"
    _check_asset_type(kind, "input")
    _check_no_secret(uri, "input")
    return Input(type=kind, path=uri, mode=mode)


def _as_output(value: Any) -> Output:
    """An ``Output``: kept if it is one, a URI string becomes a uri_folder output there, None a default folder."""
    from azure.ai.ml import Output

    if isinstance(value, Output):
        return value
    if value is None:
        return Output(type="uri_folder", mode="rw_mount")
    if isinstance(value, str) and _is_remote(value):
        return Output(type="uri_folder", path=_normalise_cloud_path(value), mode="rw_mount")
    raise SpecValidationError("outputs", f"{value!r} is not an Output, a cloud URI or None.")


def _check_env_var_names(environment_variables: Mapping[str, Any] | None, where: str, instead: str) -> None:
    """Raise SpecValidationError if an environment variable's name looks like a secret (``*_KEY``, ``*_TOKEN`` ...)."""
    for key in environment_variables or {}:
        parts = set(str(key).upper().split("_"))
        if parts & _SECRET_NAME_PARTS or "CONNECTION_STRING" in str(key).upper():
            raise SpecValidationError(
                "environment_variables",
                f"{key} looks like a secret; never put secrets in {where}. Use {instead} instead.",
            )


def build_command_job(
    code_dir: str | Path,
    command: str,
    environment: Any,
    compute: str,
    inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    display_name: str | None = None,
    experiment_name: str | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    environment_variables: Mapping[str, str] | None = None,
) -> CommandJob:
    """A v2 ``CommandJob`` running ``command`` from ``code_dir`` on ``compute``, checked offline; nothing is sent.

    Inputs may be ``Input``s, Data assets, cloud URIs or local ``Path``s (all through :func:`job_input`, ro_mount)
    or literals; outputs ``Output``s, cloud URIs or None (a new folder). Every ``${{inputs.x}}`` and
    ``${{outputs.y}}`` in the command must exist, and environment variables must not look like secrets.
    Submit it with ``ml_client.jobs.create_or_update(job)``.
    """
    from azure.ai.ml import Input
    from azure.ai.ml.entities import CommandJob, Data

    code = Path(code_dir).expanduser().resolve()
    if not code.is_dir():
        raise SpecValidationError("code", f"{code} is not a folder; give the folder holding the training script.")
    if not command or not command.strip():
        raise SpecValidationError("command", "give the command to run, e.g. 'python train.py --data ${{inputs.data}}'.")
    if not compute:
        raise SpecValidationError("compute", "give a compute cluster name, e.g. 'cpu-cluster'.")
    job_inputs: dict[str, Any] = {}
    for key, value in (inputs or {}).items():
        if isinstance(value, (Data, Path)) or (isinstance(value, str) and _is_remote(value)):
            job_inputs[key] = job_input(value)
        elif isinstance(value, (Input, bool, int, float, str)):
            job_inputs[key] = value
        else:
            raise SpecValidationError(
                "inputs", f"input {key!r} is {type(value).__name__}; use an Input, Data, URI, Path or number."
            )
    job_outputs = {key: _as_output(value) for key, value in (outputs or {}).items()}
    for kind, key in _BINDING.findall(command):
        if key not in (job_inputs if kind == "inputs" else job_outputs):
            raise SpecValidationError("command", f"uses ${{{{{kind}.{key}}}}} but no {kind[:-1]} {key!r} is defined.")
    _check_env_var_names(environment_variables, "a job spec", "the compute's managed identity or a workspace "
                                                              "connection / Key Vault")
    clean_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    _check_no_secret(
        json.dumps([command, str(environment), compute, clean_tags, dict(environment_variables or {})]), "job"
    )
    return CommandJob(
        code=str(code),
        command=command,
        environment=environment,
        compute=compute,
        inputs=job_inputs,
        outputs=job_outputs,
        display_name=display_name,
        experiment_name=experiment_name,
        description=description,
        tags=clean_tags,
        environment_variables=dict(environment_variables or {}),
    )


def _strip_azureml(value: Any) -> str:
    """A reference without the ``azureml:`` prefix (``azureml:cpu`` and ``cpu`` compare equal)."""
    text = str(value) if value is not None else ""
    return text[len("azureml:") :] if text.startswith("azureml:") and not text.startswith("azureml://") else text


def _input_summary(value: Any) -> tuple:
    """(type, path, mode) of a job input (for an Input or a loaded node input), or the literal value."""
    target = getattr(value, "_data", value)
    if hasattr(target, "type") and hasattr(target, "path"):
        return (str(target.type), _strip_azureml(target.path), str(getattr(target, "mode", None)))
    return ("literal", str(target), "")


@contextmanager
def _quiet_experimental_notices() -> Iterator[None]:
    """Hide the SDK's "experimental class" log lines for schema classes a plain command job never uses."""
    logger = logging.getLogger("azure.ai.ml._utils._experimental")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def validate_job_yaml(path: str | Path, expected: Job | None = None) -> Job:
    """The job ``azure.ai.ml.load_job`` reads from ``path``; SpecValidationError names the field that fails.

    With ``expected`` (the job that was dumped), command, names, environment, compute, code, inputs and
    outputs must match.
    """
    from azure.ai.ml import load_job

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    _check_no_secret(text, f"spec {path.name}")
    _check_job_input_paths(yaml.safe_load(text), path.name)
    try:
        with _quiet_experimental_notices():
            job = load_job(source=path)
    except Exception as error:  # the SDK raises marshmallow / its own ValidationException
        field = _field_from_error(error, ("command", "environment", "compute", "inputs", "outputs", "code", "type"))
        raise SpecValidationError(field, f"load_job rejected {path.name}: {redact(str(error))[:500]}") from error
    if expected is None:
        return job
    for field in ("command", "display_name", "experiment_name"):
        got, want = getattr(job, field, None), getattr(expected, field, None)
        if (got or None) != (want or None):
            raise SpecValidationError(field, f"{path.name} has {got!r}, the job built has {want!r}.")
    for field in ("environment", "compute"):
        got, want = _strip_azureml(getattr(job, field, None)), _strip_azureml(getattr(expected, field, None))
        if got != want:
            raise SpecValidationError(field, f"{path.name} has {got!r}, the job built has {want!r}.")
    if not _same_local_path(_code_from_yaml(job.code, path), expected.code):
        raise SpecValidationError("code", f"{path.name} points at another code folder.")
    got_inputs = {k: _input_summary(v) for k, v in (job.inputs or {}).items()}
    want_inputs = {k: _input_summary(v) for k, v in (expected.inputs or {}).items()}
    if got_inputs != want_inputs:
        raise SpecValidationError("inputs", f"{path.name} has {got_inputs}, the job built has {want_inputs}.")
    if sorted(job.outputs or {}) != sorted(expected.outputs or {}):
        got, want = sorted(job.outputs or {}), sorted(expected.outputs or {})
        raise SpecValidationError("outputs", f"{path.name} has outputs {got}, the job built has {want}.")
    return job


# --- Environments and sweeps ---------------------------------------------------------------------

#: Azure ML's curated Ubuntu base image the training environment builds on (conda and MPI included).
DEFAULT_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
#: Goals a sweep objective accepts.
SWEEP_GOALS = ("maximize", "minimize")
#: Sampling algorithms a sweep accepts.
SWEEP_SAMPLING = ("random", "grid", "bayesian")


def lock_requirements(lock_file: str | Path, exclude: tuple[str, ...] = ()) -> list[str]:
    """The ``name==version`` lines of a pip lock file (comments, options and ``exclude``d names left out)."""
    lines = []
    for line in Path(lock_file).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-") or "==" not in line:
            continue
        name = re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-")
        if name not in {e.lower().replace("_", "-") for e in exclude}:
            lines.append(line)
    if not lines:
        raise SpecValidationError("environment", f"{lock_file} holds no pinned 'name==version' lines.")
    return lines


def build_environment(
    lock_file: str | Path,
    name: str = "medimg-train",
    image: str = DEFAULT_IMAGE,
    python: str = "3.11",
    exclude: tuple[str, ...] = (),
) -> Any:
    """An Azure ML ``Environment``: ``image`` plus a conda spec pinning every package of ``lock_file``.

    The pins are written into the spec itself (an image build sees no repository, so ``-r lock.txt``
    would not resolve); the ``helpers`` package comes with the job's code (the command installs it with
    ``pip install --no-deps -e .``). Azure ML caches the built image by the spec's hash, so the same lock
    builds once.
    """
    from azure.ai.ml.entities import Environment

    pins = lock_requirements(lock_file, exclude=exclude)
    conda = {"name": name, "channels": ["conda-forge"],
             "dependencies": [f"python={python}", "pip", {"pip": pins}]}
    # Anonymous (no name): Azure ML registers it by content hash, so an unchanged lock reuses the built image.
    return Environment(image=image, conda_file=conda, description=f"{len(pins)} packages pinned by {Path(lock_file).name}")


def build_sweep_job(
    trial: CommandJob,
    search_space: Mapping[str, Any],
    primary_metric: str,
    goal: str = "maximize",
    sampling_algorithm: str = "random",
    max_total_trials: int = 8,
    max_concurrent_trials: int = 2,
    timeout_s: int = 3600,
    early_termination: Any = "bandit",
) -> Any:
    """A v2 ``SweepJob`` trying ``trial`` over ``search_space`` (``Choice``, ``Uniform``... from azure.ai.ml.sweep).

    The trial's command refers to searched values as ``${{search_space.<name>}}`` and to fixed inputs as
    ``${{inputs.<name>}}``; the trial must log ``primary_metric`` (e.g. ``val_auc``) with MLflow, which Azure
    ML reads. ``early_termination="bandit"`` stops trials 10 % worse than the best after two
    evaluations; None runs every trial to the end. Nothing is sent: submit with
    ``ml_client.jobs.create_or_update(sweep)``.
    """
    from azure.ai.ml.sweep import BanditPolicy, Objective, SweepJob, SweepJobLimits

    if goal not in SWEEP_GOALS:
        raise SpecValidationError("goal", f"goal must be one of {SWEEP_GOALS}, got {goal!r}.")
    if sampling_algorithm not in SWEEP_SAMPLING:
        raise SpecValidationError("sampling_algorithm", f"use one of {SWEEP_SAMPLING}, got {sampling_algorithm!r}.")
    if not search_space:
        raise SpecValidationError("search_space", "give at least one searched value, e.g. {'lr': Uniform(1e-4, 1e-2)}.")
    used = set(re.findall(r"\$\{\{\s*search_space\.([A-Za-z0-9_]+)\s*\}\}", trial.command))
    if missing := sorted(set(search_space) - used):
        raise SpecValidationError("search_space", f"{missing} searched but never used in the trial's command: "
                                                  "pass them as ${{search_space.<name>}}.")
    if unknown := sorted(used - set(search_space)):
        raise SpecValidationError("command", f"the trial's command uses ${{{{search_space.{unknown[0]}}}}} but the "
                                             "search space does not define it.")
    if int(max_concurrent_trials) > int(max_total_trials) or int(max_total_trials) < 1:
        raise SpecValidationError("limits", "need 1 <= max_concurrent_trials <= max_total_trials.")
    policy = (BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=2)
              if early_termination == "bandit" else early_termination)
    return SweepJob(
        trial=trial, compute=trial.compute, inputs=dict(trial.inputs or {}), outputs=dict(trial.outputs or {}),
        search_space=dict(search_space), objective=Objective(goal=goal, primary_metric=primary_metric),
        sampling_algorithm=sampling_algorithm,
        limits=SweepJobLimits(max_total_trials=int(max_total_trials), max_concurrent_trials=int(max_concurrent_trials),
                              timeout=int(timeout_s)),
        early_termination=policy, experiment_name=trial.experiment_name,
        display_name=f"{trial.display_name or 'trial'}-sweep", tags=dict(trial.tags or {}),
    )


def validate_sweep_yaml(path: str | Path, expected: Any = None) -> Any:
    """The sweep job ``load_job`` reads from ``path``; with ``expected``, objective, limits, search space and
    the trial's command and code must match (SpecValidationError names the field that does not)."""
    job = validate_job_yaml(path)
    if getattr(job, "type", None) != "sweep":
        raise SpecValidationError("type", f"{Path(path).name} holds a {getattr(job, 'type', '?')} job, not a sweep.")
    if expected is None:
        return job
    checks = {
        "objective": ((job.objective.goal, job.objective.primary_metric),
                      (expected.objective.goal, expected.objective.primary_metric)),
        "limits": ((job.limits.max_total_trials, job.limits.max_concurrent_trials, job.limits.timeout),
                   (expected.limits.max_total_trials, expected.limits.max_concurrent_trials, expected.limits.timeout)),
        "search_space": (sorted(job.search_space), sorted(expected.search_space)),
        "command": (job.trial.command, expected.trial.command),
        "compute": (_strip_azureml(job.compute), _strip_azureml(expected.compute)),
    }
    for field, (got, want) in checks.items():
        if got != want:
            raise SpecValidationError(field, f"{Path(path).name} has {got!r}, the sweep built has {want!r}.")
    if not _same_local_path(_code_from_yaml(job.trial.code, path), expected.trial.code):
        raise SpecValidationError("code", f"{Path(path).name} points at another code folder.")
    return job


# --- Online endpoints ------------------------------------------------------------------------------

#: Authentication modes of a managed online endpoint: a key (does not expire) or an Azure ML token (expires).
AUTH_MODES = ("key", "aml_token")
#: Shortest and longest endpoint or deployment name (Azure ML's endpoint limits; the SDK checks the same).
NAME_LENGTH = (3, 32)
#: Longest request timeout a managed online endpoint accepts (ms).
MAX_REQUEST_TIMEOUT_MS = 180_000
#: The package that serves a scoring script's init()/run() over HTTP; a deployment's environment needs it.
INFERENCE_SERVER = "azureml-inference-server-http"
#: Letters and digits, single '-' between them, starting with a letter (Azure ML's rule for endpoints and deployments);
#: lowercase only, since azure-ai-ml lowercases endpoint and deployment names (but not a deployment's endpoint_name).
_ENDPOINT_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
#: An asset reference: ``azureml:<name>:<version>`` or ``azureml:<name>@<label>`` (e.g. ``@latest``).
_ASSET_REFERENCE = re.compile(r"azureml:[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+|@[A-Za-z0-9_.-]+)")


def _check_endpoint_name(name: Any, field: str, kind: str = "endpoint") -> None:
    """Nothing if Azure ML accepts ``name`` for an endpoint or deployment, else SpecValidationError naming ``field``."""
    text = name if isinstance(name, str) else ""
    low, high = NAME_LENGTH
    if low <= len(text) <= high and _ENDPOINT_NAME.fullmatch(text):
        return
    fixed = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:high].rstrip("-")
    hint = f", e.g. {fixed!r}" if low <= len(fixed) and _ENDPOINT_NAME.fullmatch(fixed) else ""
    unique = (" Endpoint names are part of the scoring URL and must be unique in the Azure region: add a short "
              "suffix (initials, a date) if the name is taken." if kind == "endpoint" else "")
    raise SpecValidationError(
        field,
        f"{name!r} is not a valid {kind} name: use {low}-{high} characters, a letter first, then letters, digits and "
        f"single '-' between them, ending with a letter or digit, all lowercase (azure-ai-ml lowercases names)"
        f"{hint}.{unique}",
    )


def build_online_endpoint(
    name: str, description: str = "", auth_mode: str = "key", tags: Mapping[str, Any] | None = None
) -> ManagedOnlineEndpoint:
    """A ``ManagedOnlineEndpoint`` (the stable URL that deployments sit behind), checked offline; nothing is sent.

    ``auth_mode="key"`` gives keys that do not expire (``ml_client.online_endpoints.get_keys``); ``"aml_token"``
    gives tokens that expire after a while. Create it with :func:`deploy_online`.
    """
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    _check_endpoint_name(name, "name")
    if auth_mode not in AUTH_MODES:
        raise SpecValidationError("auth_mode", f"use one of {', '.join(AUTH_MODES)}, got {auth_mode!r}.")
    clean_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    _check_no_secret(json.dumps(clean_tags) + (description or ""), "tags/description")
    return ManagedOnlineEndpoint(name=name, description=description or None, auth_mode=auth_mode, tags=clean_tags)


def _top_level_names(tree: Any) -> set[str]:
    """Names a module binds at its top level (functions, classes, assignments, imports)."""
    import ast

    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _check_scoring_code(code: Path, scoring_script: str | Path) -> str:
    """``scoring_script`` as a POSIX path inside ``code``, checked: it exists, parses, defines ``init`` and ``run``."""
    import ast

    if not code.is_dir():
        raise SpecValidationError(
            "code_configuration.code", f"{code} is not a folder; give the folder holding the scoring script."
        )
    relative = Path(scoring_script)
    script = (code / relative).resolve()
    if relative.is_absolute() or not script.is_relative_to(code.resolve()):
        raise SpecValidationError(
            "code_configuration.scoring_script",
            f"{scoring_script} must be a path inside the code folder, relative to it (e.g. 'score.py').",
        )
    if not script.is_file():
        found = sorted(p.relative_to(code).as_posix() for p in code.rglob("*.py"))[:5]
        raise SpecValidationError(
            "code_configuration.scoring_script",
            f"{relative.as_posix()} is not in {code.name}/ (Python files there: {found or 'none'}); put the scoring "
            "script in the code folder or give its path relative to it.",
        )
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"), filename=script.name)
    except SyntaxError as error:
        raise SpecValidationError(
            "code_configuration.scoring_script", f"{script.name} line {error.lineno}: {error.msg}; fix it first."
        ) from error
    if missing := sorted({"init", "run"} - _top_level_names(tree)):
        raise SpecValidationError(
            "code_configuration.scoring_script",
            f"{script.name} does not define {' and '.join(missing)}(); the Azure ML inference server calls init() "
            "once to load the model (from AZUREML_MODEL_DIR) and run(raw_data) for every request.",
        )
    return relative.as_posix()


def _model_entity(model_path: str | Path) -> Any:
    """A ``custom_model`` Model for a local folder/file (uploaded at deployment), or an ``azureml:`` reference."""
    from azure.ai.ml.entities import Model

    if isinstance(model_path, str) and model_path.startswith("azureml://"):
        _check_no_secret(model_path, "model")
        return model_path  # e.g. a registry model: azureml://registries/<registry>/models/<name>/versions/<version>
    if isinstance(model_path, str) and model_path.startswith("azureml:"):
        if not _ASSET_REFERENCE.fullmatch(model_path):
            raise SpecValidationError(
                "model",
                f"{model_path!r} is not a model reference; use azureml:<name>:<version> or azureml:<name>@latest.",
            )
        return model_path
    if _is_remote(model_path):
        raise SpecValidationError(
            "model", f"{model_path!r}: register the model first and give azureml:<name>:<version>, or a local path."
        )
    local = Path(model_path).expanduser().resolve()
    if not local.exists():
        raise SpecValidationError("model", f"{local} does not exist; give the saved model's file or folder.")
    return Model(path=str(local), type="custom_model")


def build_online_deployment(
    name: str,
    endpoint_name: str,
    model_path: str | Path,
    code_dir: str | Path,
    scoring_script: str | Path,
    environment: Any,
    instance_type: str = "Standard_DS3_v2",
    instance_count: int = 1,
    environment_variables: Mapping[str, Any] | None = None,
    request_timeout_ms: int = 5000,
    max_concurrent_requests_per_instance: int = 4,
) -> ManagedOnlineDeployment:
    """A ``ManagedOnlineDeployment`` serving ``model_path`` with ``code_dir/scoring_script``, checked offline.

    ``model_path`` is a local file/folder (uploaded as an anonymous ``custom_model``; the script finds it under
    ``AZUREML_MODEL_DIR``) or ``azureml:<name>:<version>``. ``environment`` is an ``Environment`` (e.g. from
    :func:`build_environment`; it must contain ``azureml-inference-server-http``) or ``azureml:<name>:<version>``.
    The defaults suit a small CPU model answering well under a second: a 5 s timeout (at most 180 s), 4 requests
    at once per instance with ``WORKER_COUNT`` set to match (one model copy per worker, one per vCPU of a
    Standard_DS3_v2), and probes that wait 30 s for ``init()`` and restart a container that stops answering for
    a minute. Nothing is sent: create it with :func:`deploy_online`.
    """
    from azure.ai.ml.entities import (
        CodeConfiguration,
        Environment,
        ManagedOnlineDeployment,
        OnlineRequestSettings,
        ProbeSettings,
    )

    _check_endpoint_name(name, "name", kind="deployment")
    _check_endpoint_name(endpoint_name, "endpoint_name")
    code = Path(code_dir).expanduser().resolve()
    script = _check_scoring_code(code, scoring_script)
    model = _model_entity(model_path)
    if isinstance(environment, str):
        if not environment.startswith("azureml:"):
            raise SpecValidationError(
                "environment", f"{environment!r}: give an Environment (build_environment) or azureml:<name>:<version>."
            )
    elif not isinstance(environment, Environment):
        raise SpecValidationError(
            "environment", f"got {type(environment).__name__}; give an Environment or azureml:<name>:<version>."
        )
    elif (isinstance(environment.conda_file, dict) and "inference" not in str(environment.image or "")
          and INFERENCE_SERVER not in json.dumps(environment.conda_file).lower()):
        raise SpecValidationError(
            "environment",
            f"the environment lacks {INFERENCE_SERVER}, the server that calls init() and run(); the container would "
            "fail to start. Pin it in the lock file given to build_environment, or use an Azure ML inference image.",
        )
    if not instance_type or not isinstance(instance_type, str):
        raise SpecValidationError("instance_type", "give a VM size, e.g. 'Standard_DS3_v2' (4 vCPU, 14 GB).")
    if int(instance_count) < 1:
        raise SpecValidationError("instance_count", f"need at least 1 instance, got {instance_count}.")
    if not 1 <= int(request_timeout_ms) <= MAX_REQUEST_TIMEOUT_MS:
        raise SpecValidationError(
            "request_settings.request_timeout_ms",
            f"{request_timeout_ms} ms is outside 1..{MAX_REQUEST_TIMEOUT_MS} (a managed endpoint's limit); make the "
            "model faster or use a batch endpoint for long jobs.",
        )
    workers = int(max_concurrent_requests_per_instance)
    if workers < 1:
        raise SpecValidationError("request_settings.max_concurrent_requests_per_instance", "need at least 1.")
    variables = {str(k): str(v) for k, v in (environment_variables or {}).items()}
    _check_env_var_names(variables, "a deployment spec", "the endpoint's managed identity with Key Vault")
    if variables.setdefault("WORKER_COUNT", str(workers)) != str(workers):
        raise SpecValidationError(
            "environment_variables",
            f"WORKER_COUNT={variables['WORKER_COUNT']} but max_concurrent_requests_per_instance={workers}; set them "
            "equal (more requests than workers queue up, more workers than requests sit idle).",
        )
    _check_no_secret(json.dumps([str(model_path), str(environment) if isinstance(environment, str) else "",
                                 instance_type, variables]), "deployment")
    return ManagedOnlineDeployment(
        name=name,
        endpoint_name=endpoint_name,
        model=model,
        code_configuration=CodeConfiguration(code=str(code), scoring_script=script),
        environment=environment,
        instance_type=instance_type,
        instance_count=int(instance_count),
        environment_variables=variables,
        request_settings=OnlineRequestSettings(
            request_timeout_ms=int(request_timeout_ms), max_concurrent_requests_per_instance=workers
        ),
        liveness_probe=ProbeSettings(initial_delay=30, period=10, timeout=2, failure_threshold=6, success_threshold=1),
        readiness_probe=ProbeSettings(initial_delay=10, period=10, timeout=2, failure_threshold=3, success_threshold=1),
    )


def _load_spec(loader: Any, path: Path, fields: tuple[str, ...]) -> Any:
    """``loader(source=path)`` with the SDK's notices hidden; its errors become SpecValidationError naming a field."""
    text = path.read_text(encoding="utf-8")
    _check_no_secret(text, f"spec {path.name}")
    if not isinstance(yaml.safe_load(text), dict):
        raise SpecValidationError("spec", f"{path} is not a YAML mapping.")
    try:
        with _quiet_experimental_notices():
            return loader(source=path)
    except Exception as error:  # the SDK raises marshmallow / its own ValidationException
        field = _field_from_error(error, fields)
        message = f"{loader.__name__} rejected {path.name}: {redact(str(error))[:500]}"
        raise SpecValidationError(field, message) from error


def validate_endpoint_yaml(path: str | Path, expected: ManagedOnlineEndpoint | None = None) -> ManagedOnlineEndpoint:
    """The endpoint ``azure.ai.ml.load_online_endpoint`` reads from ``path``; SpecValidationError names a bad field.

    With ``expected`` (the endpoint that was dumped), name, auth mode, description and tags must match.
    """
    from azure.ai.ml import load_online_endpoint

    path = Path(path)
    endpoint = _load_spec(load_online_endpoint, path, ("auth_mode", "name", "description", "tags", "traffic"))
    _check_endpoint_name(endpoint.name, "name")
    if endpoint.auth_mode not in AUTH_MODES:
        raise SpecValidationError("auth_mode", f"{path.name} has {endpoint.auth_mode!r}; use one of {AUTH_MODES}.")
    if expected is None:
        return endpoint
    for field in ("name", "auth_mode", "description", "tags"):
        got, want = getattr(endpoint, field, None) or None, getattr(expected, field, None) or None
        if got != want:
            raise SpecValidationError(field, f"{path.name} has {got!r}, the endpoint built has {want!r}.")
    return endpoint


def _model_summary(model: Any, yaml_path: str | Path | None = None) -> tuple[str, str]:
    """("local", resolved path) for a model with a local path, else ("asset", reference without ``azureml:``)."""
    if isinstance(model, str) or model is None:
        return ("asset", _strip_azureml(model))
    local = getattr(model, "path", None)
    if local and not _is_remote(str(local)):
        folder = _code_from_yaml(local, yaml_path) if yaml_path is not None else Path(str(local)).expanduser()
        return ("local", str(folder.resolve()))
    return ("asset", _strip_azureml(str(local) if local else f"{model.name}:{model.version}"))


def _environment_summary(environment: Any) -> Any:
    """A reference without ``azureml:``, or (image, conda spec) of an inline Environment."""
    if environment is None or isinstance(environment, str):
        return _strip_azureml(environment)
    return (getattr(environment, "image", None), json.dumps(getattr(environment, "conda_file", None), sort_keys=True))


def validate_deployment_yaml(
    path: str | Path, expected: ManagedOnlineDeployment | None = None
) -> ManagedOnlineDeployment:
    """The deployment ``azure.ai.ml.load_online_deployment`` reads from ``path``, checked; SpecValidationError names
    the field that fails.

    The names, the code folder and scoring script, and a local model are checked as :func:`build_online_deployment`
    does. With ``expected`` (the deployment that was dumped), endpoint, VM size and count, code, model,
    environment, environment variables and request settings must match.
    """
    from azure.ai.ml import load_online_deployment

    path = Path(path)
    fields = ("endpoint_name", "instance_type", "instance_count", "environment_variables", "code_configuration",
              "scoring_script", "model", "environment", "request_settings", "liveness_probe", "readiness_probe", "name")
    deployment = _load_spec(load_online_deployment, path, fields)
    _check_endpoint_name(deployment.name, "name", kind="deployment")
    _check_endpoint_name(deployment.endpoint_name, "endpoint_name")
    config = deployment.code_configuration
    if config is None or not config.code or not config.scoring_script:
        raise SpecValidationError("code_configuration", f"{path.name} needs a code folder and a scoring_script.")
    code = _code_from_yaml(config.code, path)
    _check_scoring_code(code, config.scoring_script)
    kind, model = _model_summary(deployment.model, path)
    if kind == "local" and not Path(model).exists():
        raise SpecValidationError("model", f"{path.name} points at a model that does not exist: {Path(model).name}.")
    if expected is None:
        return deployment
    checks = {
        "name": (deployment.name, expected.name),
        "endpoint_name": (deployment.endpoint_name, expected.endpoint_name),
        "instance_type": (deployment.instance_type, expected.instance_type),
        "instance_count": (deployment.instance_count, expected.instance_count),
        "code_configuration.scoring_script": (Path(config.scoring_script).as_posix(),
                                              Path(expected.code_configuration.scoring_script).as_posix()),
        "model": ((kind, model), _model_summary(expected.model)),
        "environment": (_environment_summary(deployment.environment), _environment_summary(expected.environment)),
        "environment_variables": (dict(deployment.environment_variables or {}),
                                  dict(expected.environment_variables or {})),
    }
    for setting in ("request_timeout_ms", "max_concurrent_requests_per_instance"):
        checks[f"request_settings.{setting}"] = (getattr(deployment.request_settings, setting, None),
                                                 getattr(expected.request_settings, setting, None))
    for field, (got, want) in checks.items():
        if got != want:
            raise SpecValidationError(field, f"{path.name} has {got!r}, the deployment built has {want!r}.")
    if not _same_local_path(code, expected.code_configuration.code):
        raise SpecValidationError("code_configuration.code", f"{path.name} points at another code folder.")
    return deployment


def split_traffic(current: Mapping[str, int], deployment: str, share: int) -> dict[str, int]:
    """Traffic (%) giving ``deployment`` ``share`` and the other live deployments the rest in their current ratio.

    E.g. ``split_traffic({"blue": 100}, "green", 10) == {"blue": 90, "green": 10}`` (a canary); shares are whole
    percent summing to 100 (largest remainders round up), or to 0 when ``share`` is 0 and nothing else is live.
    SpecValidationError if ``0 < share < 100`` and no other deployment has traffic to take the rest.
    """
    share = int(share)
    if not 0 <= share <= 100:
        raise SpecValidationError("traffic", f"give a percentage 0..100, got {share}.")
    others = {k: int(v) for k, v in current.items() if k != deployment and int(v) > 0}
    rest, total = 100 - share, sum(others.values())
    if 0 < share < 100 and not total:
        raise SpecValidationError(
            "traffic", f"{share}% to {deployment!r} leaves {rest}% with no other live deployment to take it; use 100 "
            "(or 0 to test it first with the azureml-model-deployment header)."
        )
    exact = {k: rest * v / total for k, v in others.items()} if total else {}
    split = {k: int(v) for k, v in exact.items()}
    for key in sorted(exact, key=lambda k: exact[k] - split[k], reverse=True)[: rest - sum(split.values())]:
        split[key] += 1
    split[deployment] = share
    return {k: v for k, v in split.items() if v > 0}


def deploy_online(
    ml_client: MLClient, endpoint: ManagedOnlineEndpoint, deployment: ManagedOnlineDeployment, traffic: int = 100
) -> str:
    """Create or update ``endpoint``, then ``deployment`` on it, then route ``traffic`` % to it; its scoring URI.

    Each step waits for Azure (a new deployment takes about 10 minutes). An existing endpoint keeps its live
    traffic until the new deployment is ready; with ``traffic < 100`` the other deployments share the rest
    (:func:`split_traffic`). ``endpoint.traffic`` ends up as the live split. Needs a workspace and permission to
    create endpoints; the instances cost money while they run (delete the endpoint with
    ``ml_client.online_endpoints.begin_delete(name)`` when done).
    """
    from azure.core.exceptions import ResourceNotFoundError

    if deployment.endpoint_name != endpoint.name:
        raise SpecValidationError(
            "endpoint_name", f"the deployment is for {deployment.endpoint_name!r}, the endpoint is {endpoint.name!r}."
        )
    try:
        live = ml_client.online_endpoints.get(endpoint.name)
    except ResourceNotFoundError:
        live = None
    live_traffic = dict(getattr(live, "traffic", None) or {})
    new_traffic = split_traffic(live_traffic, deployment.name, traffic)  # fails before anything is created
    endpoint.traffic = live_traffic  # an update must not switch live traffic off
    ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    ml_client.online_deployments.begin_create_or_update(deployment).result()
    endpoint.traffic = new_traffic
    updated = ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    uri = getattr(updated, "scoring_uri", None)
    return uri if uri else ml_client.online_endpoints.get(endpoint.name).scoring_uri
