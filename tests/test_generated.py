"""helpers.datasets.generated: four synthetic DICOM data sets, each made by one call (small n, fast)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from helpers.contours import contour_to_mask, read_contour
from helpers.datasets import generated as G
from helpers.datasets import phantoms as P
from helpers.dicom import SOP_CLASS_BY_MODALITY
from helpers.errors import DatasetError

# One small call per set: (make function, its arguments, modality).
SMALL = {
    "chest_xray": (G.make_chest_xray, dict(n_patients=4, images_per_patient=2, size=128, multilabel=True), "DX"),
    "cardiac_mr": (G.make_cardiac_mr, dict(n_patients=2, slices_per_patient=3, size=256), "MR"),
    "knee_xray": (G.make_knee_xray, dict(n_patients=4, images_per_patient=2, size=128, fracture_fraction=0.5), "DX"),
    "head_ct": (G.make_head_ct, dict(n_patients=2, slices_per_patient=4, size=128), "CT"),
}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _ring(mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """Pixels between ``inner`` and ``outer`` px (chessboard distance) outside ``mask``."""
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=outer) & ~binary_dilation(mask, iterations=inner)


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory) -> dict[str, tuple[Path, pd.DataFrame]]:
    """Each set made once, small, in its own folder."""
    out = {}
    for name, (make, kwargs, _) in SMALL.items():
        folder = tmp_path_factory.mktemp(name)
        out[name] = (folder, make(folder, **kwargs))
    return out


# --- DICOM, UIDs, manifest ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SMALL))
def test_files_reopen_with_pydicom_and_match_the_manifest(small_sets, name):
    folder, table = small_sets[name]
    size, modality = SMALL[name][1]["size"], SMALL[name][2]
    assert len(table) == SMALL[name][1]["n_patients"] * SMALL[name][1].get(
        "images_per_patient", SMALL[name][1].get("slices_per_patient")
    )
    assert {"path", "patient_id", "study_uid", "series_uid", "sop_uid", "instance_number"} <= set(table.columns)
    for row in table.itertuples():
        ds = pydicom.dcmread(row.path)
        assert ds.Modality == modality
        assert ds.SOPClassUID == SOP_CLASS_BY_MODALITY[modality]
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == row.sop_uid
        assert (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID) == (
            row.patient_id,
            row.study_uid,
            row.series_uid,
        )
        assert ds.InstanceNumber == row.instance_number
        assert (ds.Rows, ds.Columns) == (size, size)
        assert float(ds.PixelSpacing[0]) == float(ds.PixelSpacing[1]) == pytest.approx(row.pixel_spacing_mm)
    # UIDs: unique SOP instances; a series lies in one study, a study belongs to one patient.
    assert table.sop_uid.is_unique
    assert (table.groupby("series_uid").study_uid.nunique() == 1).all()
    assert (table.groupby("study_uid").patient_id.nunique() == 1).all()
    assert table.groupby("patient_id").series_uid.nunique().min() >= 1
    # manifest.csv holds the same table with paths relative to the folder.
    csv = pd.read_csv(folder / G.MANIFEST_FILE, dtype={"patient_id": str})
    assert list(csv.columns) == list(table.columns) or set(csv.columns) == set(table.columns)
    assert [str(folder / p) for p in csv.path] == list(table.path)
    assert json.loads((folder / G.PARAMS_FILE).read_text())["complete"] is True


def test_pixel_formats_per_modality(small_sets):
    chest = pydicom.dcmread(small_sets["chest_xray"][1].path[0])
    assert chest.BitsStored in (12, 14) and chest.pixel_array.dtype == np.uint16
    assert chest.PhotometricInterpretation == "MONOCHROME2" and chest.pixel_array.max() < 2**chest.BitsStored
    ct = pydicom.dcmread(small_sets["head_ct"][1].path[0])
    assert (float(ct.RescaleSlope), float(ct.RescaleIntercept)) == (1.0, -1024.0)
    assert (float(ct.WindowCenter), float(ct.WindowWidth)) == (40.0, 80.0)
    mr = pydicom.dcmread(small_sets["cardiac_mr"][1].path[0])
    assert mr.pixel_array.dtype == np.int16 and mr.PixelRepresentation == 1
    knee = small_sets["knee_xray"][1]
    assert set(knee.photometric) <= {"MONOCHROME1", "MONOCHROME2"}
    for row in knee.itertuples():
        ds = pydicom.dcmread(row.path)
        assert (ds.PhotometricInterpretation, ds.BitsStored) == (row.photometric, row.bits_stored)


def test_head_ct_slices_share_a_series_and_sort_by_position(small_sets):
    table = small_sets["head_ct"][1]
    for _, series in table.groupby("series_uid"):
        z = [float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) for p in series.path]
        assert np.all(np.diff(z) > 0)
        np.testing.assert_allclose(np.diff(z), series.slice_thickness_mm.iloc[0], atol=1e-3)
        assert series.patient_id.nunique() == 1


# --- determinism, idempotence -------------------------------------------------------------------


def test_same_seed_same_pixels_other_seed_other_pixels(tmp_path):
    a = G.make_head_ct(tmp_path / "a", n_patients=1, slices_per_patient=2, size=64, seed=3)
    b = G.make_head_ct(tmp_path / "b", n_patients=1, slices_per_patient=2, size=64, seed=3)
    c = G.make_head_ct(tmp_path / "c", n_patients=1, slices_per_patient=2, size=64, seed=4)
    for pa, pb, pc in zip(a.path, b.path, c.path):
        da, db, dc = (pydicom.dcmread(p) for p in (pa, pb, pc))
        np.testing.assert_array_equal(da.pixel_array, db.pixel_array)
        assert da.SOPInstanceUID == db.SOPInstanceUID != dc.SOPInstanceUID
        assert not np.array_equal(da.pixel_array, dc.pixel_array)


@pytest.mark.parametrize(
    "synth, kwargs",
    [
        (G.synth_chest_xray, dict(n_patients=2, images_per_patient=2, size=64)),
        (G.synth_cardiac_mr, dict(n_patients=1, slices_per_patient=2, size=128)),
        (G.synth_knee_xray, dict(n_patients=2, images_per_patient=1, size=64)),
        (G.synth_head_ct, dict(n_patients=1, slices_per_patient=2, size=64)),
    ],
)
def test_in_memory_sets_are_deterministic(synth, kwargs):
    first, again, other = synth(seed=7, **kwargs), synth(seed=7, **kwargs), synth(seed=8, **kwargs)
    np.testing.assert_array_equal(first.images, again.images)
    pd.testing.assert_frame_equal(first.table, again.table)
    assert not np.array_equal(first.images, other.images)
    assert first.images.dtype == np.float32 and first.images.shape[0] == len(first.table)


def test_cardiac_slices_do_not_depend_on_what_was_made_before():
    """The per-patient cache (anatomy and body drawn once) gives each slice the same pixels whatever the order,
    and no slice changes the cached body another slice starts from."""
    args = dict(size=64, difficulty=0.5, n_slices=4)
    P._cardiac_patient.cache_clear()
    forward = [P.cardiac_mr_slice(patient_seed=(1, 2, p), slice_index=k, **args).image for p in range(3) for k in range(4)]
    P._cardiac_patient.cache_clear()
    backward = [P.cardiac_mr_slice(patient_seed=(1, 2, p), slice_index=k, **args).image
                for p in reversed(range(3)) for k in reversed(range(4))][::-1]
    for a, b in zip(forward, backward):
        np.testing.assert_array_equal(a, b)
    assert not P._cardiac_patient((1, 2, 0), 64).body.flags.writeable
    assert not np.array_equal(forward[0], forward[1])  # slices of one patient still differ


def test_in_memory_images_are_the_written_ones(tmp_path):
    kwargs = dict(n_patients=2, images_per_patient=2, size=64, fracture_fraction=0.5, seed=5)
    table = G.make_knee_xray(tmp_path, **kwargs)
    mem = G.synth_knee_xray(**kwargs)
    for image, row in zip(mem.images, table.itertuples()):
        ds = pydicom.dcmread(row.path)
        top = 2**ds.BitsStored - 1
        bright = ds.pixel_array / top
        if ds.PhotometricInterpretation == "MONOCHROME1":
            bright = 1.0 - bright
        np.testing.assert_allclose(bright, image, atol=0.5 / top + 1e-6)
    pd.testing.assert_frame_equal(mem.table, table.drop(columns="path"), check_dtype=False)
    chest = G.make_chest_xray(tmp_path / "chest", n_patients=2, size=64, multilabel=True)
    pd.testing.assert_frame_equal(
        G.synth_chest_xray(n_patients=2, size=64, multilabel=True).table, chest.drop(columns="path"), check_dtype=False
    )


def test_rerun_with_same_arguments_writes_nothing(tmp_path):
    kwargs = dict(n_patients=2, images_per_patient=2, size=64)
    first = G.make_chest_xray(tmp_path, **kwargs)
    stamps = {p: os.stat(p).st_mtime_ns for p in [*first.path, tmp_path / G.MANIFEST_FILE, tmp_path / G.PARAMS_FILE]}
    again = G.make_chest_xray(tmp_path, **kwargs)
    pd.testing.assert_frame_equal(first, again)
    assert {p: os.stat(p).st_mtime_ns for p in stamps} == stamps


def test_new_arguments_replace_the_old_files(tmp_path):
    G.make_chest_xray(tmp_path, n_patients=3, images_per_patient=1, size=64)
    smaller = G.make_chest_xray(tmp_path, n_patients=1, images_per_patient=1, size=64)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.dcm")) == ["CXR0001/0001.dcm"]
    assert len(smaller) == 1
    assert json.loads((tmp_path / G.PARAMS_FILE).read_text())["params"]["n_patients"] == 1


def test_a_folder_of_other_files_is_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="did not write"):
        G.make_head_ct(tmp_path, n_patients=1, slices_per_patient=1, size=64)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_default_folder_is_under_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path))
    table = G.make_head_ct(n_patients=1, slices_per_patient=1, size=64)
    assert Path(table.path[0]).parent.parent == tmp_path / "generated" / "head_ct"


def test_bad_arguments_say_which(tmp_path):
    with pytest.raises(ValueError, match="difficulty"):
        G.synth_chest_xray(n_patients=1, difficulty=1.5)
    with pytest.raises(ValueError, match="fracture_fraction"):
        G.make_knee_xray(tmp_path, n_patients=1, fracture_fraction=-0.1)
    with pytest.raises(ValueError, match="size"):
        G.synth_head_ct(n_patients=1, size=63)


# --- what the images show ------------------------------------------------------------------------


def test_head_ct_tissues_have_their_hounsfield_units():
    s = G.synth_head_ct(
        n_patients=2,
        slices_per_patient=6,
        size=256,
        haemorrhage_fraction=1.0,
        seed=1,
        masks=("air", "bone", "csf", "grey", "white", "blood", "haemorrhage"),
    )
    mean = {name: float(s.images[mask].mean()) for name, mask in s.masks.items()}
    assert s.masks["blood"].sum() > 100 and set(s.table.patient_subtype) == {"intraparenchymal", "subdural"}
    assert 50 <= mean["blood"] <= 90
    assert 0 <= mean["csf"] <= 15
    assert 35 <= mean["grey"] <= 45
    assert 20 <= mean["white"] <= 30
    assert mean["bone"] > 300 and mean["air"] < -900
    # Slice labels follow the mask, and the box holds the bleed.
    shows = s.masks["haemorrhage"].any(axis=(1, 2))
    np.testing.assert_array_equal(shows, s.table.label.to_numpy() == 1)
    for image_mask, row in zip(s.masks["haemorrhage"], s.table.itertuples()):
        if row.label:
            ys, xs = np.nonzero(image_mask)
            assert (row.lesion_x0, row.lesion_y0, row.lesion_x1, row.lesion_y1) == (
                xs.min(),
                ys.min(),
                xs.max(),
                ys.max(),
            )


@pytest.mark.parametrize("difficulty", [0.0, 1.0])
def test_haemorrhage_stays_acute_blood_at_any_difficulty(difficulty):
    s = G.synth_head_ct(
        n_patients=2,
        slices_per_patient=4,
        size=256,
        haemorrhage_fraction=1.0,
        difficulty=difficulty,
        seed=2,
        masks=("blood",),
    )
    assert s.masks["blood"].sum() > 50
    assert 50 <= s.images[s.masks["blood"]].mean() <= 90


def test_cardiac_i_contour_encloses_the_bright_blood_pool(small_sets):
    folder, table = small_sets["cardiac_mr"]
    _, kwargs, _ = SMALL["cardiac_mr"]
    truth = G.synth_cardiac_mr(**kwargs, masks=("blood_pool",)).masks["blood_pool"]
    for row, pool in zip(table.itertuples(), truth):
        image = pydicom.dcmread(row.path).pixel_array.astype(float)
        mask = contour_to_mask(read_contour(row.icontour_path), image.shape)
        assert _dice(mask, pool) > 0.9
        outside = _ring(mask, 2, 5)
        assert image[mask].mean() > 1.5 * image[outside].mean()
        outer = contour_to_mask(read_contour(row.ocontour_path), image.shape)
        assert (outer | mask).sum() == outer.sum()  # the epicardium encloses the blood pool
        assert row.blood_pool_mm2 == pytest.approx(mask.sum() * row.pixel_spacing_mm**2, rel=0.05)


def test_cardiac_folder_has_the_real_sunnybrook_layout(small_sets, shared_data):
    real = shared_data("sunnybrook_lv")
    folder, _ = small_sets["cardiac_mr"]

    def shapes(root: Path) -> set[str]:
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
        files = [f for f in files if f not in (G.MANIFEST_FILE, G.PARAMS_FILE)]
        return {re.sub(r"\d+", "N", f) for f in files}

    assert shapes(folder) == shapes(real)
    patterns = [
        r"dicoms/SCD\d{7}/\d+\.dcm",
        r"contourfiles/SC-HF-I-\d+/i-contours/IM-0001-\d{4}-icontour-manual\.txt",
        r"contourfiles/SC-HF-I-\d+/o-contours/IM-0001-\d{4}-ocontour-manual\.txt",
        r"link\.csv",
    ]
    for root in (real, folder):
        for f in (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()):
            assert f in (G.MANIFEST_FILE, G.PARAMS_FILE) or any(re.fullmatch(pat, f) for pat in patterns), f
    assert (folder / "link.csv").read_text().splitlines()[0] == (real / "link.csv").read_text().splitlines()[0]
    # Every contour's NNNN names a DICOM instance of the patient that link.csv maps to it.
    link = pd.read_csv(folder / "link.csv")
    for pid, original in zip(link.patient_id, link.original_id):
        instances = {int(p.stem) for p in (folder / "dicoms" / pid).glob("*.dcm")}
        numbers = {int(p.name.split("-")[2]) for p in (folder / "contourfiles" / original).rglob("*.txt")}
        assert numbers and numbers <= instances


def test_cardiac_folder_reads_with_the_real_data_loader(small_sets):
    real = pytest.importorskip("helpers.datasets.real")
    if not hasattr(real, "load_sunnybrook"):
        pytest.skip("helpers.datasets.real has no load_sunnybrook yet")
    folder, table = small_sets["cardiac_mr"]
    loaded = real.load_sunnybrook(folder)
    assert len(loaded) == len(table)
    assert set(loaded.patient_id) == set(table.patient_id)


def test_knee_fracture_fraction_is_respected():
    s = G.synth_knee_xray(n_patients=10, images_per_patient=1, fracture_fraction=0.3, size=64, seed=0)
    assert s.table.groupby("patient_id").label.first().sum() == 3
    assert (s.table.fracture_site != "none").sum() == 3
    assert s.table.lesion_cx.notna().sum() == 3
    balanced = G.synth_knee_xray(n_patients=10, images_per_patient=1, fracture_fraction=0.5, size=64, seed=0)
    assert balanced.table.label.sum() == 5


def test_knee_joint_box_and_storage_vary():
    s = G.synth_knee_xray(n_patients=12, images_per_patient=1, size=128, seed=0, masks=("femur", "tibia"))
    t = s.table
    assert (t.joint_x0 < t.joint_cx).all() and (t.joint_cx < t.joint_x1).all()
    assert (t.joint_y0 < t.joint_cy).all() and (t.joint_cy < t.joint_y1).all()
    assert t.joint_cx.std() > 5 and t.joint_cy.std() > 5  # the knee moves: a localiser has work to do
    assert set(t.photometric) == {"MONOCHROME1", "MONOCHROME2"} and t.bits_stored.nunique() >= 2
    for femur, tibia, row in zip(s.masks["femur"], s.masks["tibia"], t.itertuples()):
        x0, y0, x1, y1 = int(row.joint_x0), int(row.joint_y0), int(row.joint_x1), int(row.joint_y1)
        assert femur[y0 : y1 + 1, x0 : x1 + 1].any() and tibia[y0 : y1 + 1, x0 : x1 + 1].any()


def test_chest_labels_and_lesion_boxes_for_a_pointing_game():
    s = G.synth_chest_xray(
        n_patients=8, images_per_patient=1, size=128, multilabel=True, seed=0, masks=("pneumonia", "lungs", "nodule")
    )
    t = s.table
    for finding in P.CHEST_FINDINGS:
        assert t[finding].sum() == 4  # round(0.5 * 8) patients each
        assert (t[f"{finding}_cx"].notna() == (t[finding] == 1)).all()
    assert (t.label == t[list(P.CHEST_FINDINGS)].max(axis=1)).all()
    assert (t.cardiothoracic_ratio[t.cardiomegaly == 1] > 0.5).all()
    assert (t.cardiothoracic_ratio[t.cardiomegaly == 0] < 0.5).all()
    for i, row in enumerate(t.itertuples()):
        if row.pneumonia:
            cx, cy = int(round(row.lesion_cx)), int(round(row.lesion_cy))
            assert s.masks["lungs"][i][cy, cx] and s.masks["pneumonia"][i][cy, cx]
            assert 0 <= row.lesion_x0 <= row.lesion_x1 < 128
        else:
            assert not s.masks["pneumonia"][i].any()


# --- difficulty ----------------------------------------------------------------------------------


def _cnr(images: np.ndarray, masks: np.ndarray) -> float:
    """Mean over images of (mean in lesion - mean in a ring 2-6 px outside) / SD in the ring."""
    values = []
    for image, mask in zip(images, masks):
        if mask.sum() < 4:
            continue
        ring = _ring(mask, 2, 6)
        values.append((image[mask].mean() - image[ring].mean()) / image[ring].std())
    return float(np.mean(values))


@pytest.mark.parametrize("name", ["chest_xray", "knee_xray", "head_ct"])
def test_lesion_contrast_to_noise_falls_with_difficulty(name):
    def lesion_cnr(difficulty: float) -> float:
        if name == "chest_xray":
            s = G.synth_chest_xray(n_patients=6, images_per_patient=1, size=128, prevalence=1.0, difficulty=difficulty)
            return _cnr(s.images, s.masks["pneumonia"])
        if name == "knee_xray":
            s = G.synth_knee_xray(
                n_patients=6, images_per_patient=1, size=128, fracture_fraction=1.0, difficulty=difficulty
            )
            return -_cnr(s.images, s.masks["fracture"])  # a fracture line is darker than the bone around it
        s = G.synth_head_ct(
            n_patients=4, slices_per_patient=3, size=128, haemorrhage_fraction=1.0, difficulty=difficulty
        )
        return _cnr(s.images, s.masks["haemorrhage"])

    easy, middle, hard = (lesion_cnr(d) for d in (0.0, 0.5, 1.0))
    assert easy > middle > hard
    assert easy > 2 * max(hard, 0.1)


def test_blood_myocardium_contrast_falls_with_difficulty():
    def cnr(difficulty: float) -> float:
        s = G.synth_cardiac_mr(
            n_patients=2, slices_per_patient=2, size=256, difficulty=difficulty, masks=("blood_pool", "myocardium")
        )
        blood = np.array([im[m].mean() for im, m in zip(s.images, s.masks["blood_pool"])])
        myo = np.array([im[m].mean() for im, m in zip(s.images, s.masks["myocardium"])])
        sd = np.array([im[m].std() for im, m in zip(s.images, s.masks["myocardium"])])
        return float(np.mean((blood - myo) / sd))

    easy, middle, hard = cnr(0.0), cnr(0.5), cnr(1.0)
    assert easy > middle > hard > 0


def test_a_linear_classifier_finds_easy_pneumonia_easier():
    def accuracy(difficulty: float) -> float:
        train = G.synth_chest_xray(
            n_patients=120, images_per_patient=1, size=64, difficulty=difficulty, seed=1, masks=()
        )
        test = G.synth_chest_xray(n_patients=60, images_per_patient=1, size=64, difficulty=difficulty, seed=2, masks=())

        def features(images: np.ndarray) -> np.ndarray:
            return images.reshape(len(images), 16, 4, 16, 4).mean(axis=(2, 4)).reshape(len(images), -1)

        x, xt = features(train.images), features(test.images)
        mu, sd = x.mean(0), x.std(0) + 1e-6
        x, xt = (x - mu) / sd, (xt - mu) / sd
        y = 2.0 * train.table.label.to_numpy() - 1.0
        w = np.linalg.solve(x.T @ x + 30.0 * np.eye(x.shape[1]), x.T @ y)  # ridge regression classifier
        return float(np.mean((xt @ w > 0) == (test.table.label.to_numpy() == 1)))

    assert accuracy(0.0) > accuracy(1.0) + 0.15


# --- phantom tools -------------------------------------------------------------------------------


def test_gaussian_noise_is_standard_normal_and_seeded():
    a = P.gaussian_noise(np.random.default_rng(1), (256, 256))
    b = P.gaussian_noise(np.random.default_rng(1), (256, 256))
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1.0) < 0.02 and a.dtype == np.float32


def test_lazy_masks_are_made_once_on_first_use():
    calls = []
    masks = P.LazyMasks({"a": lambda: calls.append(1) or np.ones((2, 2), bool)})
    assert calls == [] and list(masks) == ["a"] and len(masks) == 1
    assert masks["a"].all() and masks["a"].all()
    assert calls == [1]


# --- The PHI study: identity where real files carry it, and the de-identification removes all of it -------


@pytest.fixture(scope="module")
def phi_study(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("phi")
    return folder, G.make_phi_study(folder, n_patients=2, slices_per_patient=3, size=96)


def test_phi_study_carries_identity_in_tags_private_block_names_and_pixels(phi_study):
    folder, table = phi_study
    assert len(table) == 2 * (3 + 1)
    assert table.groupby("patient_id").kind.value_counts().unstack().to_dict("list") == {
        "ct": [3, 3], "screen_capture": [1, 1]}
    assert all(Path(p).is_relative_to(folder / "dicom") for p in table.path)
    for row in table.itertuples():
        ds = pydicom.dcmread(row.path)
        assert (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate) == (row.patient_name, row.patient_id,
                                                                          row.birth_date)
        assert ds.StudyDate == row.study_date and ds.AccessionNumber == row.accession_number
        assert ds.InstitutionName and ds.ReferringPhysicianName and ds.PatientAddress
        first, last = row.patient_name.split("^")[1].title(), row.patient_name.split("^")[0].title()
        assert first in ds.ImageComments and last.replace(" ", "") in ds.ImageComments
        assert ds.OtherPatientIDsSequence[0].PatientID.startswith("NHS")
        block = ds.private_block(0x0029, G.PHI_PRIVATE_CREATOR)
        assert str(block[0x11].value) == row.patient_name
        assert row.patient_name.split("^")[0].replace(" ", "") in Path(row.path).parent.parent.name
        if row.kind == "ct":
            assert ds.Modality == "CT" and "BurnedInAnnotation" not in ds
        else:
            assert ds.Modality == "OT" and ds.BurnedInAnnotation == "YES" and row.burned_in
            pixels = ds.pixel_array
            # The top band holds white text on black; the image below is a windowed brain slice.
            band = pixels[: pixels.shape[0] // 4]
            assert (band == 255).sum() > 30 and (band == 0).mean() > 0.5
    assert table.patient_id.nunique() == 2 and table.study_uid.nunique() == 2 and table.series_uid.nunique() == 4


def test_phi_study_is_fully_removed_by_the_deidentification(phi_study, tmp_path):
    from helpers import deid

    folder, table = phi_study
    df = deid.deidentify_folder(folder / "dicom", tmp_path / "out", key="phi-study-test-key-37")
    assert (df.status == "ok").all() and len(df) == len(table)
    flagged = {Path(s).parts[1] for s in df.source[df.burned_in]}
    assert flagged == {"SC"} and df.burned_in.sum() == 2
    originals = set()
    for path in table.path:
        originals |= deid.identifying_values(pydicom.dcmread(path))
    assert set(table.study_date) <= originals and set(table.birth_date) <= originals
    assert set(table.patient_name) <= originals and set(table.patient_id) <= originals
    assert deid.verification_report(tmp_path / "out", originals).empty
    texts = [p.split("^")[0] for p in table.patient_name] + list(table.patient_id) + list(table.accession_number)
    for out in df.output:
        raw = Path(out).read_bytes().upper()
        assert not [t for t in texts if t.upper().encode() in raw], out
        assert "SPRINGFIELD" not in out.upper() and b"SPRINGFIELD" not in raw


def test_phi_study_refuses_more_people_than_it_has(tmp_path):
    with pytest.raises(ValueError, match="at most 8"):
        G.make_phi_study(tmp_path, n_patients=9)
