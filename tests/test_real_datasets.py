"""Loaders on the real subsets in ../shared/data (skipped where absent) and on small layouts written here:
file-name patient ids, NIH labels, PneumoniaMNIST shapes, Sunnybrook masks on the LV in both layouts,
Teachable Machine projects, FracAtlas, and what bad input raises."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from helpers.contours import write_contour
from helpers.datasets import real
from helpers.datasets.real import (
    NIH_FINDINGS,
    load_fracatlas,
    load_image_folder,
    load_kermany,
    load_nih14,
    load_nih_subset,
    load_pneumoniamnist,
    load_sunnybrook,
    parse_kermany_name,
    read_tm_project,
    sunnybrook_image_and_mask,
    write_tm_project,
)
from helpers.datasets.splits import assert_no_patient_leak, patient_split
from helpers.errors import ContourError, DatasetError, EmptyFolderError, PatientLeakError


def _touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- Kermany ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "patient", "subtype"),
    [
        ("person1_virus_6.jpeg", "person1", "viral"),
        ("person100_bacteria_475.jpeg", "person100", "bacterial"),
        ("person447_virus_921_1.jpeg", "person447", "viral"),
        ("IM-0001-0001.jpeg", "IM-0001", "normal"),
        ("IM-0429-0001-0002.jpeg", "IM-0429", "normal"),
        ("NORMAL2-IM-0007-0001.jpeg", "NORMAL2-IM-0007", "normal"),
        ("scan.jpeg", "scan", "unknown"),
    ],
)
def test_kermany_patient_id_from_file_name(name, patient, subtype):
    assert parse_kermany_name(name) == (patient, subtype)


@pytest.mark.realdata
def test_kermany_real_subset_ids_and_leak_free_patient_split(shared_data):
    table = load_kermany(shared_data("chest_xray_kermany_224"))
    assert len(table) == 1342 + 3589
    assert table.groupby("label").size().to_dict() == {"NORMAL": 1342, "PNEUMONIA": 3589}
    assert "split" not in table.columns  # this copy gives no split
    by_file = table.set_index("file")
    assert by_file.loc["person100_bacteria_475.jpeg", "patient_id"] == "person100"
    assert by_file.loc["person100_virus_184.jpeg", "patient_id"] == "person100"  # same child, both subtypes
    assert by_file.loc["person447_virus_921_1.jpeg", ["patient_id", "subtype"]].tolist() == ["person447", "viral"]
    assert by_file.loc["IM-0429-0001-0002.jpeg", "patient_id"] == "IM-0429"
    assert by_file.loc["IM-0429-0001.jpeg", "patient_id"] == "IM-0429"
    assert by_file.loc["NORMAL2-IM-0429-0001.jpeg", "patient_id"] == "NORMAL2-IM-0429"  # a different child
    assert set(table["subtype"]) == {"normal", "bacterial", "viral"}
    assert (table.loc[table["label"] == "NORMAL", "subtype"] == "normal").all()
    assert table["target"].tolist() == (table["label"] == "PNEUMONIA").astype(int).tolist()
    assert table["patient_id"].nunique() < len(table)  # several images per child

    split = patient_split(table, seed=0, stratify="target")
    assert_no_patient_leak(split)
    patients = split.groupby("split")["patient_id"].nunique()
    assert abs(patients["train"] / patients.sum() - 0.7) < 0.01
    # Stratified by the patient's label: the pneumonia share of patients is the same in every split.
    share = split.drop_duplicates("patient_id").groupby("split")["target"].mean()
    assert share.max() - share.min() < 0.02


def test_kermany_original_release_layout_gives_the_split(tmp_path):
    root = tmp_path / "download" / "chest_xray"
    for split, cls, name in [
        ("train", "NORMAL", "IM-0115-0001.jpeg"),
        ("train", "PNEUMONIA", "person1_bacteria_1.jpeg"),
        ("test", "NORMAL", "NORMAL2-IM-0115-0001.jpeg"),
        ("val", "PNEUMONIA", "person1_virus_2.jpeg"),
    ]:
        _touch(root / split / cls / name)
    _touch(tmp_path / "download" / "__MACOSX" / "chest_xray" / "train" / "NORMAL" / "._IM-0115-0001.jpeg")
    _touch(root / "train" / "NORMAL" / ".DS_Store")
    table = load_kermany(tmp_path / "download")
    assert table[["split", "label", "patient_id"]].values.tolist() == [
        ["test", "NORMAL", "NORMAL2-IM-0115"],
        ["train", "NORMAL", "IM-0115"],
        ["train", "PNEUMONIA", "person1"],
        ["val", "PNEUMONIA", "person1"],
    ]
    # A second copy nested deeper (as some re-uploads carry) is reported, not loaded twice.
    _touch(tmp_path / "download" / "copy" / "train" / "NORMAL" / "IM-0115-0001.jpeg")
    with pytest.raises(DatasetError, match="two copies"):
        load_kermany(tmp_path / "download")
    shutil.rmtree(tmp_path / "download" / "copy")
    # The release's own split puts person1 in train and val: the check catches it.
    with pytest.raises(PatientLeakError, match="person1 in train\\+val"):
        assert_no_patient_leak(table)


# --- NIH ChestX-ray14 ------------------------------------------------------------------------------


@pytest.mark.realdata
def test_nih_subset_labels_parse(shared_data):
    root = shared_data("chest_xray_nih1000_64")
    table = load_nih_subset(root)
    assert len(table) == 800  # labels.csv also lists 200 'test' images that are not in the folders
    assert table.groupby(["split", "target"]).size().to_dict() == {
        ("train", 0): 300, ("train", 1): 300, ("valid", 0): 100, ("valid", 1): 100}
    assert list(table.columns[7:21]) == list(NIH_FINDINGS)
    labels = pd.read_csv(root / "labels.csv").set_index("image").loc[table["image"]]
    for finding in NIH_FINDINGS:
        expected = labels["Finding Labels"].str.split("|").map(lambda s, f=finding: int(f in s))
        assert table[finding].tolist() == expected.tolist(), finding
    assert table["patient_id"].str.fullmatch(r"\d{8}").all()
    assert (table["patient_id"] == table["image"].str[:8]).all()  # the id is the file-name prefix
    # Abnormal folder images all carry a finding; one 'Pneumonia' image sits in valid/0_normal.
    assert (table.loc[table["target"] == 1, "no_finding"] == 0).all()
    odd = table.loc[(table["target"] == 0) & (table["no_finding"] == 0), "image"].tolist()
    assert odd == ["00000193_019.png"]
    # The subset's own train/valid folders share patients: the leak check says so, a patient split fixes it.
    with pytest.raises(PatientLeakError, match="train\\+valid"):
        assert_no_patient_leak(table)
    assert_no_patient_leak(patient_split(table, fractions=(0.75, 0.25), stratify="target"))


def test_nih_full_release_layout(tmp_path):
    rows = [
        ("00000001_000.png", "Cardiomegaly", 0, 1, 58, "M", "PA"),
        ("00000001_001.png", "Cardiomegaly|Emphysema", 1, 1, 58, "M", "PA"),
        ("00000002_000.png", "No Finding", 0, 2, 81, "M", "PA"),
        ("00000003_000.png", "Hernia", 0, 3, 74, "F", "PA"),  # labelled but not downloaded
    ]
    pd.DataFrame(rows, columns=["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age",
                                "Patient Sex", "View Position"]).to_csv(tmp_path / "Data_Entry_2017_v2020.csv",
                                                                         index=False)
    for name, *_ in rows[:3]:
        _touch(tmp_path / "images" / name, b"png")
    (tmp_path / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n")
    (tmp_path / "test_list.txt").write_text("00000002_000.png\n00000003_000.png\n")
    table = load_nih14(tmp_path)
    assert table["image"].tolist() == ["00000001_000.png", "00000001_001.png", "00000002_000.png"]
    assert table["split"].tolist() == ["train_val", "train_val", "test"]
    assert table["patient_id"].tolist() == ["00000001", "00000001", "00000002"]
    assert table["Cardiomegaly"].tolist() == [1, 1, 0] and table["Emphysema"].tolist() == [0, 1, 0]
    assert table["sex"].tolist() == ["M", "M", "M"]
    assert_no_patient_leak(table)
    with pytest.raises(DatasetError, match="missing"):
        load_nih14(tmp_path, require_all=True)


def test_nih_unknown_finding_is_an_error(tmp_path):
    pd.DataFrame({"image": ["a.png"], "Finding Labels": ["Fracture"], "Patient ID": [1]}).to_csv(
        tmp_path / "labels.csv", index=False)
    _touch(tmp_path / "train" / "1_abnormal" / "a.png")
    with pytest.raises(DatasetError, match="Fracture"):
        load_nih_subset(tmp_path)


# --- PneumoniaMNIST ---------------------------------------------------------------------------------


@pytest.mark.realdata
def test_pneumoniamnist_shapes(shared_data):
    data = load_pneumoniamnist(shared_data("pneumoniamnist_28_balanced"))
    assert {k: (v[0].shape, v[1].shape) for k, v in data.items()} == {
        "train": ((2428, 28, 28), (2428,)), "val": ((270, 28, 28), (270,)), "test": ((468, 28, 28), (468,))}
    for images, labels in data.values():
        assert images.dtype == np.uint8 and labels.dtype == np.int64
        assert labels.mean() == 0.5  # the balanced subset
        assert 20 < images.mean() < 235  # real radiographs, not blank


def test_pneumoniamnist_wrong_file(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DatasetError, match="train_images"):
        load_pneumoniamnist(tmp_path / "other.npz")
    with pytest.raises(DatasetError, match="does not exist"):
        load_pneumoniamnist(tmp_path / "absent.npz")


# --- Sunnybrook -------------------------------------------------------------------------------------


def _ring_ratio(image: np.ndarray, mask: np.ndarray, width: int = 3) -> tuple[float, float]:
    """Mean intensity inside ``mask`` and in a ring ``width`` px wide just outside it."""
    ring = ndimage.binary_dilation(mask, iterations=width) & ~mask
    return float(image[mask].mean()), float(image[ring].mean())


@pytest.mark.realdata
def test_sunnybrook_table(shared_data):
    table = load_sunnybrook(shared_data("sunnybrook_lv"))
    assert len(table) == 74 and table["inner_contour"].notna().all()
    assert int(table["outer_contour"].notna().sum()) == 37
    assert table.groupby("patient_id").size().to_dict() == {
        "SCD0000101": 18, "SCD0000201": 18, "SCD0000301": 20, "SCD0000401": 18}
    assert dict(zip(table["patient_id"], table["original_id"]))["SCD0000301"] == "SC-HF-I-4"
    for _, row in table.iterrows():
        number = int(Path(row["inner_contour"]).name.split("-")[2])
        assert number == row["instance_number"] == int(Path(row["path"]).stem)


@pytest.mark.realdata
def test_sunnybrook_masks_sit_on_the_left_ventricle(shared_data):
    """The LV blood pool is bright in cine SSFP and the myocardium around it dark: inside the inner
    contour must be much brighter than a 3-pixel ring just outside it, for every patient. Measured on
    the real subset: 1.80 (SCD0000201) to 2.42 (SCD0000301); with x and y swapped only 1.08 to 1.38."""
    table = load_sunnybrook(shared_data("sunnybrook_lv"))
    ratios, swapped = {}, {}
    for patient, rows in table.groupby("patient_id"):
        inside, outside, inside_t, outside_t = [], [], [], []
        for _, row in rows.iterrows():
            image, mask = sunnybrook_image_and_mask(row)
            assert image.dtype == np.float32 and mask.dtype == bool and mask.shape == image.shape == (256, 256)
            # LV cavity 0.5 to 75 cm^2 at 1.37 mm pixels (the real frames span 86 to 2429 px: apex at ES
            # to base at ED)
            assert 25 < mask.sum() < 4000
            a, b = _ring_ratio(image, mask)
            inside.append(a), outside.append(b)
            a, b = _ring_ratio(image, mask.T)
            inside_t.append(a), outside_t.append(b)
        ratios[patient] = np.mean(inside) / np.mean(outside)
        swapped[patient] = np.mean(inside_t) / np.mean(outside_t)
    assert len(ratios) == 4
    assert all(r > 1.5 for r in ratios.values()), ratios
    assert all(swapped[p] < ratios[p] for p in ratios), (ratios, swapped)


@pytest.mark.realdata
def test_sunnybrook_outer_contour_encloses_the_inner(shared_data):
    table = load_sunnybrook(shared_data("sunnybrook_lv"))
    row = table[table["outer_contour"].notna()].iloc[0]
    _, inner = sunnybrook_image_and_mask(row, "inner")
    _, outer = sunnybrook_image_and_mask(row, "outer")
    _, myo = sunnybrook_image_and_mask(row, "myocardium")
    assert (inner & outer).sum() / inner.sum() > 0.98
    assert myo.sum() == (outer & ~inner).sum() > 0
    only_inner = table[table["outer_contour"].isna()].iloc[0]
    with pytest.raises(DatasetError, match="no outer contour"):
        sunnybrook_image_and_mask(only_inner, "outer")


def _official_layout(src: Path, dest: Path, scd_names: bool, header_only_names: bool = False) -> Path:
    """Rebuild the official release's layout from the shared subset (contoured frames only)."""
    link = pd.read_csv(src / "link.csv")
    for patient, original in zip(link["patient_id"], link["original_id"]):
        padded = original.rsplit("-", 1)[0] + "-" + original.rsplit("-", 1)[1].zfill(2)  # SC-HF-I-1 -> -01
        expert = dest / "SCD_ManualContours" / padded / "contours-manual" / "IRCCI-expert"
        expert.mkdir(parents=True)
        numbers = set()
        for contour in sorted((src / "contourfiles" / original).rglob("*.txt")):
            shutil.copy(contour, expert / contour.name)
            numbers.add(int(contour.name.split("-")[2]))
        # a papillary-muscle contour of the official release, which the loader ignores
        papillary = re.sub(r"[io]contour", "p1contour", contour.name)
        shutil.copy(contour, expert / papillary)
        series = dest / "SCD_DeidentifiedImages" / (patient if scd_names else padded) / "CINESAX_300"
        series.mkdir(parents=True)
        for number in sorted(numbers):
            name = f"frame_{number * 7919 % 1000:03d}_{number}x.dcm" if header_only_names else None
            name = name or f"IM-0003-{number:04d}.dcm"
            shutil.copy(src / "dicoms" / patient / f"{number}.dcm", series / name)
        _touch(series.parent / "CINELAX_400" / "notes.txt", b"not a dicom")
    if scd_names:
        link.rename(columns={"patient_id": "PatientID", "original_id": "OriginalID"}).assign(Gender="?").to_csv(
            dest / "scd_patientdata.csv", index=False)
    return dest


