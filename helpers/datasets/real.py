"""Loaders for the real data sets in their own layouts: tidy tables (one row per image) or arrays.

Every table has at least ``path`` (absolute, as text), ``patient_id`` and the label column(s); ``split``
appears where the source itself gives one. Loaders only list and parse file names and small text files;
images are decoded later, when a lesson needs the pixels. A missing or wrongly laid out folder raises
:class:`~helpers.errors.DatasetError` (or :class:`~helpers.errors.EmptyFolderError`) naming what was
expected and how to get the data (see :mod:`helpers.datasets.registry`).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from helpers.datasets.registry import get_dataset, how_to_get
from helpers.errors import DatasetError, EmptyFolderError

#: File extensions the image-folder loaders pick up (lower case).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
#: The 14 findings of NIH ChestX-ray14, in the order of the NIH label file.
NIH_FINDINGS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
#: PneumoniaMNIST label names by label value.
PNEUMONIAMNIST_CLASSES = ("normal", "pneumonia")
#: Kermany class folders, in label order (0, 1).
KERMANY_CLASSES = ("NORMAL", "PNEUMONIA")
#: Split folder names of the original Kermany release.
KERMANY_SPLITS = ("train", "val", "test")


# --- Shared helpers ------------------------------------------------------------------------------


def _hidden(name: str) -> bool:
    """True for hidden files and macOS clutter (``.DS_Store``, ``._x``, ``__MACOSX``)."""
    return name.startswith(".") or name == "__MACOSX"


def _require_dir(root: str | Path, dataset: str) -> Path:
    """``root`` as a Path if it is a non-empty folder; else DatasetError / EmptyFolderError with the steps."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(
            f"{root} does not exist: expected the {dataset} data set there.\n{how_to_get(dataset)}"
        )
    if not root.is_dir():
        raise DatasetError(
            f"{root} is a file, not a folder: expected the {dataset} folder.\n{how_to_get(dataset)}"
        )
    if not any(not _hidden(p.name) for p in root.iterdir()):
        raise EmptyFolderError(f"{root} is empty: expected the {dataset} data set there.\n{how_to_get(dataset)}")
    return root


def _layout_error(root: Path, dataset: str, problem: str) -> DatasetError:
    """A DatasetError saying what is wrong with ``root``, the expected layout and how to get the data."""
    info = get_dataset(dataset)
    return DatasetError(f"{root}: {problem}. Expected layout: {info.layout}.\n{how_to_get(info)}")


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by extension, hidden files skipped), sorted by name."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not _hidden(p.name) and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _walk_dirs(root: Path, max_depth: int) -> Iterable[Path]:
    """Folders under ``root`` down to ``max_depth`` levels (root included), skipping hidden ones, sorted."""
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        yield folder
        if depth < max_depth:
            children = sorted((p for p in folder.iterdir() if p.is_dir() and not _hidden(p.name)), reverse=True)
            stack.extend((c, depth + 1) for c in children)


# --- Kermany chest X-ray -----------------------------------------------------------------------------

_KERMANY_PNEUMONIA = re.compile(r"^(?P<patient>person\d+)_(?P<kind>bacteria|virus)_\d+(?:_\d+)?$", re.IGNORECASE)
_KERMANY_NORMAL = re.compile(r"^(?P<prefix>NORMAL2-)?(?P<im>IM-\d+)-\d+(?:-\d+)*$", re.IGNORECASE)


def parse_kermany_name(filename: str) -> tuple[str, str]:
    """``(patient_id, subtype)`` from a Kermany file name, e.g. ``person1_virus_6.jpeg -> ("person1", "viral")``.

    Normals: ``IM-0007-0001.jpeg -> "IM-0007"`` and ``NORMAL2-IM-0007-0001.jpeg -> "NORMAL2-IM-0007"``.
    The NORMAL2 batch restarts the IM numbering with different children (an IM-0007 and a NORMAL2-IM-0007
    image are no more alike than two random normals), so the prefix is kept to keep the ids distinct.
    Unrecognised names return ``(stem, "unknown")``: each such image counts as its own patient.
    """
    stem = Path(filename).stem
    match = _KERMANY_PNEUMONIA.match(stem)
    if match:
        subtype = "bacterial" if match["kind"].lower() == "bacteria" else "viral"
        return match["patient"].lower(), subtype
    match = _KERMANY_NORMAL.match(stem)
    if match:
        prefix = "NORMAL2-" if match["prefix"] else ""
        return prefix + match["im"].upper(), "normal"
    return stem, "unknown"


