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
    raw = yaml.safe_load(spec.read_text())
    if value is None:
        raw.pop(field)
    else:
        raw[field] = value
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