@pytest.mark.parametrize("scd_names", [True, False], ids=["SCD-folders+patientdata", "SC-HF-I-folders"])
@pytest.mark.realdata
def test_sunnybrook_official_layout_matches_the_shared_one(shared_data, tmp_path, scd_names):
    src = shared_data("sunnybrook_lv")
    reference = load_sunnybrook(src)
    official = load_sunnybrook(_official_layout(src, tmp_path / "scd", scd_names))
    assert len(official) == len(reference)
    if scd_names:
        assert official["patient_id"].tolist() == reference["patient_id"].tolist()
    assert official["instance_number"].tolist() == reference["instance_number"].tolist()
    for column in ("inner_contour", "outer_contour"):
        names = [Path(p).name if isinstance(p, str) else None for p in official[column]]
        assert names == [Path(p).name if isinstance(p, str) else None for p in reference[column]]
    assert official["path"].str.contains("CINESAX_300").all()
    image, mask = sunnybrook_image_and_mask(official.iloc[0])
    ref_image, ref_mask = sunnybrook_image_and_mask(reference.iloc[0])
    assert np.array_equal(image, ref_image) and np.array_equal(mask, ref_mask)


@pytest.mark.realdata
def test_sunnybrook_instance_numbers_from_headers_and_missing_link(shared_data, tmp_path):
    src = shared_data("sunnybrook_lv")
    root = _official_layout(src, tmp_path / "scd", scd_names=True, header_only_names=True)
    table = load_sunnybrook(root)  # file names carry no instance number: read from the DICOM headers
    assert table["instance_number"].tolist() == load_sunnybrook(src)["instance_number"].tolist()
    (root / "scd_patientdata.csv").unlink()
    with pytest.raises(DatasetError, match="link"):
        load_sunnybrook(root)
    mapping = dict(pd.read_csv(src / "link.csv").values)
    assert len(load_sunnybrook(root, link=mapping)) == 74


