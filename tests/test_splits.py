"""Patient-level splits and folds (hand-computed counts, stratification, determinism), the leak check, and
manifests with a content hash."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from helpers.datasets.splits import (
    named_split,
    assert_no_patient_leak,
    patient_kfold,
    patient_split,
    read_manifest,
    write_manifest,
)
from helpers.errors import ChecksumMismatch, DatasetError, PatientLeakError


def _table(n_patients: int = 100, seed: int = 1) -> pd.DataFrame:
    """n patients with 1-5 images each; 30% of patients abnormal (label 1 on all their images)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = int(p % 10 < 3)
        for i in range(int(rng.integers(1, 6))):
            rows.append({"path": f"/data/set/p{p:03d}/img{i}.png", "patient_id": f"P{p:03d}", "label": label})
    return pd.DataFrame(rows)


def test_ten_single_image_patients_split_7_2_1():
    # 10 x (0.7, 0.15, 0.15) = 7, 1.5, 1.5 -> floors 7, 1, 1 and the one left over goes to the first tie.
    df = pd.DataFrame({"patient_id": [f"p{i}" for i in range(10)]})
    counts = patient_split(df).value_counts("split").to_dict()
    assert counts == {"train": 7, "val": 2, "test": 1}


def test_patient_split_keeps_patients_whole_and_fractions():
    df = _table()
    out = patient_split(df, seed=3)
    assert out is not df and "split" not in df.columns  # a copy; the input is untouched
    assert out[["path", "patient_id", "label"]].equals(df)  # rows keep their order
    assert out.groupby("patient_id")["split"].nunique().max() == 1
    assert_no_patient_leak(out)
    patients = out.drop_duplicates("patient_id").value_counts("split").to_dict()
    assert patients == {"train": 70, "val": 15, "test": 15}


def test_patient_split_is_deterministic_and_independent_of_row_order():
    df = _table()
    a = patient_split(df, seed=7)
    b = patient_split(df.sample(frac=1.0, random_state=0), seed=7).sort_index()
    assert a["split"].tolist() == b["split"].tolist()
    assert patient_split(df, seed=7)["split"].tolist() == a["split"].tolist()
    assert patient_split(df, seed=8)["split"].tolist() != a["split"].tolist()


def test_stratified_split_gives_each_split_the_same_share_of_abnormal_patients():
    df = _table(200)
    out = patient_split(df, seed=0, stratify="label")
    per_patient = out.drop_duplicates("patient_id")
    share = per_patient.groupby("split")["label"].mean()
    assert share.to_dict() == pytest.approx({"train": 0.3, "val": 0.3, "test": 0.3}, abs=0.01)
    counts = per_patient.groupby(["split", "label"]).size().to_dict()
    assert counts == {("test", 0): 21, ("test", 1): 9, ("train", 0): 98, ("train", 1): 42,
                      ("val", 0): 21, ("val", 1): 9}


def test_patient_label_is_its_most_frequent_label_ties_to_the_larger():
    # A: 0,0,1 -> 0; B: 0,1 -> tie -> 1; C: 1 -> 1; D: 0 -> 0. Two fractions of 0.5 per label.
    df = pd.DataFrame({"patient_id": list("AAABBCD"), "label": [0, 0, 1, 0, 1, 1, 0]})
    out = patient_split(df, fractions=(0.5, 0.5), stratify="label", seed=0)
    first = out.drop_duplicates("patient_id").set_index("patient_id")["split"]
    assert {first["A"], first["D"]} == {"train", "test"}  # the two label-0 patients are split 1 + 1
    assert {first["B"], first["C"]} == {"train", "test"}  # the two label-1 patients too


def test_two_way_split_and_custom_names():
    df = _table(20)
    out = patient_split(df, fractions=(0.8, 0.2))
    assert set(out["split"]) == {"train", "test"}
    named = patient_split(df, fractions=(0.5, 0.5), names=("a", "b"), split_col="part")
    assert set(named["part"]) == {"a", "b"}


@pytest.mark.parametrize("fractions", [(0.7, 0.2), (0.5, 0.6, -0.1), (1.0,)])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="fractions"):
        patient_split(_table(10), fractions=fractions)


