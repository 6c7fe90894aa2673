"""Azure ML v2 helpers, offline: workspace discovery, data asset and command job YAML round trips, no secrets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import azure as hz
from helpers.errors import SpecValidationError, WorkspaceNotConfigured

# azure-ai-ml's schemas use marshmallow APIs that marshmallow 4 changes; not ours to fix, so not shown here.
pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
]

SUB = "12345678-1234-1234-1234-1234567890ab"
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
ENV = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
COMMAND = "python train.py --data ${{inputs.data}} --epochs ${{inputs.epochs}} --out ${{outputs.model}}"


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No workspace in the environment, cwd in tmp, and DefaultAzureCredential must never be created."""
    for name in hz.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

    def no_credential(*args, **kwargs):
        raise AssertionError("DefaultAzureCredential must not be created in tests")

    monkeypatch.setattr("azure.identity.DefaultAzureCredential", no_credential)


@pytest.fixture
def data_folder(tmp_path) -> Path:
    folder = tmp_path / "pneumo"
    folder.mkdir()
    (folder / "manifest.csv").write_text("path,patient_id\na.png,001\n")
    return folder


@pytest.fixture
def code_folder(tmp_path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text("print('train')\n")
    return folder


def _no_guid(path: Path) -> None:
    text = path.read_text()
    assert not GUID.search(text) and "subscriptions/" not in text.lower(), text


# --- Workspace ---------------------------------------------------------------------------------------


def test_workspace_config_is_none_when_nothing_is_set(tmp_path):
    assert hz.workspace_config() is None
    assert hz.workspace_config(tmp_path) is None


def test_workspace_config_from_env_needs_all_three(monkeypatch):
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUB)
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg-med")
    assert hz.workspace_config() is None
    monkeypatch.setenv("AZUREML_WORKSPACE_NAME", "ws-med")
    config = hz.workspace_config()
    assert dict(config) == {"subscription_id": SUB, "resource_group": "rg-med", "workspace_name": "ws-med",
                            "source": "environment"}
    assert SUB not in repr(config) and SUB not in str(config) and "****" in repr(config)


def test_workspace_config_found_in_parent_folder_like_from_config(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"subscription_id": SUB, "resource_group": "rg",
                                                      "workspace_name": "ws"}))
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    config = hz.workspace_config()
    assert config["workspace_name"] == "ws" and config["source"] == str(tmp_path / "config.json")
    # .azureml/ has priority, as in MLClient.from_config; files without workspace keys are ignored
    (nested / "config.json").write_text(json.dumps({"editor": "vim"}))
    (tmp_path / ".azureml").mkdir()
    scope = f"/subscriptions/{SUB}/resourceGroups/rg2/providers/Microsoft.MachineLearningServices/workspaces/ws2"
    (tmp_path / ".azureml" / "config.json").write_text(json.dumps({"Scope": scope}))
    assert (hz.workspace_config()["resource_group"], hz.workspace_config()["workspace_name"]) == ("rg2", "ws2")


def test_get_ml_client_without_workspace_lists_the_steps():
    with pytest.raises(WorkspaceNotConfigured) as info:
        hz.get_ml_client()
    message = str(info.value)
    for step in ("config.json", "AZURE_SUBSCRIPTION_ID", "AZUREML_WORKSPACE_NAME", "az login", "azure-ai-ml"):
        assert step in message


def test_get_ml_client_with_config_builds_offline_with_given_credential():
    class FakeCredential:
        def get_token(self, *scopes, **kwargs):
            raise AssertionError("no token may be requested in tests")

    config = {"subscription_id": SUB, "resource_group": "rg", "workspace_name": "ws"}
    client = hz.get_ml_client(config, credential=FakeCredential())
    assert client.workspace_name == "ws"


def test_redact_masks_subscription_and_sas():
    text = f"azureml://subscriptions/{SUB}/resourcegroups/rg https://a.blob.core.windows.net/c?sv=1&sig=abc%3D"
    out = hz.redact(text)
    assert SUB not in out and "sig=abc" not in out and "subscriptions/<subscription-id>" in out


# --- Data assets -------------------------------------------------------------------------------------


