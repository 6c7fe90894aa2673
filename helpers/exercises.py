"""Exercises with feedback, in the manner of Kaggle's learntools: each has ``check(answer)``, ``hint()`` and
``solution()``.

A notebook's exercise cell reads::

    from helpers.exercises import lesson
    ex = lesson("02_annotation/02_label_quality")
    answer = None  # your answer here
    ex.kappa_truth.check(answer, reads, truth[train])  # right, or what to look at

``check`` takes the learner's answer and the notebook objects the answer is computed from (named in the question),
computes the right answer itself, and prints whether the answer is right; when it is not, the message says what to
look at (a typical slip gets its own message). ``hint()`` prints a hint, ``solution()`` the code of a solution.
Each exercise also carries a reference solution (what ``solution()`` prints, as a function) and a typical wrong
answer, so a test can show that every checker accepts the first and rejects the second with its message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

#: Tolerance of numeric answers: a right formula gives the same number to rounding.
TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One checked exercise: ``judge(answer, *context)`` returns None when the answer is right, else a message."""

    name: str
    question: str
    judge: Callable[..., str | None]
    hint_text: str
    solution_code: str
    reference: Callable[..., Any]
    typical_wrong: Callable[..., Any]
    wrong_message: str  # a fragment of the message the typical wrong answer gets (the tests check it)

    def check(self, answer: Any, *context: Any) -> bool:
        """Print whether ``answer`` is right, given the notebook objects ``context``; return it as a bool."""
        if answer is None or answer is Ellipsis:
            print(f"{self.name}: not answered yet. Put your answer in place of None and run the cell again "
                  f"(.hint() for a hint, .solution() for one solution).")
            return False
        try:
            message = self.judge(answer, *context)
        except (TypeError, ValueError) as exc:
            message = f"the answer could not be compared ({type(exc).__name__}: {exc}); check its type and shape"
        if message is None:
            print(f"{self.name}: correct.")
            return True
        print(f"{self.name}: not yet. {message[:1].upper()}{message[1:]}")
        return False

    def hint(self) -> None:
        """Print the hint."""
        print(f"{self.name}, hint: {self.hint_text}")

    def solution(self) -> None:
        """Print one solution's code."""
        print(f"{self.name}, one solution:\n{self.solution_code}")


class Lesson:
    """A notebook's exercises, as attributes by name (``ex.kappa_truth``)."""

    def __init__(self, name: str, exercises: Mapping[str, Exercise]) -> None:
        self.name = name
        self._exercises = dict(exercises)

    def __getattr__(self, name: str) -> Exercise:
        try:
            return self._exercises[name]
        except KeyError:
            raise AttributeError(f"{self.name} has no exercise {name!r}; it has {', '.join(self._exercises)}") from None

    def __iter__(self):
        return iter(self._exercises.values())

    def __dir__(self):
        return [*super().__dir__(), *self._exercises]


# --- 02_annotation/02_label_quality ----------------------------------------------------------------------------


def _kappa(a: Any, b: Any) -> float:
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(np.asarray(a), np.asarray(b)))


def _judge_kappa_truth(answer: Any, reads: Any, truth: Any) -> str | None:
    trainee, truth = np.asarray(reads["trainee"]), np.asarray(truth)
    value = float(answer)
    if abs(value - _kappa(truth, trainee)) < TOLERANCE:
        return None
    if abs(value - float(np.mean(trainee == truth))) < TOLERANCE:
        return ("that is the raw agreement. Kappa subtracts the agreement two readers reach by chance (the sum over "
                "classes of the product of their rates) and divides by 1 minus it.")
    if abs(value - _kappa(reads["consultant"], trainee)) < TOLERANCE:
        return "that is the trainee against the consultant; this exercise compares the trainee with the truth."
    return (f"{value:.3f} is not the trainee's kappa against the truth. Build the table with pd.crosstab(truth, "
            "trainee), take the diagonal's share (observed) and the chance agreement from its row and column sums.")


def _judge_missed(answer: Any, reads: Any, truth: Any) -> str | None:
    trainee, truth = np.asarray(reads["trainee"]), np.asarray(truth)
    expected = int(((truth == 1) & (trainee == 0)).sum())
    value = int(answer)
    if value == expected:
        return None
    if value == int((trainee != truth).sum()):
        return "that counts every error, over-calls included: keep only films with a lesion that the trainee called normal."
    if value == int(((truth == 0) & (trainee == 1)).sum()):
        return "that counts the over-calls (normal films called abnormal); a missed lesion is truth 1, trainee 0."
    return f"{value} is not the number of missed lesions: count films where truth is 1 and the trainee's label is 0."