def load_kermany(root: str | Path) -> pd.DataFrame:
    """Table of the Kermany chest X-rays under ``root``: path, file, patient_id, label, target, subtype[, split].

    ``root`` holds ``NORMAL`` and ``PNEUMONIA`` folders, directly or under ``train``/``val``/``test``
    (the original release, also inside its ``chest_xray`` folder). ``target`` is 0 normal / 1 pneumonia;
    ``subtype`` is ``normal``, ``bacterial`` or ``viral`` from the file name; ``split`` is given only
    when the folders carry one.
    """
    root = _require_dir(root, "kermany")
    class_dirs = [
        d for d in _walk_dirs(root, max_depth=3)
        if d.name.upper() in KERMANY_CLASSES and d != root
    ]
    if not class_dirs:
        raise _layout_error(root, "kermany", "no NORMAL or PNEUMONIA folder found (searched 3 levels down)")
    seen: dict[tuple[str | None, str], Path] = {}
    rows = []
    for folder in class_dirs:
        label = folder.name.upper()
        split = folder.parent.name.lower() if folder.parent.name.lower() in KERMANY_SPLITS else None
        if (split, label) in seen:
            raise DatasetError(
                f"Two {split + '/' if split else ''}{label} folders under {root}: {seen[split, label]} and "
                f"{folder}. The download holds two copies; pass the one you want as root."
            )
        seen[split, label] = folder
        for path in _image_files(folder):
            patient_id, subtype = parse_kermany_name(path.name)
            if label == "NORMAL" and subtype == "unknown":
                subtype = "normal"
            rows.append({
                "path": str(path), "file": path.name, "patient_id": patient_id, "label": label,
                "target": KERMANY_CLASSES.index(label), "subtype": subtype, "split": split,
            })
    if not rows:
        raise EmptyFolderError(
            f"{root}: the NORMAL/PNEUMONIA folders hold no images ({', '.join(map(str, class_dirs))}).\n"
            + how_to_get("kermany")
        )
    table = pd.DataFrame(rows)
    if table["split"].isna().all():
        table = table.drop(columns="split")
        return table.sort_values(["label", "file"], ignore_index=True)
    return table.sort_values(["split", "label", "file"], ignore_index=True)


# --- NIH ChestX-ray14 -----------------------------------------------------------------------------------


def nih_findings(finding_labels: pd.Series) -> pd.DataFrame:
    """0/1 columns for the 14 NIH findings from ``Finding Labels`` text (``"Effusion|Mass"``, ``No Finding``)."""
    tokens = finding_labels.fillna("No Finding").astype(str).str.split("|")
    known = set(NIH_FINDINGS) | {"No Finding"}
    unknown = sorted({t for row in tokens for t in row} - known)
    if unknown:
        raise DatasetError(
            f"Unknown finding label(s) {unknown}; the NIH labels are {list(NIH_FINDINGS)} or 'No Finding'. "
            "Is this the NIH ChestX-ray14 label file?"
        )
    return pd.DataFrame(
        {finding: tokens.map(lambda row, f=finding: int(f in row)) for finding in NIH_FINDINGS},
        index=finding_labels.index,
    )


_NIH_RENAME = {
    "Image Index": "image", "image": "image", "Finding Labels": "finding_labels", "Follow-up #": "follow_up",
    "Patient ID": "patient_id", "Patient Age": "age", "Patient Gender": "sex", "Patient Sex": "sex",
    "View Position": "view_position",
}


def _nih_tidy(labels: pd.DataFrame) -> pd.DataFrame:
    """Rename the NIH label columns, zero-pad patient ids like the file names, add the 14 finding columns."""
    labels = labels.rename(columns={k: v for k, v in _NIH_RENAME.items() if k in labels.columns})
    for needed in ("image", "finding_labels", "patient_id"):
        if needed not in labels.columns:
            raise DatasetError(
                f"The NIH label file has no {needed!r} column (columns: {list(labels.columns)}); "
                "expected 'Image Index', 'Finding Labels' and 'Patient ID'."
            )
    labels["patient_id"] = labels["patient_id"].map(lambda v: f"{int(v):08d}")
    return pd.concat([labels, nih_findings(labels["finding_labels"])], axis=1)