@pytest.mark.realdata
def test_contour_points_outside_the_image_raise_contour_error(shared_data, tmp_path):
    table = load_sunnybrook(shared_data("sunnybrook_lv"))
    bad = write_contour(tmp_path / "IM-0001-0048-icontour-manual.txt",
                        np.array([[100.0, 100.0], [300.0, 110.0], [120.0, 140.0]]))
    row = table.iloc[0].copy()
    row["inner_contour"] = str(bad)
    with pytest.raises(ContourError, match="outside the 256x256 image"):
        sunnybrook_image_and_mask(row)


# --- RSNA workshop: image folders and Teachable Machine ------------------------------------------------


@pytest.mark.realdata
def test_workshop_image_folders(shared_data):
    flat = load_image_folder(shared_data("rsna_ich_workshop", "exp1_30normal_30hemorrhage_224jpg"))
    assert flat.groupby("label").size().to_dict() == {"Hemorrhage": 30, "Normal": 30}
    assert flat["file"].head(3).tolist() == ["Hemorrhage_0.jpg", "Hemorrhage_1.jpg", "Hemorrhage_2.jpg"]
    assert flat["patient_id"].isna().all()  # the workshop files carry no patient id
    samples = shared_data("rsna_ich_workshop", "png512_test_samples")
    folders = load_image_folder(samples, classes=["normal", "ich"])
    assert folders.groupby(["label", "target"]).size().to_dict() == {("ich", 1): 18, ("normal", 0): 18}
    with pytest.raises(DatasetError, match="no images of class"):
        load_image_folder(samples, classes=["normal", "sdh"])