LABEL_QUALITY = Lesson("02_annotation/02_label_quality", {
    "kappa_truth": Exercise(
        "kappa_truth",
        "Compute Cohen's kappa of the trainee against the truth (reads['trainee'] vs truth[train]) from their "
        "confusion table, as section 2 does for the two readers.",
        _judge_kappa_truth,
        "observed = share of films on the diagonal; chance = sum over classes of (share the truth gives the class) x "
        "(share the trainee gives it); kappa = (observed - chance) / (1 - chance).",
        "counts = pd.crosstab(truth[train], reads['trainee']).to_numpy()\nn = counts.sum()\n"
        "observed = np.trace(counts) / n\nchance = counts.sum(axis=1) @ counts.sum(axis=0) / n**2\n"
        "answer = (observed - chance) / (1 - chance)",
        lambda reads, truth: _kappa(truth, reads["trainee"]),
        lambda reads, truth: float(np.mean(np.asarray(reads["trainee"]) == np.asarray(truth))),
        "raw agreement",
    ),
    "missed": Exercise(
        "missed",
        "How many of the trainee's errors are missed lesions (truth 1, trainee 0)?",
        _judge_missed,
        "compare reads['trainee'] with truth[train] element by element, and combine two conditions with &.",
        "answer = int(((truth[train] == 1) & (reads['trainee'] == 0)).sum())",
        lambda reads, truth: int(((np.asarray(truth) == 1) & (np.asarray(reads["trainee"]) == 0)).sum()),
        lambda reads, truth: int((np.asarray(reads["trainee"]) != np.asarray(truth)).sum()),
        "over-calls included",
    ),
})


# --- 05_deploy_explain/01_explain -------------------------------------------------------------------------------


def _maps_differ(answer: Any, expected: np.ndarray) -> float:
    answer = np.asarray(answer, dtype=np.float32)
    if answer.shape != expected.shape:
        raise ValueError(f"the maps have shape {answer.shape}, expected {expected.shape} (images, height, width)")
    return float(np.abs(answer - expected).max())


def _judge_gradcam_normal(answer: Any, model: Any, x: Any) -> str | None:
    from helpers import explain

    if _maps_differ(answer, explain.gradcam(model, x, negative=True)) < 0.05:
        return None
    if _maps_differ(answer, explain.gradcam(model, x)) < 0.05:
        return ("these are the pneumonia maps. The evidence for 'normal' is the gradient of minus the logit: "
                "backpropagate (-logits[:, 0]).sum(), or negate the channel weights before the ReLU.")
    return ("the maps differ from Grad-CAM of minus the logit by more than 0.05 somewhere: keep the hooks, the mean "
            "gradient per channel, the ReLU, the resize and the scaling to [0, 1], and change only the sign.")


def _gradcam_normal_reference(model: Any, x: Any) -> np.ndarray:
    from helpers import explain

    return explain.gradcam(model, x, negative=True)


def _gradcam_pneumonia(model: Any, x: Any) -> np.ndarray:
    from helpers import explain

    return explain.gradcam(model, x)


def _judge_peaks(answer: Any, maps: Any) -> str | None:
    maps = np.asarray(maps)
    flat = maps.reshape(len(maps), -1).argmax(axis=1)
    expected = np.stack(np.unravel_index(flat, maps.shape[1:]), axis=1)
    answer = np.asarray(answer)
    if answer.shape == expected.shape and np.array_equal(answer, expected):
        return None
    if answer.shape == flat.shape and np.array_equal(answer, flat):
        return "np.argmax gives a flat index into each map; np.unravel_index turns it into (row, column)."
    if answer.shape == expected.shape and np.array_equal(answer, expected[:, ::-1]):
        return "these are (column, row): NumPy indexes images as [row, column], so give (row, column)."
    return (f"expected one (row, column) per map, an array of shape {expected.shape}, holding each map's brightest "
            "pixel.")


EXPLAIN = Lesson("05_deploy_explain/01_explain", {
    "gradcam_normal": Exercise(
        "gradcam_normal",
        "Change the hand-made Grad-CAM of section 2 to explain the normal class (the evidence against pneumonia) "
        "for the same images x; put the maps (N, H, W) in answer.",
        _judge_gradcam_normal,
        "the only change is the sign of the logit whose gradient the backward hook keeps.",
        "... the cell of section 2, with\n    (-logits[:, 0]).sum().backward()\n... and answer = cam",
        _gradcam_normal_reference,
        _gradcam_pneumonia,
        "pneumonia maps",
    ),
    "peaks": Exercise(
        "peaks",
        "The pointing game looks at each map's brightest pixel. For the hand-made maps cam, give each map's "
        "brightest pixel as (row, column): an array of shape (N, 2).",
        _judge_peaks,
        "np.argmax on each flattened map, then np.unravel_index with the map's shape.",
        "flat = cam.reshape(len(cam), -1).argmax(axis=1)\nanswer = np.stack(np.unravel_index(flat, cam.shape[1:]), axis=1)",
        lambda maps: np.stack(np.unravel_index(np.asarray(maps).reshape(len(maps), -1).argmax(axis=1),
                                               np.asarray(maps).shape[1:]), axis=1),
        lambda maps: np.asarray(maps).reshape(len(maps), -1).argmax(axis=1),
        "flat index",
    ),
})

LESSONS: dict[str, Lesson] = {lesson.name: lesson for lesson in (LABEL_QUALITY, EXPLAIN)}


def lesson(name: str) -> Lesson:
    """The exercises of notebook ``name`` (its path without ``.ipynb``, e.g. ``"02_annotation/02_label_quality"``)."""
    key = name.removesuffix(".ipynb")
    if key not in LESSONS:
        raise KeyError(f"no checked exercises for {name!r}; lessons with some: {', '.join(LESSONS)}")
    return LESSONS[key]