def load_nih_subset(root: str | Path) -> pd.DataFrame:
    """Table of the NIH ChestX-ray14 subset laid out as ``{train,valid}/{0_normal,1_abnormal}`` + ``labels.csv``.

    Columns: path, image, patient_id (8 digits, as in the file names), split (the folder), target
    (0 normal / 1 abnormal, the folder), no_finding (1 if the label file says "No Finding"),
    finding_labels, the 14 findings as 0/1, age, sex, view_position. Rows of ``labels.csv`` without an
    image in the folders are left out.
    """
    root = _require_dir(root, "nih_chestxray14")
    labels_path = root / "labels.csv"
    if not labels_path.is_file():
        raise _layout_error(root, "nih_chestxray14", "labels.csv is missing (the subset layout is "
                            "{train,valid}/{0_normal,1_abnormal}/*.png + labels.csv)")
    folders = [
        (split, cls, root / split / cls)
        for split in ("train", "valid", "val", "test")
        for cls in ("0_normal", "1_abnormal")
        if (root / split / cls).is_dir()
    ]
    if not folders:
        raise _layout_error(root, "nih_chestxray14", "no {train,valid}/{0_normal,1_abnormal} folders")
    files = pd.DataFrame(
        [
            {"path": str(p), "image": p.name, "split": split, "folder_class": cls, "target": int(cls[0])}
            for split, cls, folder in folders
            for p in _image_files(folder)
        ],
        columns=["path", "image", "split", "folder_class", "target"],
    )
    if files.empty:
        raise EmptyFolderError(f"{root}: the {{train,valid}}/{{0_normal,1_abnormal}} folders hold no images.")
    labels = _nih_tidy(pd.read_csv(labels_path))
    labels = labels.drop(columns=[c for c in ("split", "folder_class") if c in labels.columns])
    table = files.merge(labels, on="image", how="left", validate="one_to_one")
    unlabelled = table.loc[table["finding_labels"].isna(), "image"].tolist()
    if unlabelled:
        raise DatasetError(
            f"{len(unlabelled)} image(s) in {root} have no row in labels.csv (first: {unlabelled[:5]}); "
            "the folder and the label file belong to different copies."
        )
    # The folder is the subset's label; no_finding is the NIH label file's (they can disagree: the
    # ../shared/data subset has one 'Pneumonia' image in valid/0_normal).
    table["no_finding"] = table["finding_labels"].eq("No Finding").astype(int)
    columns = ["path", "image", "patient_id", "split", "target", "no_finding", "finding_labels", *NIH_FINDINGS]
    rest = [c for c in table.columns if c not in columns and c != "folder_class"]
    return table[columns + rest].sort_values(["split", "target", "image"], ignore_index=True)


def load_nih14(root: str | Path, require_all: bool = False) -> pd.DataFrame:
    """Table of the full NIH ChestX-ray14 release: ``Data_Entry_2017_v2020.csv`` + ``images/*.png`` under root.

    Columns as :func:`load_nih_subset` (no ``target``), plus follow_up; ``split`` (``train_val`` /
    ``test``) comes from ``train_val_list.txt`` and ``test_list.txt`` when present. Label rows whose
    image is absent are left out unless ``require_all`` (then DatasetError).
    """
    root = _require_dir(root, "nih_chestxray14")
    names = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
    csv = next((root / n for n in names if (root / n).is_file()), None)
    if csv is None:
        if (root / "labels.csv").is_file():
            raise _layout_error(root, "nih_chestxray14", "this looks like the subset layout: use load_nih_subset")
        raise _layout_error(root, "nih_chestxray14", "Data_Entry_2017_v2020.csv is missing")
    images = {p.name: p for p in root.rglob("*.png") if not _hidden(p.name)}
    if not images:
        raise EmptyFolderError(f"{root} holds no PNG images: unpack images_001.tar.gz ... into it.\n"
                               + how_to_get("nih_chestxray14"))
    table = _nih_tidy(pd.read_csv(csv))
    present = table["image"].isin(images)
    if require_all and not present.all():
        missing = table.loc[~present, "image"].tolist()
        raise DatasetError(f"{len(missing)} labelled image(s) are missing from {root} (first: {missing[:5]}).")
    table = table.loc[present].copy()
    table.insert(0, "path", table["image"].map(lambda n: str(images[n])))
    split_files = {"train_val": root / "train_val_list.txt", "test": root / "test_list.txt"}
    if all(p.is_file() for p in split_files.values()):
        split_of = {}
        for split, path in split_files.items():
            split_of.update({line.strip(): split for line in path.read_text().splitlines() if line.strip()})
        table["split"] = table["image"].map(split_of)
    columns = ["path", "image", "patient_id", *(["split"] if "split" in table else []), "finding_labels",
               *NIH_FINDINGS]
    rest = [c for c in table.columns if c not in columns]
    return table[columns + rest].sort_values("image", ignore_index=True)