@pytest.mark.realdata
def test_real_teachable_machine_project_opens(shared_data):
    project = read_tm_project(shared_data("rsna_ich_workshop", "original_tm_and_zip", "exp_1.tm"))
    assert project.table.groupby("label", sort=False).size().to_dict() == {"Hemorrhage": 30, "Normal": 30}
    assert project.table["target"].tolist() == [0] * 30 + [1] * 30
    assert project.table["entry"].iloc[0] == "Hemorrhage-!-0.jpg"
    assert project.manifest == {"type": "image", "version": "2.4.4", "appdata": {
        "publishResults": {}, "trainEpochs": 15, "trainBatchSize": 16, "trainLearningRate": 0.00005}}
    assert len(project.images) == 60
    assert all(im.shape == (224, 224, 3) and im.dtype == np.uint8 for im in project.images)


@pytest.mark.realdata
def test_teachable_machine_round_trip_mirrors_the_real_file(shared_data, tmp_path):
    original = shared_data("rsna_ich_workshop", "original_tm_and_zip", "exp_1.tm")
    project = read_tm_project(original)
    by_class = {label: [project.images[i] for i in rows.index]
                for label, rows in project.table.groupby("label", sort=False)}
    written = write_tm_project(by_class, tmp_path / "copy.tm", epochs=15, batch_size=16, learning_rate=0.00005)
    with zipfile.ZipFile(original) as a, zipfile.ZipFile(written) as b:
        assert b.namelist() == a.namelist()  # same entries in the same order, manifest last
        assert b.read("manifest.json") == a.read("manifest.json")  # byte for byte
        stored = {zipfile.ZIP_STORED}
        assert {i.compress_type for i in b.infolist()} == {i.compress_type for i in a.infolist()} == stored
    again = read_tm_project(written)
    assert again.table.equals(project.table) and again.manifest == project.manifest
    diffs = [np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(again.images, project.images)]
    assert max(diffs) < 3.0  # JPEG re-encoding only


