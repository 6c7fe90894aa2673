"""Live mode (MEDIMG_REUSE=1): a training call reuses a stored run of exactly the same configuration, data and code,
and refuses one that differs (issue 19, item 3)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import live, tracking
from helpers import train_torch as tt

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CALLS = {"fit": 0}


@pytest.fixture
def reuse(store, monkeypatch):
    """Live mode on, in a fresh local store; the decisions of this test only."""
    monkeypatch.setenv(live.REUSE_ENV, "1")
    live.decisions.clear()
    CALLS["fit"] = 0
    yield store
    live.decisions.clear()


def _data(seed: int = 0, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 32, 32), dtype=np.float32)
    y = (np.arange(n) % 2).astype(np.float32)[:, None]
    x[y[:, 0] == 1, :, 10:20, 10:20] += 1.0
    return x, y


CONFIG = tt.TrainConfig(model="small_cnn", image_size=32, epochs=2, batch_size=8, label_names=("finding",))


def _train(config: tt.TrainConfig, x: np.ndarray, y: np.ndarray, out_dir) -> tt.TrainResult:
    return tt.train(config, (x[:30], y[:30]), (x[30:], y[30:]), out_dir)


def _weights(model: torch.nn.Module) -> list[np.ndarray]:
    return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]


def test_off_by_default_nothing_is_stored(store, monkeypatch, tmp_path):
    monkeypatch.delenv(live.REUSE_ENV, raising=False)
    live.decisions.clear()
    x, y = _data()
    _train(CONFIG, x, y, tmp_path / "out")
    assert live.decisions == []
    assert live.stored_runs().empty
    assert not live.enabled()


def test_same_call_is_reused_with_its_files_logs_and_random_state(reuse, tmp_path, capsys):
    x, y = _data()
    out = tmp_path / "out"
    with tracking.start_run("live-test") as first_run:
        first = _train(CONFIG, x, y, out)
    after_training = (np.random.get_state()[1].copy(), torch.get_rng_state().clone(), random.getstate())
    assert [d.action for d in live.decisions] == ["trained"]
    (out / "best.pt").unlink()  # reuse puts back what training wrote

    np.random.seed(123)
    torch.manual_seed(123)
    with tracking.start_run("live-test") as second_run:
        second = _train(CONFIG, x, y, out)
    assert [d.action for d in live.decisions] == ["trained", "reused"]
    assert "reused stored run" in capsys.readouterr().out
    assert second.history.equals(first.history)
    assert second.best_val_auc == first.best_val_auc
    assert all(np.array_equal(a, b) for a, b in zip(_weights(first.model), _weights(second.model)))
    assert (out / "best.pt").is_file()
    # the random generators continue as after training, so later cells draw the same numbers
    assert np.array_equal(np.random.get_state()[1], after_training[0])
    assert torch.equal(torch.get_rng_state(), after_training[1])
    assert random.getstate() == after_training[2]
    # what training logged in the first run is in the second: params, each epoch's metrics, the checkpoint
    import mlflow

    client = mlflow.MlflowClient()
    one, two = client.get_run(first_run.info.run_id).data, client.get_run(second_run.info.run_id).data
    assert one.params == two.params and one.metrics == two.metrics
    for key in one.metrics:
        steps = lambda run: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]  # noqa: E731
        assert steps(first_run) == steps(second_run)
    assert "model/best.pt" in live._artifact_files(client, second_run.info.run_id)
    assert two.tags.get("medimg.live.reused") == "true"


@pytest.mark.parametrize(("change", "differs"), [
    ("config", "config"),
    ("data", "train_data"),
])
def test_a_stored_run_whose_configuration_or_data_differ_is_refused(reuse, tmp_path, capsys, change, differs):
    x, y = _data()
    first = _train(CONFIG, x, y, tmp_path / "out")
    config, x2 = CONFIG, x.copy()
    if change == "config":
        config = tt.TrainConfig(**{**CONFIG.to_dict(), "lr": CONFIG.lr / 10})
    else:
        x2[0, 0, 0, 0] += 0.5  # one pixel of one training image
    second = _train(config, x2, y, tmp_path / "out")
    decision = live.decisions[-1]
    assert decision.action == "refused"
    assert differs in decision.differs and "not reused" in capsys.readouterr().out
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(first.model), _weights(second.model)))
    assert len(live.stored_runs("helpers.train_torch.train")) == 2  # the new run is stored beside the old


def test_a_stored_run_whose_files_changed_is_refused(reuse, tmp_path, capsys):
    x, y = _data()
    _train(CONFIG, x, y, tmp_path / "out")
    run_id = live.decisions[-1].run_id
    stored = next((tmp_path / "data" / "mlartifacts").rglob(f"{run_id}/**/live/result.pt"))
    stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")
    _train(CONFIG, x, y, tmp_path / "out")
    decision = live.decisions[-1]
    assert decision.action == "refused"
    assert "files changed since it was stored" in capsys.readouterr().out


@live.reusable(mutates="model")
def _fit_in_place(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[float]:
    CALLS["fit"] += 1
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return losses


def test_a_model_trained_in_place_gets_the_stored_weights(reuse):
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    torch.manual_seed(0)
    trained = torch.nn.Linear(3, 1)
    losses = _fit_in_place(trained, x, y, 5)
    torch.manual_seed(0)
    fresh = torch.nn.Linear(3, 1)  # the same initial weights: the same call
    assert _fit_in_place(fresh, x, y, 5) == losses
    assert CALLS["fit"] == 1
    assert all(np.array_equal(a, b) for a, b in zip(_weights(trained), _weights(fresh)))
    torch.manual_seed(1)
    other = torch.nn.Linear(3, 1)  # another initialisation (another seed) is another call
    _fit_in_place(other, x, y, 5)
    assert CALLS["fit"] == 2 and "model" in live.decisions[-1].differs


def test_a_call_with_unreadable_arguments_trains_and_says_why(reuse, capsys):
    class Opaque:
        pass

    @live.reusable
    def fit(thing: object, n: int) -> int:
        CALLS["fit"] += 1
        return n

    assert fit(Opaque(), 3) == 3 and fit(Opaque(), 3) == 3
    assert CALLS["fit"] == 2
    assert "cannot read the content" in capsys.readouterr().out


def test_fingerprints_follow_content(tmp_path):
    a = np.arange(12, dtype=np.float32)
    assert live.digest(a) == live.digest(a.copy()) != live.digest(a.astype(np.float64))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.bin").write_bytes(b"one")
    before = live.digest(tmp_path / "d")
    (tmp_path / "d" / "x.bin").write_bytes(b"two")
    assert live.digest(tmp_path / "d") != before
    table = pd.DataFrame({"path": [str(tmp_path / "d" / "x.bin")], "label": [1]})
    before = live.digest(table)
    (tmp_path / "d" / "x.bin").write_bytes(b"three")  # same table, other file content
    assert live.digest(table) != before
    torch.manual_seed(0)
    m1 = torch.nn.Linear(2, 2)
    torch.manual_seed(0)
    m2 = torch.nn.Linear(2, 2)
    assert live.digest(m1) == live.digest(m2) != live.digest(torch.nn.Linear(2, 2))


def test_a_notebook_function_is_fingerprinted_by_its_source():
    def define(body: str):
        namespace = {"__name__": "__main__"}
        exec(f"def step(x):\n    return {body}\n", namespace)  # noqa: S102 (a function as a notebook cell makes one)
        return namespace["step"]

    assert live.digest(define("x + 1")) == live.digest(define("x + 1")) != live.digest(define("x + 2"))


def test_a_keras_model_trained_in_place_gets_the_stored_weights(reuse):
    keras = pytest.importorskip("keras")

    @live.reusable(mutates="model")
    def fit_keras(model, x, y, epochs):
        CALLS["fit"] += 1
        model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)

    def build():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        return model

    x, y = np.random.default_rng(0).random((16, 4)), np.random.default_rng(1).random((16, 1))
    trained, again = build(), build()
    fit_keras(trained, x, y, 2)
    fit_keras(again, x, y, 2)
    assert CALLS["fit"] == 1
    assert all(np.array_equal(a, b) for a, b in zip(trained.get_weights(), again.get_weights()))


def test_a_class_a_notebook_defines_is_fingerprinted_by_its_methods_source():
    def define(body: str):
        namespace = {"__name__": "__main__"}
        exec(f"class Head:\n    def forward(self, x):\n        return {body}\n", namespace)  # noqa: S102
        return namespace["Head"]

    assert live.digest(define("x + 1")) == live.digest(define("x + 1")) != live.digest(define("x * 2"))
