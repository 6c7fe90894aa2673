"""Checked exercises (helpers.exercises): every checker accepts its reference solution and rejects a typical wrong
answer with the message that says what to look at (issue 20, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import exercises

ROOT = Path(__file__).resolve().parents[1]


def _reads_and_truth():
    rng = np.random.default_rng(0)
    truth = (rng.random(200) < 0.5).astype(int)
    consultant = np.where(rng.random(200) < 0.9, truth, 1 - truth)
    trainee = np.where(rng.random(200) < 0.8, truth, 1 - truth)
    return pd.DataFrame({"consultant": consultant, "trainee": trainee}), truth


def _model_and_images():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, padding=1),
                                torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 1))
    return model, np.random.default_rng(1).random((3, 1, 16, 16), dtype=np.float32)


CONTEXTS = {
    ("02_annotation/02_label_quality", "kappa_truth"): _reads_and_truth,
    ("02_annotation/02_label_quality", "missed"): _reads_and_truth,
    ("05_deploy_explain/01_explain", "gradcam_normal"): _model_and_images,
    ("05_deploy_explain/01_explain", "peaks"): lambda: (np.random.default_rng(2).random((4, 8, 8)),),
}
CASES = [(lesson.name, ex) for lesson in exercises.LESSONS.values() for ex in lesson]


def test_every_exercise_has_an_example_context():
    assert {(name, ex.name) for name, ex in CASES} == set(CONTEXTS)


@pytest.mark.parametrize(("lesson", "exercise"), CASES, ids=[f"{n}:{e.name}" for n, e in CASES])
def test_checker_accepts_the_reference_and_rejects_the_typical_slip(lesson, exercise, capsys):
    context = CONTEXTS[lesson, exercise.name]()
    assert exercise.check(exercise.reference(*context), *context) is True
    assert "correct" in capsys.readouterr().out
    assert exercise.check(exercise.typical_wrong(*context), *context) is False
    out = capsys.readouterr().out
    assert "not yet" in out and exercise.wrong_message in out
    assert exercise.check(None, *context) is False
    assert "not answered yet" in capsys.readouterr().out
    exercise.hint()
    exercise.solution()
    shown = capsys.readouterr().out
    assert exercise.hint_text in shown and exercise.solution_code in shown


def test_an_answer_of_the_wrong_shape_gets_a_message_not_a_traceback(capsys):
    ex = exercises.lesson("05_deploy_explain/01_explain").peaks
    assert ex.check(np.zeros((2, 3)), np.zeros((4, 8, 8))) is False
    assert "shape (4, 2)" in capsys.readouterr().out


def test_unknown_lesson_or_exercise_names_what_exists():
    with pytest.raises(KeyError, match="lessons with some"):
        exercises.lesson("99_nowhere/01")
    with pytest.raises(AttributeError, match="kappa_truth"):
        exercises.lesson("02_annotation/02_label_quality").nothing


@pytest.mark.parametrize("name", sorted(exercises.LESSONS))
def test_each_lesson_with_exercises_checks_at_least_two_in_its_notebook(name):
    nb = json.loads((ROOT / f"{name}.ipynb").read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert f'exercises.lesson("{name}")' in code
    checked = [e.name for e in exercises.LESSONS[name] if f".{e.name}.check(" in code]
    assert len(checked) >= 2, checked