def test_data_asset_yaml_round_trip_local_folder(tmp_path, data_folder):
    data = hz.build_data_asset("pneumo-manifest", data_folder, 1, "Pneumonia split v1", {"sha256": "ab" * 32})
    spec = hz.dump_spec(data, tmp_path / "specs" / "data.yml")
    hz.dump_spec(data, spec)  # overwriting is fine (entity.dump alone refuses existing files)
    loaded = hz.validate_data_asset_yaml(spec, expected=data)
    assert (loaded.name, loaded.version, loaded.type) == ("pneumo-manifest", "1", "uri_folder")
    assert Path(loaded.path) == data_folder.resolve()
    assert loaded.description == "Pneumonia split v1" and loaded.tags == {"sha256": "ab" * 32}
    _no_guid(spec)


@pytest.mark.parametrize(
    ("uri", "asset_type", "expected"),
    [
        ("azureml://datastores/workspaceblobstore/paths/pneumo/", "uri_folder",
         "azureml://datastores/workspaceblobstore/paths/pneumo/"),
        ("https://example.blob.core.windows.net/open/pneumo.csv", "uri_file",
         "https://example.blob.core.windows.net/open/pneumo.csv"),
        (f"azureml://subscriptions/{SUB}/resourcegroups/rg/workspaces/ws/datastores/blob/paths/x/", "uri_folder",
         "azureml://datastores/blob/paths/x/"),
    ],
)
def test_data_asset_yaml_round_trip_cloud_uris(tmp_path, uri, asset_type, expected):
    data = hz.build_data_asset("pneumo", uri, "2", asset_type=asset_type)
    assert data.path == expected  # the long form (with the subscription id) is shortened
    spec = hz.dump_spec(data, tmp_path / "data.yml")
    loaded = hz.validate_data_asset_yaml(spec, expected=data)
    assert (loaded.path, loaded.type, loaded.version) == (expected, asset_type, "2")
    _no_guid(spec)


def _tamper(spec: Path, field: str, value) -> None:
    """Set ``field`` (dotted for nested keys, e.g. ``code_configuration.code``) in a YAML spec; None removes it."""
    raw = yaml.safe_load(spec.read_text())
    *parents, key = field.split(".")
    holder = raw
    for part in parents:
        holder = holder[part]
    if value is None:
        holder.pop(key)
    else:
        holder[key] = value
    spec.write_text(yaml.safe_dump(raw))


@pytest.mark.parametrize(
    ("field", "value", "named", "with_expected"),
    [
        ("type", "uri_file", "type", True),  # valid type, but not what was built
        ("type", "uri_file", "type", False),  # ... and a folder is not a file
        ("type", "folder", "type", False),  # not a type at all
        ("version", None, "version", False),
        ("name", "other", "name", True),
        ("path", "azureml://datastores/blob/paths/elsewhere/", "path", True),
    ],
)
def test_tampered_data_asset_yaml_fails_naming_the_field(tmp_path, data_folder, field, value, named, with_expected):
    data = hz.build_data_asset("pneumo", data_folder, 1)
    spec = hz.dump_spec(data, tmp_path / "data.yml")
    _tamper(spec, field, value)
    with pytest.raises(SpecValidationError) as info:
        hz.validate_data_asset_yaml(spec, expected=data if with_expected else None)
    assert info.value.field == named


def test_build_data_asset_refuses_bad_input(tmp_path, data_folder):
    with pytest.raises(SpecValidationError, match="does not exist") as info:
        hz.build_data_asset("x", tmp_path / "missing", 1)
    assert info.value.field == "path"
    with pytest.raises(SpecValidationError) as info:
        hz.build_data_asset("x", data_folder, 1, asset_type="uri_file")
    assert info.value.field == "type"
    with pytest.raises(SpecValidationError, match="SAS"):
        hz.build_data_asset("x", "https://a.blob.core.windows.net/c/f.csv?sv=2024&sig=secret", 1, asset_type="uri_file")
    with pytest.raises(SpecValidationError) as info:
        hz.build_data_asset("bad name!", data_folder, 1)
    assert info.value.field == "name"
    with pytest.raises(SpecValidationError):
        hz.build_data_asset("x", data_folder, "")


def test_dump_spec_refuses_a_guid_and_leaves_no_file(tmp_path, data_folder):
    data = hz.build_data_asset("x", data_folder, 1)
    data.tags = {"subscription": SUB}  # slipped in after building
    with pytest.raises(SpecValidationError, match="GUID"):
        hz.dump_spec(data, tmp_path / "leak.yml")
    assert not (tmp_path / "leak.yml").exists()