def test_write_tm_project_resizes_and_validates(tmp_path):
    grey = np.linspace(0, 1, 300 * 400).reshape(300, 400)
    path = write_tm_project({"A": [grey], "B": [np.zeros((224, 224, 3), np.uint8)]}, tmp_path / "p.tm")
    project = read_tm_project(path)
    assert [im.shape for im in project.images] == [(224, 224, 3), (224, 224, 3)]
    assert project.manifest["appdata"]["trainEpochs"] == 50
    assert write_tm_project({"A": [grey]}, tmp_path / "q.tm").read_bytes() == \
        write_tm_project({"A": [grey]}, tmp_path / "r.tm").read_bytes()  # deterministic bytes
    with pytest.raises(ValueError, match="-!-"):
        write_tm_project({"a-!-b": [grey]}, tmp_path / "x.tm")
    with pytest.raises(ValueError, match="no images"):
        write_tm_project({"A": []}, tmp_path / "x.tm")


def test_not_a_teachable_machine_project(tmp_path):
    _touch(tmp_path / "x.tm", b"not a zip")
    with pytest.raises(DatasetError, match="zip"):
        read_tm_project(tmp_path / "x.tm")
    with zipfile.ZipFile(tmp_path / "y.tm", "w") as zf:
        zf.writestr("A-!-0.jpg", b"")
    with pytest.raises(DatasetError, match="manifest.json"):
        read_tm_project(tmp_path / "y.tm")


