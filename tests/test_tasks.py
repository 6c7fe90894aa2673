"""helpers.datasets.tasks: the same table shape from every chest X-ray source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.datasets import tasks
from helpers.errors import DatasetError


def test_generated_binary_and_multilabel_tables(tmp_path):
    table, names = tasks.chest_xray_table("generated", task="binary", n_patients=6, size=64)
    assert names == ["pneumonia"] and len(table) == 12 and table.patient_id.nunique() == 6
    assert set(table.pneumonia.unique()) == {0, 1} and all(Path(p).is_file() for p in table.path)
    # labels belong to the patient: both images of a patient agree
    assert (table.groupby("patient_id").pneumonia.nunique() == 1).all()
    table, names = tasks.chest_xray_table("generated", task="multilabel", n_patients=6, size=64)
    assert names == ["pneumonia", "effusion", "cardiomegaly", "nodule"]
    assert table[names].isin([0, 1]).all().all()


def test_kermany_and_nih_without_a_folder_read_the_bundled_subsets():
    table, names = tasks.chest_xray_table("kermany")
    assert names == ["pneumonia"] and len(table) == 801 and table.pneumonia.sum() == 401
    assert (table.groupby("patient_id").pneumonia.nunique() == 1).all()
    nih, nih_names = tasks.chest_xray_table("nih")
    assert len(nih) == 800 and nih_names == ["abnormal"]
    quick, _ = tasks.chest_xray_table("kermany", quick=True, seed=3)
    assert tasks.QUICK_REAL_IMAGES <= len(quick) < tasks.QUICK_REAL_IMAGES + 32  # whole patients, just past the count
    whole = table.groupby("patient_id").size()
    kept = quick.groupby("patient_id").size()
    assert kept.to_dict() == whole[kept.index].to_dict()
    assert 0.2 < quick.pneumonia.mean() < 0.8


def test_patient_subset_keeps_whole_patients_up_to_the_count():
    table = pd.DataFrame({"patient_id": ["a", "a", "b", "c", "c", "c", "d"], "x": range(7)})
    sub = tasks.patient_subset(table, 3, seed=0)
    assert len(sub) >= 3 and sub.groupby("patient_id").size().to_dict() == \
        table[table.patient_id.isin(sub.patient_id)].groupby("patient_id").size().to_dict()
    assert len(tasks.patient_subset(table, 100)) == 7


def test_bad_source_task_and_missing_root_say_what_to_do():
    with pytest.raises(ValueError, match="source must be one of"):
        tasks.chest_xray_table("mimic")
    with pytest.raises(ValueError, match="task must be one of"):
        tasks.chest_xray_table("generated", task="segmentation")
    with pytest.raises(DatasetError, match="needs root"):
        tasks.chest_xray_table("pneumoniamnist")  # not shipped with the package
    with pytest.raises(DatasetError, match="task='binary'"):
        tasks.chest_xray_table("kermany", root=".", task="multilabel")


def test_pneumoniamnist_npz_becomes_a_png_folder_with_its_split(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{s}_images": rng.integers(0, 255, (n, 28, 28), dtype=np.uint8) for s, n in
              (("train", 6), ("val", 2), ("test", 3))}
    arrays.update({f"{s}_labels": np.array([[i % 2] for i in range(n)]) for s, n in (("train", 6), ("val", 2), ("test", 3))})
    npz = tmp_path / "pneumoniamnist.npz"
    np.savez(npz, **arrays)
    table, names = tasks.chest_xray_table("pneumoniamnist", root=npz)
    assert names == ["pneumonia"] and len(table) == 11 and table.patient_id.is_unique
    assert table.split.value_counts().to_dict() == {"train": 6, "test": 3, "val": 2}
    from PIL import Image
    first = table[table.split == "train"].iloc[1]
    assert np.array_equal(np.asarray(Image.open(first.path)), arrays["train_images"][1]) and first.pneumonia == 1


def test_real_kermany_and_nih_tables(shared_data):
    table, names = tasks.chest_xray_table("kermany", root=shared_data("chest_xray_kermany_224"))
    assert names == ["pneumonia"] and len(table) == 1342 + 3589
    assert table.pneumonia.sum() == 3589 and table.patient_id.nunique() < len(table)
    table, names = tasks.chest_xray_table("nih", root=shared_data("chest_xray_nih1000_64"), task="multilabel")
    assert len(table) == 800 and "split" not in table.columns
    assert all(table[n].sum() >= tasks.NIH_MIN_POSITIVES for n in names) and len(names) >= 2
    binary, bnames = tasks.chest_xray_table("nih", root=shared_data("chest_xray_nih1000_64"))
    assert bnames == ["abnormal"] and binary.abnormal.sum() == 400