# --- PneumoniaMNIST ------------------------------------------------------------------------------------


def load_pneumoniamnist(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train"|"val"|"test": (images uint8 (N, 28, 28), labels int64 (N,))}`` from a PneumoniaMNIST npz.

    ``path`` is the ``.npz`` (the official ``pneumoniamnist.npz`` or a subset with the same keys) or a
    folder holding exactly one. Labels: 0 normal, 1 pneumonia.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        found = sorted(p for p in path.glob("*.npz") if not _hidden(p.name))
        if len(found) != 1:
            raise _layout_error(path, "pneumoniamnist", f"expected one .npz file, found {len(found)}")
        path = found[0]
    if not path.is_file():
        raise DatasetError(f"{path} does not exist.\n{how_to_get('pneumoniamnist')}")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable .npz file ({exc}); download it again.") from None
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with npz:
        for split in ("train", "val", "test"):
            keys = (f"{split}_images", f"{split}_labels")
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DatasetError(f"{path.name} lacks {missing} (has {npz.files}); is this a MedMNIST file?")
            images, labels = npz[keys[0]], npz[keys[1]].reshape(-1).astype(np.int64)
            if images.ndim not in (3, 4) or len(images) != len(labels):
                raise DatasetError(
                    f"{path.name}: {split} images {images.shape} and labels {labels.shape} do not pair up."
                )
            if not np.isin(labels, (0, 1)).all():
                raise DatasetError(f"{path.name}: {split} labels must be 0 or 1, found {np.unique(labels)}.")
            out[split] = (images, labels)
    return out


# --- Sunnybrook Cardiac Data ---------------------------------------------------------------------------

_CONTOUR_NAME = re.compile(r"^IM-\d{4}-(?P<n>\d{4})-(?P<kind>i|o|p1|p2)contour-manual\.txt$", re.IGNORECASE)
_DICOM_NAME = re.compile(r"^(?:IM-\d{4}-)?(?P<n>\d+)\.dcm$", re.IGNORECASE)
_SUNNYBROOK_IMAGE_DIRS = ("dicoms", "scd_deidentifiedimages")
_SUNNYBROOK_CONTOUR_DIRS = ("contourfiles", "scd_manualcontours")
_SUNNYBROOK_LINK_FILES = ("link.csv", "scd_patientdata.csv", "scd_patientdata.xlsx")


def normalise_scd_id(name: str) -> str:
    """Sunnybrook original ids without zero padding, upper case: ``SC-HF-I-01 -> SC-HF-I-1``."""
    return re.sub(r"-0*(\d+)$", lambda m: f"-{m.group(1)}", name.strip()).upper()


def _find_named_dir(root: Path, names: Sequence[str]) -> Path | None:
    """The first folder (2 levels down at most) named one of ``names`` (lower case); a same-named child wins."""
    for folder in _walk_dirs(root, max_depth=2):
        if folder != root and folder.name.lower() in names:
            nested = [c for c in folder.iterdir() if c.is_dir() and c.name.lower() in names]
            return nested[0] if nested else folder
    return None


def _read_link(link: str | Path | Mapping[str, str] | None, root: Path) -> dict[str, str]:
    """Image-folder id -> normalised original id, from ``link`` or a link / patient-data file under ``root``."""
    if isinstance(link, Mapping):
        return {str(k): normalise_scd_id(str(v)) for k, v in link.items()}
    path = Path(link) if link is not None else None
    if path is None:
        for folder in _walk_dirs(root, max_depth=1):
            path = next((folder / n for n in _SUNNYBROOK_LINK_FILES if (folder / n).is_file()), None)
            if path is not None:
                break
    if path is None:
        return {}
    if path.suffix.lower() == ".xlsx":
        try:
            table = pd.read_excel(path)
        except ImportError:
            raise DatasetError(
                f"{path.name} is an Excel file and openpyxl is not installed: save it as CSV "
                f"({path.with_suffix('.csv').name}) or `pip install openpyxl`."
            ) from None
    else:
        table = pd.read_csv(path)
    columns = {c.lower().replace("_", ""): c for c in table.columns}
    if "patientid" not in columns or "originalid" not in columns:
        raise DatasetError(
            f"{path} needs columns patient_id and original_id (or PatientID and OriginalID); it has "
            f"{list(table.columns)}."
        )
    pid, oid = columns["patientid"], columns["originalid"]
    return {str(p).strip(): normalise_scd_id(str(o)) for p, o in zip(table[pid], table[oid])}


def _dicom_instances(folder: Path) -> dict[int, Path]:
    """Instance number -> DICOM file under ``folder`` (from ``N.dcm`` / ``IM-SSSS-NNNN.dcm`` names, else headers).

    Where two files share an instance number the one inside a ``*SAX*`` folder (the short-axis cine) wins;
    any other tie raises DatasetError.
    """
    found: dict[int, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or _hidden(path.name) or path.suffix.lower() not in (".dcm", ""):
            continue
        match = _DICOM_NAME.match(path.name)
        if match:
            number = int(match["n"])
        else:
            import pydicom

            try:
                number = int(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["InstanceNumber"])
                             .InstanceNumber)
            except Exception:  # not DICOM, or no instance number: not one of the cine frames
                continue
        found.setdefault(number, []).append(path)
    chosen = {}
    for number, paths in found.items():
        if len(paths) > 1:
            sax = [p for p in paths if any("sax" in part.lower() for part in p.relative_to(folder).parts[:-1])]
            if len(sax) != 1:
                raise DatasetError(
                    f"{folder}: {len(paths)} DICOM files have instance number {number} "
                    f"({[str(p.relative_to(folder)) for p in paths[:3]]}); keep only the short-axis cine series."
                )
            paths = sax
        chosen[number] = paths[0]
    return chosen


def load_sunnybrook(root: str | Path, link: str | Path | Mapping[str, str] | None = None) -> pd.DataFrame:
    """Contoured frames of the Sunnybrook Cardiac Data: patient_id, original_id, path, instance_number,
    inner_contour, outer_contour (contour paths or None).

    Takes the layout of ../shared/data (``dicoms/SCD0000101/48.dcm`` + ``contourfiles/SC-HF-I-1/
    i-contours/IM-0001-0048-icontour-manual.txt`` + ``link.csv``) and the official one
    (``SCD_DeidentifiedImages/<patient>/**/IM-SSSS-0048.dcm`` + ``SCD_ManualContours/SC-HF-I-01/
    contours-manual/IRCCI-expert/IM-0001-0048-icontour-manual.txt``). Image folders named like the contour
    folders match directly; SCD-numbered ones go through ``link`` (a mapping or a CSV with
    patient_id/original_id or PatientID/OriginalID columns), else ``link.csv`` / ``scd_patientdata.csv``.
    The contour number NNNN is the DICOM instance number.
    """
    root = _require_dir(root, "sunnybrook")
    images_root = _find_named_dir(root, _SUNNYBROOK_IMAGE_DIRS)
    contours_root = _find_named_dir(root, _SUNNYBROOK_CONTOUR_DIRS)
    if images_root is None or contours_root is None:
        missing = [n for n, d in (("an image folder (dicoms/ or SCD_DeidentifiedImages/)", images_root),
                                  ("a contour folder (contourfiles/ or SCD_ManualContours/)", contours_root))
                   if d is None]
        raise _layout_error(root, "sunnybrook", "missing " + " and ".join(missing))

    contours: dict[str, tuple[str, dict[int, dict[str, Path]]]] = {}
    for folder in sorted(p for p in contours_root.iterdir() if p.is_dir() and not _hidden(p.name)):
        frames: dict[int, dict[str, Path]] = {}
        for path in sorted(folder.rglob("*contour-manual.txt")):
            match = _CONTOUR_NAME.match(path.name)
            if match:
                frames.setdefault(int(match["n"]), {})[match["kind"].lower()] = path
        if frames:
            contours[normalise_scd_id(folder.name)] = (folder.name, frames)
    if not contours:
        raise _layout_error(contours_root, "sunnybrook", "no IM-0001-NNNN-{i,o}contour-manual.txt files found")

    link_map = _read_link(link, root)
    rows = []
    matched: set[str] = set()
    for folder in sorted(p for p in images_root.iterdir() if p.is_dir() and not _hidden(p.name)):
        key = normalise_scd_id(folder.name)
        key = key if key in contours else link_map.get(folder.name)
        if key is None or key not in contours:
            continue
        matched.add(key)
        original_id, frames = contours[key]
        instances = _dicom_instances(folder)
        for number in sorted(frames):
            kinds = frames[number]
            if "i" not in kinds and "o" not in kinds:
                continue
            if number not in instances:
                raise DatasetError(
                    f"{folder}: no DICOM with instance number {number}, which {original_id} has a contour "
                    f"for ({next(iter(kinds.values())).name}); the image folder is incomplete or mismatched."
                )
            rows.append({
                "patient_id": folder.name, "original_id": original_id, "path": str(instances[number]),
                "instance_number": number,
                "inner_contour": str(kinds["i"]) if "i" in kinds else None,
                "outer_contour": str(kinds["o"]) if "o" in kinds else None,
            })
    unmatched = sorted(set(contours) - matched)
    if unmatched:
        raise DatasetError(
            f"No image folder under {images_root} matches the contours of {unmatched}. Image folders named "
            "SCD0000101 ... need a link table: pass link= (a dict or CSV with patient_id, original_id) or put "
            "link.csv / scd_patientdata.csv (PatientID, OriginalID) in the data folder.\n"
            + how_to_get("sunnybrook")
        )
    return pd.DataFrame(rows).sort_values(["patient_id", "instance_number"], ignore_index=True)


def sunnybrook_image_and_mask(
    row: Mapping[str, Any] | pd.Series, which: str = "inner"
) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, mask bool) for one row of :func:`load_sunnybrook`; ``which`` = inner (LV blood pool),
    outer (LV epicardium, blood pool included) or myocardium (outer minus inner)."""
    from helpers.contours import contour_to_mask, read_contour

    if which not in ("inner", "outer", "myocardium"):
        raise ValueError(f"which must be 'inner', 'outer' or 'myocardium', got {which!r}.")
    from helpers.dicom import pixels

    image = pixels(row["path"])
    needed = ("inner", "outer") if which == "myocardium" else (which,)
    masks = {}
    for kind in needed:
        contour = row.get(f"{kind}_contour")
        if contour is None or pd.isna(contour):
            raise DatasetError(
                f"{Path(row['path']).name} (patient {row.get('patient_id')}) has no {kind} contour; keep rows "
                f"with table['{kind}_contour'].notna()."
            )
        masks[kind] = contour_to_mask(read_contour(contour), image.shape)
    mask = masks["outer"] & ~masks["inner"] if which == "myocardium" else masks[which]
    return image, mask


# --- Image folders and Teachable Machine projects (RSNA 2021 workshop) -----------------------------------

_FLAT_NAME = re.compile(r"^(?P<label>.+?)_(?P<n>\d+)$")
_TM_ENTRY = re.compile(r"^(?P<label>.+)-!-(?P<n>\d+)\.(?:jpe?g|png)$", re.IGNORECASE)
#: Separator Teachable Machine puts between class name and sample number in project zips.
TM_SEPARATOR = "-!-"


def load_image_folder(root: str | Path, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Table of class-labelled images: path, file, label, target, patient_id (unknown here: NA).

    Layouts: one sub-folder per class (``ich/ID_x.png``), or flat ``<Class>_<n>.jpg`` files (the
    workshop's ``Hemorrhage_0.jpg``). ``classes`` fixes the order of ``target`` (default: sorted names)
    and keeps only those classes.
    """
    root = _require_dir(root, "rsna_ich_workshop")
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p.name)):
        rows += [{"path": str(p), "file": p.name, "label": folder.name} for p in _image_files(folder)]
    if not rows:
        for path in _image_files(root):
            match = _FLAT_NAME.match(path.stem)
            if match is None:
                raise _layout_error(root, "rsna_ich_workshop",
                                    f"{path.name} is neither in a class folder nor named <Class>_<n>")
            rows.append({"path": str(path), "file": path.name, "label": match["label"]})
    if not rows:
        raise _layout_error(root, "rsna_ich_workshop", "no images in class folders or named <Class>_<n>")
    table = pd.DataFrame(rows)
    names = list(classes) if classes is not None else sorted(table["label"].unique())
    absent = [c for c in names if c not in set(table["label"])]
    if absent:
        raise DatasetError(f"{root}: no images of class(es) {absent}; found {sorted(table['label'].unique())}.")
    table = table[table["label"].isin(names)].copy()
    table["target"] = table["label"].map({c: i for i, c in enumerate(names)}).astype(int)
    table["patient_id"] = pd.Series(pd.NA, index=table.index, dtype="object")
    return table.sort_values(["target", "file"], key=_natural_key, ignore_index=True)