def test_rows_without_patient_id_are_refused():
    df = pd.DataFrame({"patient_id": ["a", None, "b"], "label": [0, 1, 0]})
    with pytest.raises(DatasetError, match="no patient_id"):
        patient_split(df)
    with pytest.raises(DatasetError, match="no 'subject'"):
        patient_split(df, patient_col="subject")


def test_kfold_whole_patients_balanced_folds():
    df = _table(103)
    out = patient_kfold(df, k=5, seed=0, stratify="label")
    assert out.groupby("patient_id")["fold"].nunique().max() == 1
    sizes = out.drop_duplicates("patient_id").value_counts("fold")
    assert sorted(sizes.index) == [0, 1, 2, 3, 4] and sizes.max() - sizes.min() <= 1
    abnormal = out.drop_duplicates("patient_id").groupby("fold")["label"].sum()
    assert abnormal.max() - abnormal.min() <= 1
    assert patient_kfold(df, k=5, seed=0, stratify="label")["fold"].tolist() == out["fold"].tolist()
    with pytest.raises(ValueError, match="k must be"):
        patient_kfold(df, k=1)
    with pytest.raises(ValueError, match="k must be"):
        patient_kfold(_table(3), k=4)


def test_named_split_holds_out_the_named_patients():
    df = pd.DataFrame({"patient_id": ["A", "A", "B", "C", "C", "D"], "x": range(6)})
    out = named_split(df, test=["D"], val=["B"])
    assert out["split"].tolist() == ["train", "train", "val", "train", "train", "test"]
    assert "split" not in df.columns  # a copy
    with pytest.raises(ValueError, match="not in the table"):
        named_split(df, test=["Z"])
    with pytest.raises(PatientLeakError, match="both test and val"):
        named_split(df, test=["A"], val=["A"])
    with pytest.raises(ValueError, match="at least one"):
        named_split(df, test=["A", "B"], val=["C", "D"])


def test_leak_check_names_patients_and_splits():
    df = pd.DataFrame({
        "patient_id": ["p1", "p1", "p2", "p3", "p3"],
        "split": ["train", "test", "train", "val", "val"],
    })
    with pytest.raises(PatientLeakError) as info:
        assert_no_patient_leak(df)
    assert "1 patient(s)" in str(info.value) and "p1 in test+train" in str(info.value)
    assert_no_patient_leak(df[df["patient_id"] != "p1"])
    with pytest.raises(DatasetError, match="no 'fold'"):
        assert_no_patient_leak(df, split_col="fold")


def test_manifest_round_trip_relative_paths_and_hash(tmp_path):
    df = patient_split(_table(12), seed=0)
    df["patient_id"] = df["patient_id"].str.replace("P", "00")  # ids with leading zeros stay text
    path, digest = write_manifest(df, tmp_path / "split.csv")
    data = path.read_bytes()
    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "split.csv.sha256").read_text() == f"{digest}  split.csv\n"
    assert data.startswith(b"path,patient_id,label,split\np000/img0.png,00000,")  # relative to /data/set
    assert b"\r" not in data and b"/data/set" not in data

    back = read_manifest(path, root="/data/set")
    assert back["path"].tolist() == df["path"].tolist()
    assert back["patient_id"].tolist() == df["patient_id"].tolist()
    assert back.drop(columns="path").equals(df.drop(columns="path").reset_index(drop=True))


def test_manifest_hash_is_deterministic_across_roots(tmp_path):
    df = _table(5)
    moved = df.assign(path=df["path"].str.replace("/data/set", "/elsewhere/copy"))
    _, a = write_manifest(df, tmp_path / "a.csv")
    _, b = write_manifest(moved, tmp_path / "b.csv")
    _, c = write_manifest(df, tmp_path / "c.csv", root="/data")
    assert a == b != c  # same files relative to their roots: same content, same hash


def test_edited_manifest_is_detected(tmp_path):
    path, digest = write_manifest(patient_split(_table(10)), tmp_path / "m.csv")
    path.write_bytes(path.read_bytes().replace(b",test", b",train", 1))
    with pytest.raises(ChecksumMismatch, match="changed since it was written"):
        read_manifest(path)
    assert len(read_manifest(path, verify=False)) > 0
    (tmp_path / "m.csv.sha256").unlink()
    with pytest.raises(DatasetError, match="No hash"):
        read_manifest(path)


def test_manifest_path_outside_root_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="not inside root"):
        write_manifest(_table(3), tmp_path / "m.csv", root="/other")