def test_register_data_asset_calls_create_or_update(data_folder):
    calls = []

    class FakeData:
        def create_or_update(self, data):
            calls.append(data)
            return data

    class FakeClient:
        data = FakeData()

    data = hz.build_data_asset("pneumo", data_folder, 1)
    assert hz.register_data_asset(FakeClient(), data) is data and calls == [data]


# --- Jobs --------------------------------------------------------------------------------------------


def test_job_input_modes(data_folder):
    data = hz.build_data_asset("pneumo", data_folder, 3)
    mounted = hz.job_input(data)
    assert (mounted.path, mounted.type, mounted.mode) == ("azureml:pneumo:3", "uri_folder", "ro_mount")
    downloaded = hz.job_input("azureml://datastores/blob/paths/p/", mode="download")
    assert downloaded.mode == "download"
    local = hz.job_input(data_folder / "manifest.csv", mode="download")
    assert (local.type, Path(local.path)) == ("uri_file", (data_folder / "manifest.csv").resolve())
    with pytest.raises(SpecValidationError):
        hz.job_input(data_folder / "missing")
    with pytest.raises(ValueError, match="MOUNT_VS_DOWNLOAD"):
        hz.job_input(data, mode="copy")
    assert "ro_mount" in hz.MOUNT_VS_DOWNLOAD and "download" in hz.MOUNT_VS_DOWNLOAD


def _job(code_folder, data_folder, **overrides):
    data = hz.build_data_asset("pneumo", data_folder, 1)
    kwargs = dict(code_dir=code_folder, command=COMMAND, environment=ENV, compute="cpu-cluster",
                  inputs={"data": hz.job_input(data, mode="download"), "epochs": 3}, outputs={"model": None},
                  display_name="train-baseline", experiment_name="pneumo-cls")
    kwargs.update(overrides)
    return hz.build_command_job(**kwargs)


def test_command_job_yaml_round_trip(tmp_path, code_folder, data_folder):
    job = _job(code_folder, data_folder)
    spec = hz.dump_spec(job, tmp_path / "job.yml")
    loaded = hz.validate_job_yaml(spec, expected=job)
    assert loaded.command == COMMAND and loaded.experiment_name == "pneumo-cls"
    raw = yaml.safe_load(spec.read_text())
    assert raw["type"] == "command" and raw["inputs"]["data"] == {"mode": "download", "path": "azureml:pneumo:1",
                                                                   "type": "uri_folder"}
    _no_guid(spec)


def test_tampered_job_yaml_fails_naming_the_field(tmp_path, code_folder, data_folder):
    job = _job(code_folder, data_folder)
    spec = hz.dump_spec(job, tmp_path / "job.yml")
    _tamper(spec, "compute", "azureml:gpu-cluster")
    with pytest.raises(SpecValidationError) as info:
        hz.validate_job_yaml(spec, expected=job)
    assert info.value.field == "compute"
    spec = hz.dump_spec(job, tmp_path / "job.yml")
    raw = yaml.safe_load(spec.read_text())
    raw["inputs"]["data"]["mode"] = "ro_mount"
    spec.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecValidationError) as info:
        hz.validate_job_yaml(spec, expected=job)
    assert info.value.field == "inputs"


def test_command_job_checks_bindings_and_secrets(code_folder, data_folder):
    with pytest.raises(SpecValidationError, match="inputs.labels") as info:
        _job(code_folder, data_folder, command=COMMAND + " --labels ${{inputs.labels}}")
    assert info.value.field == "command"
    for name in ("STORAGE_ACCOUNT_KEY", "HF_TOKEN", "DB_PASSWORD", "BLOB_CONNECTION_STRING"):
        with pytest.raises(SpecValidationError) as info:
            _job(code_folder, data_folder, environment_variables={name: "x"})
        assert info.value.field == "environment_variables"
    allowed = _job(code_folder, data_folder, environment_variables={"TOKENIZERS_PARALLELISM": "false"})
    assert allowed.environment_variables == {"TOKENIZERS_PARALLELISM": "false"}
    with pytest.raises(SpecValidationError) as info:
        _job(code_folder / "missing", data_folder)
    assert info.value.field == "code"


def test_job_with_local_input_is_not_dumped_to_a_broken_spec(tmp_path, code_folder, data_folder):
    job = _job(code_folder, data_folder, inputs={"data": data_folder, "epochs": 3})
    assert Path(job.inputs["data"].path) == data_folder.resolve()  # fine to submit from Python
    with pytest.raises(SpecValidationError, match="local path") as info:
        hz.dump_spec(job, tmp_path / "job.yml")  # azure-ai-ml would write path: azureml:/...
    assert info.value.field == "inputs" and not (tmp_path / "job.yml").exists()