# --- FracAtlas -------------------------------------------------------------------------------------


def _fracatlas(root: Path, with_csv: bool = True) -> Path:
    base = root / "FracAtlas"
    for name in ("IMG0000019.jpg", "IMG0000025.jpg"):
        _touch(base / "images" / "Fractured" / name)
    for name in ("IMG0000001.jpg", "IMG0000002.jpg", "IMG0000003.jpg"):
        _touch(base / "images" / "Non_fractured" / name)
    if with_csv:
        pd.DataFrame({
            "image_id": [f"IMG00000{n:02d}.jpg" for n in (1, 2, 3, 19, 25)],
            "hand": [1, 0, 0, 0, 1], "leg": [0, 1, 1, 1, 0], "hip": 0, "shoulder": 0, "mixed": 0, "hardware": 0,
            "multiscan": 0, "fractured": [0, 0, 0, 1, 1], "fracture_count": [0, 0, 0, 1, 2],
            "frontal": 1, "lateral": 0, "oblique": 0,
        }).to_csv(base / "dataset.csv", index=False)
    return root


def test_fracatlas_layout(tmp_path):
    table = load_fracatlas(_fracatlas(tmp_path))
    assert table["image_id"].tolist() == ["IMG0000001.jpg", "IMG0000002.jpg", "IMG0000003.jpg",
                                          "IMG0000019.jpg", "IMG0000025.jpg"]
    assert table["label"].tolist() == ["non_fractured"] * 3 + ["fractured"] * 2
    assert table["patient_id"].tolist()[0] == "IMG0000001"
    assert table["fracture_count"].tolist() == [0, 0, 0, 1, 2]
    assert table["path"].str.contains("images/Fractured").tolist() == [False] * 3 + [True] * 2
    no_csv = load_fracatlas(_fracatlas(tmp_path / "b", with_csv=False) / "FracAtlas")
    assert no_csv["fractured"].tolist() == [0, 0, 0, 1, 1]


def test_fracatlas_csv_contradicting_folders(tmp_path):
    root = _fracatlas(tmp_path)
    csv = root / "FracAtlas" / "dataset.csv"
    table = pd.read_csv(csv)
    table.loc[0, "fractured"] = 1
    table.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match="wrong images/ folder"):
        load_fracatlas(root)


# --- Bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loader", [load_kermany, load_nih_subset, load_sunnybrook, load_image_folder, load_fracatlas]
)
def test_empty_folder_raises_empty_folder_error(tmp_path, loader):
    (tmp_path / ".DS_Store").write_bytes(b"")
    with pytest.raises(EmptyFolderError, match="empty"):
        loader(tmp_path)


@pytest.mark.parametrize(
    ("loader", "hint"),
    [
        (load_kermany, "NORMAL or PNEUMONIA"),
        (load_nih_subset, "labels.csv"),
        (load_nih14, "Data_Entry_2017_v2020.csv"),
        (load_sunnybrook, "contour folder"),
        (load_fracatlas, "images/Fractured"),
    ],
)
def test_wrong_layout_names_what_was_expected_and_how_to_get_it(tmp_path, loader, hint):
    _touch(tmp_path / "dicoms" / "readme.txt", b"hello")
    with pytest.raises(DatasetError) as info:
        loader(tmp_path)
    message = str(info.value)
    assert hint in message and "Expected layout" in message and "How to get it" in message


def test_missing_folder_raises_with_download_steps(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as info:
        load_kermany(tmp_path / "nope")
    assert "data.mendeley.com" in str(info.value)


def test_image_folder_with_unlabelled_files(tmp_path):
    _touch(tmp_path / "scan.png")
    with pytest.raises(DatasetError, match="class folder"):
        load_image_folder(tmp_path)


def test_kermany_folders_without_images(tmp_path):
    (tmp_path / "NORMAL").mkdir()
    (tmp_path / "PNEUMONIA").mkdir()
    with pytest.raises(EmptyFolderError, match="hold no images"):
        load_kermany(tmp_path)


def test_public_names_are_exported():
    for name in ("load_kermany", "load_nih_subset", "load_nih14", "load_pneumoniamnist", "load_sunnybrook",
                 "sunnybrook_image_and_mask", "load_image_folder", "read_tm_project", "write_tm_project",
                 "load_fracatlas"):
        assert callable(getattr(real, name))