def _natural_key(column: pd.Series) -> pd.Series:
    """Sort key that orders ``x_2`` before ``x_10`` in text columns (digit runs zero-padded to 12)."""
    if column.dtype == object or pd.api.types.is_string_dtype(column):
        return column.map(lambda s: re.sub(r"\d+", lambda m: m.group().zfill(12), str(s)))
    return column


class TeachableMachineProject(NamedTuple):
    """A Teachable Machine image project: table (entry, label, index, target), RGB uint8 images, manifest."""

    table: pd.DataFrame
    images: list[np.ndarray]
    manifest: dict[str, Any]


def read_tm_project(path: str | Path) -> TeachableMachineProject:
    """Open a Teachable Machine ``.tm`` project (a zip of ``<Class>-!-<n>.jpg`` and ``manifest.json``).

    Classes keep their order in the project (``target`` 0, 1, ...); images are decoded to RGB uint8.
    """
    from PIL import Image

    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path} does not exist.\n{how_to_get('rsna_ich_workshop')}")
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path.name} is not a Teachable Machine project: a .tm file is a zip archive.")
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        if "manifest.json" not in names:
            raise DatasetError(f"{path.name} has no manifest.json: not a Teachable Machine project.")
        manifest = json.loads(zf.read("manifest.json"))
        if manifest.get("type") != "image":
            raise DatasetError(
                f"{path.name} is a Teachable Machine {manifest.get('type')!r} project, not an 'image' one."
            )
        samples = []
        for name in names:
            if name == "manifest.json":
                continue
            match = _TM_ENTRY.match(name)
            if match is None:
                raise DatasetError(
                    f"{path.name}: unexpected entry {name!r} (samples are named <Class>-!-<n>.jpg)."
                )
            samples.append((match["label"], int(match["n"]), name))
        if not samples:
            raise DatasetError(f"{path.name} holds no images.")
        order = list(dict.fromkeys(label for label, _, _ in samples))
        samples.sort(key=lambda s: (order.index(s[0]), s[1]))
        images = [np.asarray(Image.open(io.BytesIO(zf.read(name))).convert("RGB")) for _, _, name in samples]
    table = pd.DataFrame(
        [{"entry": name, "label": label, "index": n, "target": order.index(label)} for label, n, name in samples]
    )
    return TeachableMachineProject(table, images, manifest)