def test_no_guid_in_any_dumped_yaml(tmp_path, code_folder, data_folder):
    specs = [hz.dump_spec(hz.build_data_asset("p", data_folder, 1), tmp_path / "out" / "d.yml"),
             hz.dump_spec(_job(code_folder, data_folder), tmp_path / "out" / "j.yml")]
    for spec in specs:
        _no_guid(spec)


def test_importing_the_modules_does_not_load_the_sdks():
    code = ("import sys, helpers.azure, helpers.tracking\n"
            "print(','.join(m for m in ('azure.ai.ml', 'azure.identity', 'mlflow') if m in sys.modules) or 'none')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"


def test_dumped_data_asset_holds_a_relative_path_that_loads_back(tmp_path):
    data_dir = tmp_path / "data" / "images"
    data_dir.mkdir(parents=True)
    (data_dir / "a.dcm").write_bytes(b"x")
    asset = hz.build_data_asset("imgs", data_dir, version="1")
    spec = hz.dump_spec(asset, tmp_path / "data" / "imgs.yml")
    text = spec.read_text()
    assert "path: images" in text and str(tmp_path) not in text
    loaded = hz.validate_data_asset_yaml(spec, expected=asset)
    assert Path(loaded.path).resolve() == data_dir.resolve()


# --- Environments and sweeps ---------------------------------------------------------------------

LOCK = Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"


def test_lock_requirements_reads_pins_only(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# header\n--extra-index-url https://example.org\nnumpy==2.4.6  # pinned\n\ntorch==2.14.1\n"
                    "Scikit_Learn==1.9.1\n")
    assert hz.lock_requirements(lock) == ["numpy==2.4.6", "torch==2.14.1", "Scikit_Learn==1.9.1"]
    assert hz.lock_requirements(lock, exclude=("scikit-learn",)) == ["numpy==2.4.6", "torch==2.14.1"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(SpecValidationError, match="no pinned"):
        hz.lock_requirements(tmp_path / "empty.txt")


def test_environment_pins_the_project_lock():
    env = hz.build_environment(LOCK)
    pins = env.conda_file["dependencies"][-1]["pip"]
    assert "torch==2.14.1" in pins and "pydicom==3.0.2" in pins
    assert not any(p.startswith("-") for p in pins) and env.image == hz.DEFAULT_IMAGE
    assert "python=3.11" in env.conda_file["dependencies"]


def _sweep_trial(code_folder, data_folder, command=None):
    data = hz.build_data_asset("pneumo", data_folder, 1)
    return hz.build_command_job(
        code_dir=code_folder, environment=hz.build_environment(LOCK), compute="cpu-cluster",
        command=command or "python train.py --data ${{inputs.data}} --lr ${{search_space.lr}} "
                           "--model ${{search_space.model}}",
        inputs={"data": hz.job_input(data, mode="download")}, display_name="chest", experiment_name="chest-xray")


def test_sweep_job_yaml_round_trip_with_relative_code(tmp_path, code_folder, data_folder):
    from azure.ai.ml.sweep import Choice, LogUniform

    sweep = hz.build_sweep_job(_sweep_trial(code_folder, data_folder),
                               {"lr": LogUniform(min_value=-9, max_value=-4), "model": Choice(["small_cnn", "resnet18"])},
                               primary_metric="val_auc", max_total_trials=6, max_concurrent_trials=2, timeout_s=1800)
    spec = hz.dump_spec(sweep, tmp_path / "specs" / "sweep.yml")
    raw = yaml.safe_load(spec.read_text())
    assert raw["type"] == "sweep" and raw["trial"]["code"] == "../src"  # relative: no machine path in the spec
    assert raw["objective"] == {"goal": "maximize", "primary_metric": "val_auc"}
    assert raw["early_termination"]["type"] == "bandit" and raw["inputs"]["data"]["path"] == "azureml:pneumo:1"
    loaded = hz.validate_sweep_yaml(spec, expected=sweep)
    assert loaded.limits.max_total_trials == 6 and sorted(loaded.search_space) == ["lr", "model"]
    assert (spec.parent / loaded.trial.code).resolve() == code_folder.resolve()  # the SDK keeps it relative
    _no_guid(spec)
    raw["objective"]["primary_metric"] = "val_loss"
    spec.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecValidationError) as err:
        hz.validate_sweep_yaml(spec, expected=sweep)
    assert err.value.field == "objective"


def test_sweep_job_refuses_unused_or_undefined_search_values(code_folder, data_folder):
    from azure.ai.ml.sweep import Choice

    trial = _sweep_trial(code_folder, data_folder)
    with pytest.raises(SpecValidationError, match="never used") as err:
        hz.build_sweep_job(trial, {"lr": Choice([1e-3]), "model": Choice(["a"]), "batch": Choice([8])}, "val_auc")
    assert err.value.field == "search_space"
    with pytest.raises(SpecValidationError, match="does not define") as err:
        hz.build_sweep_job(trial, {"lr": Choice([1e-3])}, "val_auc")
    assert err.value.field == "command"
    with pytest.raises(SpecValidationError) as err:
        hz.build_sweep_job(trial, {"lr": Choice([1e-3]), "model": Choice(["a"])}, "val_auc", goal="max")
    assert err.value.field == "goal"


def test_command_job_spec_holds_a_relative_code_folder(tmp_path, code_folder, data_folder):
    job = _job(code_folder, data_folder)
    spec = hz.dump_spec(job, tmp_path / "deep" / "job.yml")
    assert yaml.safe_load(spec.read_text())["code"] == "../src"
    assert str(tmp_path) not in spec.read_text()
    hz.validate_job_yaml(spec, expected=job)  # resolved from the YAML's folder, not from the working directory


# --- Online endpoints ------------------------------------------------------------------------------

SCORE = ("import json\n\ndef init():\n    global model\n    model = 'loaded'\n\n"
         "def run(raw_data):\n    return json.loads(raw_data)\n")
URI = "https://chest-xray.westeurope.inference.ml.azure.com/score"


@pytest.fixture
def serve_folder(tmp_path) -> Path:
    folder = tmp_path / "serve"
    folder.mkdir()
    (folder / "score.py").write_text(SCORE)
    return folder


@pytest.fixture
def model_folder(tmp_path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.pt").write_bytes(b"\x00\x01weights")
    return folder


@pytest.fixture
def inference_env(tmp_path):
    lock = tmp_path / "infer-lock.txt"
    lock.write_text("numpy==2.4.6\nazureml-inference-server-http==1.4.0\n")
    return hz.build_environment(lock, name="medimg-infer")


def _deployment(serve_folder, model_folder, environment="azureml:medimg-infer:2", **overrides):
    kwargs = dict(name="blue", endpoint_name="chest-xray", model_path=model_folder, code_dir=serve_folder,
                  scoring_script="score.py", environment=environment, environment_variables={"LOG_LEVEL": "info"})
    kwargs.update(overrides)
    return hz.build_online_deployment(**kwargs)


@pytest.mark.parametrize("auth_mode", ["key", "aml_token"])
def test_online_endpoint_yaml_round_trip(tmp_path, auth_mode):
    endpoint = hz.build_online_endpoint("chest-xray", "Pneumonia classifier", auth_mode, {"model": "resnet18"})
    spec = hz.dump_spec(endpoint, tmp_path / "specs" / "endpoint.yml")  # the SDK's own dump writes nothing here
    raw = yaml.safe_load(spec.read_text())
    assert (raw["name"], raw["auth_mode"], raw["tags"]) == ("chest-xray", auth_mode, {"model": "resnet18"})
    loaded = hz.validate_endpoint_yaml(spec, expected=endpoint)
    assert (loaded.name, loaded.auth_mode, loaded.description, loaded.tags) == (
        "chest-xray", auth_mode, "Pneumonia classifier", {"model": "resnet18"})
    _no_guid(spec)


@pytest.mark.parametrize(
    ("name", "hint"),
    [("ab", ""), ("a" * 33, ""), ("1chest", ""), ("chest_xray", "'chest-xray'"), ("chest-", "'chest'"),
     ("chest--xray", "'chest-xray'"), ("chest.xray", "'chest-xray'"), ("CXR-v1", "'cxr-v1'")],
)
def test_endpoint_name_rules(name, hint):
    with pytest.raises(SpecValidationError, match="3-32 characters, a letter first") as info:
        hz.build_online_endpoint(name)
    assert info.value.field == "name" and hint in str(info.value) and "unique in the Azure region" in str(info.value)


def test_valid_endpoint_names_and_other_checks():
    for name in ("abc", "a" * 32, "cxr-2024-v1", "chest-xray"):
        assert hz.build_online_endpoint(name).name == name
    with pytest.raises(SpecValidationError) as info:
        hz.build_online_endpoint("chest-xray", auth_mode="aad_token")
    assert info.value.field == "auth_mode"
    with pytest.raises(SpecValidationError, match="GUID") as info:
        hz.build_online_endpoint("chest-xray", tags={"subscription": SUB})
    assert info.value.field == "tags/description"


def test_tampered_endpoint_yaml_fails_naming_the_field(tmp_path):
    endpoint = hz.build_online_endpoint("chest-xray")
    for field, value in (("auth_mode", "aml_token"), ("name", "chest-xray-2"), ("name", "chest_xray"),
                         ("auth_mode", "password")):
        spec = hz.dump_spec(endpoint, tmp_path / "endpoint.yml")
        _tamper(spec, field, value)
        with pytest.raises(SpecValidationError) as info:
            hz.validate_endpoint_yaml(spec, expected=endpoint)
        assert info.value.field == field, (field, value)


def test_online_deployment_yaml_round_trip_with_local_model(tmp_path, serve_folder, model_folder, inference_env):
    deployment = _deployment(serve_folder, model_folder, inference_env)
    spec = hz.dump_spec(deployment, tmp_path / "specs" / "blue.yml")
    text = spec.read_text()
    raw = yaml.safe_load(text)
    assert raw["code_configuration"] == {"code": "../serve", "scoring_script": "score.py"}
    assert raw["model"]["path"] == "../model" and raw["model"]["type"] == "custom_model"
    assert "name" not in raw["model"] and "version" not in raw["model"]  # rehashed from the files when loaded
    assert str(tmp_path) not in text and not re.search(r":\s+/", text)  # no absolute path anywhere
    assert raw["environment_variables"] == {"LOG_LEVEL": "info", "WORKER_COUNT": "4"}
    assert raw["request_settings"] == {"request_timeout_ms": 5000, "max_concurrent_requests_per_instance": 4}
    _no_guid(spec)
    # cwd is tmp_path (autouse fixture): ../serve only resolves from the YAML's folder
    loaded = hz.validate_deployment_yaml(spec, expected=deployment)
    assert (loaded.name, loaded.endpoint_name, loaded.instance_type, loaded.instance_count) == (
        "blue", "chest-xray", "Standard_DS3_v2", 1)
    assert (spec.parent / loaded.code_configuration.code).resolve() == serve_folder.resolve()
    assert loaded.code_configuration.scoring_script == "score.py"
    assert Path(loaded.model.path).resolve() == model_folder.resolve()
    assert loaded.model.name == deployment.model.name  # same content hash: the same files
    assert loaded.environment_variables == {"LOG_LEVEL": "info", "WORKER_COUNT": "4"}
    assert loaded.environment.conda_file == inference_env.conda_file
    assert (loaded.liveness_probe.initial_delay, loaded.readiness_probe.failure_threshold) == (30, 3)


def test_online_deployment_with_registered_model_and_environment(tmp_path, serve_folder):
    deployment = hz.build_online_deployment("green", "chest-xray", "azureml:chest-cls:3", serve_folder, "score.py",
                                            "azureml:medimg-infer:2", instance_count=2,
                                            max_concurrent_requests_per_instance=2)
    spec = hz.dump_spec(deployment, tmp_path / "green.yml")
    raw = yaml.safe_load(spec.read_text())
    assert (raw["model"], raw["environment"], raw["instance_count"]) == (
        "azureml:chest-cls:3", "azureml:medimg-infer:2", 2)
    assert raw["environment_variables"] == {"WORKER_COUNT": "2"}
    loaded = hz.validate_deployment_yaml(spec, expected=deployment)
    assert (loaded.model, loaded.environment) == ("chest-cls:3", "medimg-infer:2")  # the loader drops "azureml:"


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"code_dir": "missing"}, "code_configuration.code", "not a folder"),
        ({"scoring_script": "predict.py"}, "code_configuration.scoring_script", "score.py"),
        ({"scoring_script": "../score.py"}, "code_configuration.scoring_script", "inside the code folder"),
        ({"model_path": "no-such-model"}, "model", "does not exist"),
        ({"model_path": "azureml:chest-cls"}, "model", "azureml:<name>:<version>"),
        ({"model_path": "https://example.org/m.pt"}, "model", "register the model"),
        ({"name": "blue_1"}, "name", "'blue-1'"),
        ({"endpoint_name": "x"}, "endpoint_name", "3-32 characters"),
        ({"environment": 42}, "environment", "Environment"),
        ({"environment": "python:3.11"}, "environment", "azureml:"),
        ({"instance_count": 0}, "instance_count", "at least 1"),
        ({"request_timeout_ms": 200_000}, "request_settings.request_timeout_ms", "180000"),
        ({"environment_variables": {"STORAGE_ACCOUNT_KEY": "x"}}, "environment_variables", "secret"),
        ({"environment_variables": {"WORKER_COUNT": "1"}}, "environment_variables", "set them equal"),
    ],
)
def test_online_deployment_refuses_bad_input(tmp_path, serve_folder, model_folder, overrides, field, says):
    overrides = {k: (tmp_path / v if k in ("code_dir", "model_path") and not v.startswith(("azureml:", "https:"))
                     else v) for k, v in overrides.items()}
    with pytest.raises(SpecValidationError) as info:
        _deployment(serve_folder, model_folder, **overrides)
    assert info.value.field == field and says in str(info.value), str(info.value)


