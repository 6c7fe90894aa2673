"""One table per lesson task, whatever the source: generated (offline default) or a real data set.

A training notebook asks for ``chest_xray_table(source, root, task)`` and gets the same shape back from
every source: one row per image with ``path``, ``patient_id`` and one 0/1 column per label, plus the list
of label names. Sources differ in what they know (PneumoniaMNIST has no patient ids, the NIH subset has
14 findings), and each function says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers.config import data_dir
from helpers.datasets import generated, real
from helpers.errors import DatasetError

#: Sources :func:`chest_xray_table` reads.
CHEST_SOURCES = ("generated", "kermany", "nih", "pneumoniamnist")
#: Tasks: one label (normal vs pneumonia / abnormal) or several findings at once.
CHEST_TASKS = ("binary", "multilabel")
#: Fewest positive images a finding needs to be a label of the NIH multi-label task (rarer ones are left out).
NIH_MIN_POSITIVES = 25


def _generated_chest(task: str, quick: bool, seed: int, n_patients: int | None, size: int,
                     difficulty: float = 0.5) -> tuple[pd.DataFrame, list[str]]:
    """The generated chest set: 100 patients (quick) or 300, 2 images each, half with pneumonia."""
    n = n_patients or (100 if quick else 300)
    multilabel = task == "multilabel"
    table = generated.make_chest_xray(n_patients=n, images_per_patient=2, size=size, multilabel=multilabel,
                                      difficulty=difficulty, seed=seed)
    names = ["pneumonia", "effusion", "cardiomegaly", "nodule"] if multilabel else ["pneumonia"]
    return table, names


def _kermany(root: str | Path, task: str) -> tuple[pd.DataFrame, list[str]]:
    """Kermany et al. 2018: normal vs pneumonia (binary only; the file names give the patient)."""
    if task != "binary":
        raise DatasetError("The Kermany set has one label (pneumonia); use task='binary', or source='nih' or "
                           "'generated' for the multi-label task.")
    table = real.load_kermany(root).rename(columns={"target": "pneumonia"})
    return table, ["pneumonia"]


def _nih(root: str | Path, task: str) -> tuple[pd.DataFrame, list[str]]:
    """The NIH ChestX-ray14 subset: normal vs abnormal, or the findings with enough positives."""
    table = real.load_nih_subset(root).drop(columns=["split"])  # the folder split is by image, not by patient
    if task == "binary":
        return table.rename(columns={"target": "abnormal"}), ["abnormal"]
    findings = [f for f in real.NIH_FINDINGS if f in table.columns and int(table[f].sum()) >= NIH_MIN_POSITIVES]
    if not findings:
        raise DatasetError(f"No finding has {NIH_MIN_POSITIVES}+ positive images in {root}: use task='binary'.")
    return table, findings


def pneumoniamnist_folder(npz: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write a PneumoniaMNIST npz as PNG files (``<split>/<i>.png``) plus ``manifest.csv``; returns the folder.

    The npz has no patient ids: each image becomes its own "patient" and the official split is kept as
    ``split`` (MedMNIST split the source images by patient already). Idempotent: an existing manifest is
    reused.
    """
    from PIL import Image

    parts = real.load_pneumoniamnist(npz)
    folder = Path(out_dir) if out_dir is not None else data_dir() / "converted" / "pneumoniamnist"
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        return folder
    rows = []
    for split, (images, labels) in parts.items():
        (folder / split).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            rel = f"{split}/{i:05d}.png"
            Image.fromarray(np.asarray(image, dtype=np.uint8)).save(folder / rel)
            rows.append({"path": rel, "patient_id": f"{split}-{i:05d}", "split": split, "pneumonia": int(label)})
    pd.DataFrame(rows).to_csv(manifest, index=False, lineterminator="\n")
    return folder


