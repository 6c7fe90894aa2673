"""Patient-level splits, folds and manifests: every image of a patient lands in exactly one split.

Splitting images instead of patients puts near-identical images of one child into both training and
test sets, and the test score then rewards memory, not diagnosis. :func:`patient_split` and
:func:`patient_kfold` assign whole patients; :func:`assert_no_patient_leak` checks any table;
:func:`write_manifest` / :func:`read_manifest` freeze a split as a CSV with a content hash.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.errors import ChecksumMismatch, DatasetError, PatientLeakError

#: Split names used when ``names`` is not given, by number of fractions.
DEFAULT_SPLIT_NAMES = {2: ("train", "test"), 3: ("train", "val", "test")}


def _check_patients(df: pd.DataFrame, patient_col: str) -> None:
    """Raise DatasetError if ``patient_col`` is missing or has empty values."""
    if patient_col not in df.columns:
        raise DatasetError(f"The table has no {patient_col!r} column (columns: {list(df.columns)}).")
    missing = int(df[patient_col].isna().sum())
    if missing:
        raise DatasetError(
            f"{missing} row(s) have no {patient_col}: a patient-level split needs one for every image. "
            "If the source guarantees one image per patient, use the image id as the patient id."
        )


def _sorted_unique(values: pd.Series) -> list:
    """Unique values sorted by their text, so the order never depends on the row order or mixed types."""
    return sorted(pd.unique(values), key=lambda v: (str(type(v)), str(v)))


def _patient_labels(df: pd.DataFrame, patient_col: str, stratify: str) -> pd.Series:
    """Each patient's label: its most frequent label, ties going to the largest value (e.g. 1 over 0)."""
    if stratify not in df.columns:
        raise DatasetError(f"stratify={stratify!r} is not a column (columns: {list(df.columns)}).")
    if df[stratify].isna().any():
        raise DatasetError(f"{int(df[stratify].isna().sum())} row(s) have no {stratify}: cannot stratify on it.")
    counts = df.groupby([patient_col, stratify], observed=True).size().rename("n").reset_index()
    counts = counts.sort_values(["n", stratify], kind="stable").groupby(patient_col, sort=False).tail(1)
    return counts.set_index(patient_col)[stratify]


def _allocate(n: int, fractions: np.ndarray) -> np.ndarray:
    """Split ``n`` items into counts proportional to ``fractions`` (largest remainder; counts sum to n)."""
    raw = fractions * n
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def _strata(df: pd.DataFrame, patient_col: str, stratify: str | None) -> list[list]:
    """Patients grouped by patient-level label (one group without ``stratify``), each group sorted."""
    patients = _sorted_unique(df[patient_col])
    if stratify is None:
        return [patients]
    labels = _patient_labels(df, patient_col, stratify)
    groups: dict = {}
    for patient in patients:
        groups.setdefault(labels[patient], []).append(patient)
    return [groups[label] for label in _sorted_unique(pd.Series(list(groups), dtype=object))]