def test_inline_environment_needs_the_inference_server(tmp_path, serve_folder, model_folder):
    lock = tmp_path / "train-lock.txt"
    lock.write_text("numpy==2.4.6\ntorch==2.14.1\n")
    with pytest.raises(SpecValidationError, match="azureml-inference-server-http") as info:
        _deployment(serve_folder, model_folder, hz.build_environment(lock))
    assert info.value.field == "environment"
    inference_image = hz.build_environment(lock, image="mcr.microsoft.com/azureml/minimal-ubuntu22.04-py311-cpu-inference:latest")
    assert _deployment(serve_folder, model_folder, inference_image).environment is inference_image


def test_scoring_script_must_parse_and_define_init_and_run(serve_folder, model_folder):
    (serve_folder / "score.py").write_text("def init():\n    pass\n")
    with pytest.raises(SpecValidationError, match=r"does not define run\(\)") as info:
        _deployment(serve_folder, model_folder, "azureml:medimg-infer:2")
    assert info.value.field == "code_configuration.scoring_script"
    (serve_folder / "score.py").write_text("def init(:\n")
    with pytest.raises(SpecValidationError, match="line 1") as info:
        _deployment(serve_folder, model_folder, "azureml:medimg-infer:2")
    assert info.value.field == "code_configuration.scoring_script"
    (serve_folder / "app").mkdir()
    (serve_folder / "app" / "score.py").write_text("from helpers.serving import init, run\n")  # imported is fine
    deployment = _deployment(serve_folder, model_folder, "azureml:medimg-infer:2", scoring_script=Path("app/score.py"))
    assert deployment.code_configuration.scoring_script == "app/score.py"