def _js_number(value: float | int) -> str:
    """A number as JavaScript's JSON.stringify writes it (``5e-05`` -> ``0.00005``, ``15.0`` -> ``15``)."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"Teachable Machine settings must be finite numbers, got {value}.")
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if 1e-7 <= abs(value) < 1e21:
        return np.format_float_positional(value, trim="-")
    return repr(value)


def _to_pil(image: Any):
    """A PIL RGB image from an array (grey or RGB; float in [0, 1] or integers), a PIL image or a file path."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            return im.convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype.kind == "f":
        array = np.clip(array, 0.0, 1.0) * 255.0 + 0.5
    array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"An image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}.")
    return Image.fromarray(array).convert("RGB")


def write_tm_project(
    images_by_class: Mapping[str, Sequence[Any]],
    path: str | Path,
    *,
    epochs: int = 50,
    batch_size: int = 16,
    learning_rate: float = 0.001,
    version: str = "2.4.4",
    size: int | None = 224,
    quality: int = 95,
) -> Path:
    """Write a Teachable Machine image project (``.tm``) that teachablemachine.withgoogle.com can open.

    Mirrors the real files: an uncompressed zip of ``<Class>-!-<n>.jpg`` (class by class, n from 0) and
    then ``manifest.json`` (``{"type":"image","version":...,"appdata":{"publishResults":{},
    "trainEpochs":...,"trainBatchSize":...,"trainLearningRate":...}}``). Images (arrays, PIL images or
    paths) are centre-cropped and resized to ``size`` px squares (None keeps them), JPEG ``quality``.
    """
    if not images_by_class:
        raise ValueError("images_by_class is empty: a Teachable Machine project needs at least one class.")
    for name, images in images_by_class.items():
        if not name or TM_SEPARATOR in name or "/" in name or "\\" in name:
            raise ValueError(f"Class name {name!r} must be non-empty without '/', '\\' or {TM_SEPARATOR!r}.")
        if len(images) == 0:
            raise ValueError(f"Class {name!r} has no images.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = (
        f'{{"type":"image","version":{json.dumps(version)},"appdata":{{"publishResults":{{}},'
        f'"trainEpochs":{_js_number(epochs)},"trainBatchSize":{_js_number(batch_size)},'
        f'"trainLearningRate":{_js_number(learning_rate)}}}}}'
    )
    stamp = (2021, 1, 1, 0, 0, 0)  # fixed, so the same images give the same bytes
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, images in images_by_class.items():
                for n, image in enumerate(images):
                    pil = _to_pil(image)
                    if size is not None and pil.size != (size, size):
                        side = min(pil.size)
                        left, top = (pil.width - side) // 2, (pil.height - side) // 2
                        pil = pil.crop((left, top, left + side, top + side)).resize((size, size))
                    buffer = io.BytesIO()
                    pil.save(buffer, format="JPEG", quality=quality)
                    zf.writestr(zipfile.ZipInfo(f"{name}{TM_SEPARATOR}{n}.jpg", stamp), buffer.getvalue())
            zf.writestr(zipfile.ZipInfo("manifest.json", stamp), manifest.encode("utf-8"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --- FracAtlas ------------------------------------------------------------------------------------------

FRACATLAS_FOLDERS = {"Fractured": 1, "Non_fractured": 0}


def load_fracatlas(root: str | Path) -> pd.DataFrame:
    """Table of FracAtlas: path, image_id, patient_id (= image id: none is published), label, fractured (0/1),
    and the other ``dataset.csv`` columns (body part flags, hardware, multiscan, views, fracture_count).

    ``root`` is the unpacked ``FracAtlas`` folder (or its parent): ``images/{Fractured,Non_fractured}/``
    and ``dataset.csv``; without the CSV the labels come from the folders.
    """
    root = _require_dir(root, "fracatlas")
    if not (root / "images").is_dir() and (root / "FracAtlas" / "images").is_dir():
        root = root / "FracAtlas"
    folders = {name: root / "images" / name for name in FRACATLAS_FOLDERS if (root / "images" / name).is_dir()}
    if not folders:
        raise _layout_error(root, "fracatlas", "no images/Fractured or images/Non_fractured folder")
    files = {
        p.name: (p, FRACATLAS_FOLDERS[name]) for name, folder in folders.items() for p in _image_files(folder)
    }
    if not files:
        raise EmptyFolderError(f"{root}/images holds no images.\n{how_to_get('fracatlas')}")
    csv = root / "dataset.csv"
    if csv.is_file():
        table = pd.read_csv(csv)
        if "image_id" not in table.columns or "fractured" not in table.columns:
            raise _layout_error(
                root, "fracatlas", f"dataset.csv lacks image_id / fractured (has {list(table.columns)})"
            )
        missing = [n for n in table["image_id"] if n not in files]
        if missing:
            raise DatasetError(
                f"{len(missing)} image(s) listed in dataset.csv are missing (first: {missing[:5]})."
            )
        table["fractured"] = table["fractured"].astype(int)
        folder_label = table["image_id"].map(lambda n: files[n][1])
        if (folder_label != table["fractured"]).any():
            bad = table.loc[folder_label != table["fractured"], "image_id"].tolist()
            raise DatasetError(
                f"{len(bad)} image(s) sit in the wrong images/ folder for dataset.csv (first: {bad[:5]})."
            )
    else:
        table = pd.DataFrame({"image_id": sorted(files), "fractured": [files[n][1] for n in sorted(files)]})
    table.insert(0, "path", table["image_id"].map(lambda n: str(files[n][0])))
    table.insert(2, "patient_id", table["image_id"].map(lambda n: Path(n).stem))
    table.insert(3, "label", table["fractured"].map({1: "fractured", 0: "non_fractured"}))
    return table.sort_values("image_id", ignore_index=True)