def patient_split(
    df: pd.DataFrame,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    stratify: str | None = None,
    patient_col: str = "patient_id",
    split_col: str = "split",
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """A copy of ``df`` with ``split_col`` set per patient (fractions of patients; rows keep their order).

    ``fractions`` (summing to 1) go to ``names`` (default ``train``/``val``/``test``, or ``train``/``test``
    for two). ``stratify`` names a label column: each patient takes its most frequent label (ties to the
    largest, so a patient with any abnormal image of a 0/1 label counts as abnormal) and every label's
    patients are split in the same fractions. The same table and seed always give the same split.
    """
    _check_patients(df, patient_col)
    fractions_arr = np.asarray(fractions, dtype=float)
    if fractions_arr.ndim != 1 or len(fractions_arr) < 2 or (fractions_arr < 0).any():
        raise ValueError(f"fractions must be two or more non-negative numbers, got {fractions}.")
    if not np.isclose(fractions_arr.sum(), 1.0, atol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {fractions} (sum {fractions_arr.sum():g}).")
    if names is None:
        if len(fractions_arr) not in DEFAULT_SPLIT_NAMES:
            raise ValueError(f"Give names= for {len(fractions_arr)} fractions.")
        names = DEFAULT_SPLIT_NAMES[len(fractions_arr)]
    if len(names) != len(fractions_arr) or len(set(names)) != len(names):
        raise ValueError(f"names must be {len(fractions_arr)} distinct split names, got {names}.")

    rng = np.random.default_rng(seed)
    assignment: dict = {}
    for group in _strata(df, patient_col, stratify):
        shuffled = [group[i] for i in rng.permutation(len(group))]
        start = 0
        for name, count in zip(names, _allocate(len(shuffled), fractions_arr)):
            assignment.update({patient: name for patient in shuffled[start : start + count]})
            start += count
    out = df.copy()
    out[split_col] = df[patient_col].map(assignment)
    return out


def patient_kfold(
    df: pd.DataFrame,
    k: int = 5,
    seed: int = 0,
    stratify: str | None = None,
    patient_col: str = "patient_id",
    fold_col: str = "fold",
) -> pd.DataFrame:
    """A copy of ``df`` with ``fold_col`` in 0..k-1, whole patients per fold, folds within one patient of
    equal size (per label too when ``stratify`` names a label column)."""
    _check_patients(df, patient_col)
    n_patients = df[patient_col].nunique()
    if not isinstance(k, (int, np.integer)) or k < 2 or k > n_patients:
        raise ValueError(f"k must be an integer from 2 to the number of patients ({n_patients}), got {k}.")
    rng = np.random.default_rng(seed)
    fold_of: dict = {}
    position = 0
    for group in _strata(df, patient_col, stratify):
        for i in rng.permutation(len(group)):
            fold_of[group[i]] = position % k
            position += 1
    out = df.copy()
    out[fold_col] = df[patient_col].map(fold_of).astype(int)
    return out


def named_split(
    df: pd.DataFrame,
    test: Sequence,
    val: Sequence = (),
    patient_col: str = "patient_id",
    split_col: str = "split",
) -> pd.DataFrame:
    """A copy of ``df`` with the ``test`` patients in ``test``, the ``val`` patients in ``val`` and all others in
    ``train``: a hold-out chosen by name, for data sets of a handful of patients (e.g. leave one patient out)."""
    _check_patients(df, patient_col)
    test, val = [str(p) for p in test], [str(p) for p in val]
    present = set(map(str, df[patient_col]))
    unknown = sorted(set(test + val) - present)
    if unknown:
        raise ValueError(f"Patient(s) {unknown} are not in the table; its patients: {sorted(present)}.")
    both = sorted(set(test) & set(val))
    if both:
        raise PatientLeakError(f"Patient(s) {both} are named for both test and val; give each patient one split.")
    if not test or len(set(test) | set(val)) >= len(present):
        raise ValueError(f"Name at least one test patient and leave at least one of the {len(present)} for training.")
    ids = df[patient_col].astype(str)
    out = df.copy()
    out[split_col] = np.where(ids.isin(test), "test", np.where(ids.isin(val), "val", "train"))
    return out


def assert_no_patient_leak(df: pd.DataFrame, split_col: str = "split", patient_col: str = "patient_id") -> None:
    """Raise PatientLeakError naming the patients found in more than one split (and their splits)."""
    _check_patients(df, patient_col)
    if split_col not in df.columns:
        raise DatasetError(f"The table has no {split_col!r} column (columns: {list(df.columns)}).")
    per_patient = df.groupby(patient_col, sort=True)[split_col].agg(lambda s: sorted(set(map(str, s.dropna()))))
    leaked = per_patient[per_patient.map(len) > 1]
    if len(leaked):
        examples = "; ".join(f"{p!s} in {'+'.join(s)}" for p, s in leaked.head(10).items())
        more = f" and {len(leaked) - 10} more" if len(leaked) > 10 else ""
        raise PatientLeakError(
            f"{len(leaked)} patient(s) appear in more than one {split_col}: {examples}{more}. Scores on such "
            "a split are optimistic; assign whole patients with helpers.datasets.splits.patient_split."
        )


# --- Manifests ---------------------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    """Where a manifest's hash is stored: ``<name>.sha256`` beside it (``sha256sum -c`` format)."""
    return path.with_name(path.name + ".sha256")


def write_manifest(
    df: pd.DataFrame,
    path: str | Path,
    root: str | Path | None = None,
    path_col: str = "path",
) -> tuple[Path, str]:
    """Write ``df`` as a CSV with ``path_col`` relative to ``root``; return (path, SHA-256 of the CSV bytes).

    ``root`` defaults to the deepest folder holding every path (relative paths are kept as they are).
    Paths are written with ``/``, lines end with ``\\n``, so the same table gives the same bytes and hash
    on every machine. The hash is also written beside the CSV as ``<name>.sha256``.
    """
    if path_col not in df.columns:
        raise DatasetError(f"The table has no {path_col!r} column (columns: {list(df.columns)}).")
    paths = [Path(p) for p in df[path_col].astype(str)]
    absolute = [p.is_absolute() for p in paths]
    if any(absolute) and not all(absolute):
        raise DatasetError(f"{path_col} mixes absolute and relative paths; make them all absolute first.")
    if all(absolute) and paths:
        base = Path(root) if root is not None else Path(os.path.commonpath([str(p.parent) for p in paths]))
        relative = []
        for p in paths:
            try:
                relative.append(p.relative_to(base).as_posix())
            except ValueError:
                raise DatasetError(f"{p} is not inside root {base}; pass a root that holds every path.") from None
    else:
        relative = [p.as_posix() for p in paths]
    out = df.copy()
    out[path_col] = relative
    data = out.to_csv(index=False, lineterminator="\n").encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    _sidecar(path).write_text(f"{digest}  {path.name}\n")
    return path, digest


def read_manifest(
    path: str | Path,
    root: str | Path | None = None,
    sha256: str | None = None,
    verify: bool = True,
    path_col: str = "path",
    patient_col: str = "patient_id",
) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest`, checking its hash (``sha256`` or the ``.sha256`` file).

    Raises ChecksumMismatch if the CSV changed since it was written. With ``root`` the paths become
    ``root / relative path``. ``path_col`` and ``patient_col`` are read as text (ids keep leading zeros).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"Manifest {path} does not exist; write it with write_manifest().")
    data = path.read_bytes()
    if verify:
        expected = sha256
        if expected is None and _sidecar(path).is_file():
            expected = _sidecar(path).read_text().split()[0]
        if expected is None:
            raise DatasetError(
                f"No hash to check {path.name} against: {_sidecar(path).name} is missing. Pass sha256= "
                "(the value write_manifest returned) or verify=False."
            )
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected.lower():
            raise ChecksumMismatch(
                f"{path} changed since it was written: SHA-256 {actual}, expected {expected}. Someone edited "
                "the split; rebuild it with patient_split + write_manifest or restore the original file."
            )
    table = pd.read_csv(io.BytesIO(data), dtype={path_col: str, patient_col: str})
    if root is not None:
        table[path_col] = [str(Path(root) / p) for p in table[path_col]]
    return table