@pytest.mark.parametrize(
    ("dotted", "value", "field"),
    [
        ("instance_count", 3, "instance_count"),
        ("instance_type", "Standard_F4s_v2", "instance_type"),
        ("endpoint_name", "chest-xray-2", "endpoint_name"),
        ("code_configuration.scoring_script", "other.py", "code_configuration.scoring_script"),
        ("code_configuration.scoring_script", "gone.py", "code_configuration.scoring_script"),
        ("code_configuration.code", "../other", "code_configuration.code"),
        ("model.path", "../other", "model"),
        ("model.path", "../gone", "model"),
        ("environment_variables.WORKER_COUNT", "2", "environment_variables"),
        ("request_settings.request_timeout_ms", 60000, "request_settings.request_timeout_ms"),
        ("environment", "azureml:other-env:1", "environment"),
        ("instance_count", "many", "instance_count"),  # rejected by the SDK's loader
    ],
)
def test_tampered_deployment_yaml_fails_naming_the_field(tmp_path, serve_folder, model_folder, inference_env,
                                                         dotted, value, field):
    (serve_folder / "other.py").write_text(SCORE)
    other = tmp_path / "other"
    other.mkdir()
    (other / "score.py").write_text(SCORE)
    deployment = _deployment(serve_folder, model_folder, inference_env)
    spec = hz.dump_spec(deployment, tmp_path / "specs" / "blue.yml")
    hz.validate_deployment_yaml(spec, expected=deployment)  # untouched: fine
    _tamper(spec, dotted, value)
    with pytest.raises(SpecValidationError) as info:
        hz.validate_deployment_yaml(spec, expected=deployment)
    assert info.value.field == field