def _pneumoniamnist(root: str | Path, task: str) -> tuple[pd.DataFrame, list[str]]:
    """PneumoniaMNIST (28 px): binary only, its official split kept (no patient ids to split by)."""
    if task != "binary":
        raise DatasetError("PneumoniaMNIST has one label (pneumonia); use task='binary'.")
    folder = pneumoniamnist_folder(root)
    table = pd.read_csv(folder / "manifest.csv", dtype={"patient_id": str})
    table["path"] = [str(folder / p) for p in table["path"]]
    return table, ["pneumonia"]


#: Images the quick setting keeps of a real chest X-ray set (whole patients, drawn at random): enough to learn, fast.
QUICK_REAL_IMAGES = 240


def patient_subset(table: pd.DataFrame, n_images: int, seed: int = 0) -> pd.DataFrame:
    """Whole patients of ``table``, drawn at random (``seed``), until at least ``n_images`` images: no patient split."""
    patients = np.random.default_rng(seed).permutation(sorted(table["patient_id"].astype(str).unique()))
    counts = table["patient_id"].astype(str).value_counts()
    keep = patients[: int(np.searchsorted(np.cumsum(counts[patients].to_numpy()), n_images) + 1)]
    return table[table["patient_id"].astype(str).isin(set(keep))]


#: The bundled real subset each chest X-ray source reads when no folder is given.
BUNDLED_CHEST = {"kermany": "kermany_chest_xray", "nih": "nih_chestxray14_64"}


def chest_xray_table(
    source: str = "generated",
    root: str | Path | None = None,
    task: str = "binary",
    quick: bool = False,
    seed: int = 0,
    n_patients: int | None = None,
    size: int = 256,
    difficulty: float = 0.5,
) -> tuple[pd.DataFrame, list[str]]:
    """(table, label names) of the chest X-ray lesson: one row per image with path, patient_id and 0/1 labels.

    ``source``: ``generated`` (``n_patients`` or 100 quick / 300 full, 2 images each, ``size`` px), ``kermany``
    (root holds NORMAL/ and PNEUMONIA/; ``difficulty`` sets the generated lesions' contrast and size, see
    :mod:`helpers.datasets.generated`), ``nih`` (the ChestX-ray14 subset layout); for these two ``root=None``
    reads the subset shipped with the package (:data:`BUNDLED_CHEST`), and ``quick`` keeps whole patients up to
    :data:`QUICK_REAL_IMAGES` images, ``pneumoniamnist`` (root is the npz or its folder; keeps a ``split`` column, since it has
    no patient ids). ``task``: ``binary`` (one label) or ``multilabel`` (generated: pneumonia,
    effusion, cardiomegaly, nodule; NIH: findings with at least :data:`NIH_MIN_POSITIVES` positives).
    """
    if source not in CHEST_SOURCES:
        raise ValueError(f"source must be one of {CHEST_SOURCES}, got {source!r}.")
    if task not in CHEST_TASKS:
        raise ValueError(f"task must be one of {CHEST_TASKS}, got {task!r}.")
    if source == "generated":
        table, names = _generated_chest(task, quick, seed, n_patients, size, difficulty)
    else:
        if root is None and source in BUNDLED_CHEST:  # the real subset shipped with the package
            from helpers.datasets.bundled import bundled_dir

            root = bundled_dir(BUNDLED_CHEST[source])
        if root is None:
            raise DatasetError(f"source={source!r} needs root (REAL_DATA_DIR): the folder holding the data set. "
                               f"See helpers.datasets.registry.how_to_get for where to download it.")
        reader = {"kermany": _kermany, "nih": _nih, "pneumoniamnist": _pneumoniamnist}[source]
        table, names = reader(Path(root).expanduser(), task)
        if quick and source != "pneumoniamnist":
            table = patient_subset(table, QUICK_REAL_IMAGES, seed)
    table = table.reset_index(drop=True)
    for name in names:
        table[name] = table[name].astype(int)
    table["patient_id"] = table["patient_id"].astype(str)
    return table, names


__all__ = ["BUNDLED_CHEST", "QUICK_REAL_IMAGES", "patient_subset", "CHEST_SOURCES", "CHEST_TASKS", "NIH_MIN_POSITIVES", "chest_xray_table", "pneumoniamnist_folder"]