def test_deployment_yaml_without_expected_still_checks_the_files(tmp_path, serve_folder, model_folder):
    spec = hz.dump_spec(_deployment(serve_folder, model_folder, "azureml:medimg-infer:2"), tmp_path / "blue.yml")
    (serve_folder / "score.py").unlink()
    with pytest.raises(SpecValidationError) as info:
        hz.validate_deployment_yaml(spec)
    assert info.value.field == "code_configuration.scoring_script"


def test_split_traffic_by_hand():
    assert hz.split_traffic({}, "blue", 100) == {"blue": 100}
    assert hz.split_traffic({"blue": 100}, "green", 10) == {"blue": 90, "green": 10}
    assert hz.split_traffic({"blue": 90, "green": 10}, "green", 100) == {"green": 100}
    assert hz.split_traffic({"blue": 70, "green": 30}, "red", 50) == {"blue": 35, "green": 15, "red": 50}
    assert hz.split_traffic({"a": 50, "b": 50}, "c", 33) == {"a": 34, "b": 33, "c": 33}  # 33.5 each: one rounds up
    assert hz.split_traffic({}, "blue", 0) == {}  # deployed, reachable only with the deployment header
    with pytest.raises(SpecValidationError, match="no other live deployment") as info:
        hz.split_traffic({}, "blue", 10)
    assert info.value.field == "traffic"
    with pytest.raises(SpecValidationError):
        hz.split_traffic({"blue": 100}, "green", 101)


class _Poller:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class _FakeMLClient:
    """Records online endpoint/deployment calls; ``live`` is the endpoint's traffic in Azure (None: no endpoint)."""

    def __init__(self, live=None):
        from types import SimpleNamespace

        from azure.core.exceptions import ResourceNotFoundError

        self.calls, self.live = [], live
        client = self

        def get(name):
            client.calls.append(("get", name))
            if client.live is None:
                raise ResourceNotFoundError("not found")
            return SimpleNamespace(name=name, traffic=dict(client.live), scoring_uri=URI)

        def create_endpoint(endpoint):
            client.calls.append(("endpoint", dict(endpoint.traffic)))
            client.live = dict(endpoint.traffic)
            return _Poller(SimpleNamespace(name=endpoint.name, traffic=dict(endpoint.traffic), scoring_uri=URI))

        def create_deployment(deployment):
            client.calls.append(("deployment", deployment.name))
            return _Poller(deployment)

        self.online_endpoints = SimpleNamespace(get=get, begin_create_or_update=create_endpoint)
        self.online_deployments = SimpleNamespace(begin_create_or_update=create_deployment)


def test_deploy_online_creates_endpoint_then_deployment_then_routes_traffic(serve_folder, model_folder):
    endpoint = hz.build_online_endpoint("chest-xray")
    client = _FakeMLClient(live=None)
    uri = hz.deploy_online(client, endpoint, _deployment(serve_folder, model_folder, "azureml:medimg-infer:2"))
    assert uri == URI
    assert client.calls == [("get", "chest-xray"), ("endpoint", {}), ("deployment", "blue"),
                            ("endpoint", {"blue": 100})]


def test_deploy_online_canary_keeps_live_traffic_until_ready(serve_folder, model_folder):
    endpoint = hz.build_online_endpoint("chest-xray")
    client = _FakeMLClient(live={"blue": 100})
    green = _deployment(serve_folder, model_folder, "azureml:medimg-infer:2", name="green")
    hz.deploy_online(client, endpoint, green, traffic=10)
    # the endpoint update before the deployment must not switch blue off
    assert client.calls[1:] == [("endpoint", {"blue": 100}), ("deployment", "green"),
                                ("endpoint", {"blue": 90, "green": 10})]
    assert endpoint.traffic == {"blue": 90, "green": 10}


def test_deploy_online_refuses_before_creating_anything(serve_folder, model_folder):
    endpoint = hz.build_online_endpoint("chest-xray")
    client = _FakeMLClient(live=None)
    with pytest.raises(SpecValidationError) as info:
        hz.deploy_online(client, endpoint, _deployment(serve_folder, model_folder, "azureml:e:1"), traffic=10)
    assert info.value.field == "traffic" and client.calls == [("get", "chest-xray")]
    with pytest.raises(SpecValidationError) as info:
        hz.deploy_online(client, hz.build_online_endpoint("other-endpoint"),
                         _deployment(serve_folder, model_folder, "azureml:e:1"))
    assert info.value.field == "endpoint_name" and client.calls == [("get", "chest-xray")]
