"""Label import and export: a plain CSV, COCO JSON and Azure ML JSON Lines, each to and from one labels table.

The **labels table** (a pandas DataFrame, one row per image) is the form every lesson works with:

- ``path``: the image file relative to a root folder, with POSIX slashes (``CXR0001/0001.dcm``).
- ``label``: the class name; for ``multilabel`` the names joined by ``|`` (``"effusion|nodule"``, sorted),
  ``""`` for none. For ``segmentation`` and ``detection`` it is derived from the regions (their names, sorted).
- ``width``, ``height``: the image size in pixels; required when there are regions (Azure normalises coordinates
  by them and COCO needs them), optional for classification.
- ``regions`` (``segmentation`` and ``detection`` only): a list per image of ``{"label": str, "polygon": [[x, y],
  ...]}`` or ``{"label": str, "box": [x0, y0, x1, y1]}`` (plus ``"iscrowd": True`` for a crowd region). Pixel
  coordinates are continuous, with (0, 0) the top-left *corner* of the top-left pixel (COCO's convention), so an
  image spans [0, width] x [0, height] and a box around pixel columns 3..5 runs from x0 = 3 to x1 = 6.
- ``annotator``, ``labelled_at`` (optional): who labelled the image and when (ISO 8601 text).

:func:`check_labels` validates a table for a kind (``classification``, ``multilabel``, ``segmentation``,
``detection``) and returns its canonical form: the columns above in that order (others left out), rows sorted by
path. Round trips give that form back: ``from_x(to_x(table))`` equals ``check_labels(table, kind)``, with
coordinates equal within 1e-6 px (those that went through normalised or width/height form are rounded to 1e-9 px
to undo float noise).

The formats:

- CSV: ``path,label[,width,height,annotator,labelled_at]``, classification only (regions need COCO or Azure JSONL).
- COCO (https://cocodataset.org/#format-data): ``images`` (id, file_name, width, height), ``categories`` (id, name,
  supercategory), ``annotations`` (id, image_id, category_id, bbox [x, y, w, h], segmentation [[x1, y1, x2, y2,
  ...]], area, iscrowd). COCO has no standard for image-level labels; here each class of an image is one
  annotation without ``bbox``, ``segmentation`` or ``area``, and an image without a label has no annotation.
- Azure ML JSON Lines, the form AutoML for Images reads and a data labeling project exports (see
  :func:`to_azureml_jsonl` for the fields): coordinates normalised to [0, 1] by the image size.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from helpers.errors import LabelFormatError

#: Kinds of labels a table can hold.
KINDS = ("classification", "multilabel", "segmentation", "detection")
#: Kinds whose rows carry ``regions``, and the region type each allows.
REGION_KINDS = {"segmentation": "polygon", "detection": "box"}
#: Columns of a canonical labels table, in order (only those that apply are present).
COLUMNS = ("path", "label", "width", "height", "regions", "annotator", "labelled_at")
#: Optional text columns (``""`` where unknown).
TEXT_COLUMNS = ("annotator", "labelled_at")
#: Columns a labels CSV may hold.
CSV_COLUMNS = ("path", "label", "width", "height", "annotator", "labelled_at")
#: Separator of the class names of a multi-label image.
SEPARATOR = "|"
#: Image formats the AutoML JSONL schema lists for ``image_details.format`` (others, e.g. DICOM, are left out).
AZURE_IMAGE_FORMATS = ("jpg", "jpeg", "png", "jpe", "jfif", "bmp", "tif", "tiff")
#: Decimal places (px) that coordinates read back from normalised or [x, y, w, h] form are rounded to.
ROUND_PX = 9

_REGION_KEYS = {"label", "polygon", "box", "iscrowd"}
_WORKSPACE_PART = re.compile(r"^azureml://subscriptions/[^/]+/resource[gG]roups/[^/]+/workspaces/[^/]+/(?=datastores/)")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".tif", ".tiff", ".gif", ".webp"}


# --- The labels table --------------------------------------------------------------------------------


def _kind(kind: str) -> str:
    """``kind`` if it is one of :data:`KINDS`, else LabelFormatError listing them."""
    if kind not in KINDS:
        raise LabelFormatError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}.")
    return kind


def _missing(value: Any) -> bool:
    """True for None and NaN (an empty cell)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any, where: str, what: str) -> float:
    """``value`` as a finite float (numbers or numeric text), else LabelFormatError naming ``where``."""
    if isinstance(value, (bool, np.bool_)):
        raise LabelFormatError(f"{where}: {what} must be a number, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LabelFormatError(f"{where}: {what} must be a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise LabelFormatError(f"{where}: {what} must be finite, got {value!r}.")
    return number


def _size(value: Any, where: str, what: str) -> int:
    """A positive whole number of pixels from 256, 256.0, "256" or "256px", else LabelFormatError."""
    text = value.strip().lower().removesuffix("px").strip() if isinstance(value, str) else value
    number = _number(text, where, what)
    if number <= 0 or number != int(number):
        raise LabelFormatError(f"{where}: {what} must be a positive whole number of pixels, got {value!r}.")
    return int(number)


def _flag(value: Any, where: str) -> bool:
    """A crowd flag from True/False, 0/1 or "true"/"false"/"0"/"1", else LabelFormatError."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "0", "1"):
        return value.strip().lower() in ("true", "1")
    raise LabelFormatError(f"{where}: isCrowd must be true/false (or 0/1), got {value!r}.")


def clean_path(path: Any, where: str = "path") -> str:
    """``path`` as a relative POSIX path (backslashes to ``/``, no leading ``./``); LabelFormatError if absolute."""
    if _missing(path) or not isinstance(path, (str, PurePosixPath, Path)) or not str(path).strip():
        raise LabelFormatError(f"{where}: every image needs a path (text relative to the data folder), got {path!r}.")
    text = str(path).strip().replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:/", text) or "://" in text:
        raise LabelFormatError(
            f"{where}: {text!r} is absolute; labels hold paths relative to the data folder "
            "(e.g. relative_to(root), or from_manifest(..., root=folder))."
        )
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise LabelFormatError(f"{where}: {text!r} must name a file inside the data folder (no '..').")
    return "/".join(parts)


def _names(label: Any, where: str, kind: str) -> list[str]:
    """The class names in one ``label`` cell, checked for ``kind`` (classification: at most one)."""
    if _missing(label):
        return []
    if not isinstance(label, str):
        raise LabelFormatError(f"{where}: label must be text (a class name), got {label!r}.")
    if not label.strip():
        return []
    names = [n.strip() for n in label.split(SEPARATOR)]
    if any(not n for n in names):
        raise LabelFormatError(f"{where}: label {label!r} has an empty class name between '{SEPARATOR}'.")
    if len(set(names)) != len(names):
        raise LabelFormatError(f"{where}: label {label!r} names a class twice.")
    if kind == "classification" and len(names) > 1:
        raise LabelFormatError(
            f"{where}: label {label!r} holds {len(names)} classes; use kind='multilabel' for several per image."
        )
    return sorted(names)


def _check_points(points: Any, where: str, width: int, height: int) -> list[list[float]]:
    """A polygon as ``[[x, y], ...]`` floats (at least 3 points, inside the image), else LabelFormatError."""
    if not isinstance(points, (list, tuple, np.ndarray)) or len(points) < 3:
        raise LabelFormatError(f"{where}: a polygon needs at least 3 [x, y] points, got {points!r}.")
    out = []
    for k, point in enumerate(points):
        if not isinstance(point, (list, tuple, np.ndarray)) or len(point) != 2:
            raise LabelFormatError(
                f"{where}: polygon point {k} must be [x, y] (two numbers), got {point!r}; "
                "a flat [x1, y1, x2, y2, ...] list must be paired first."
            )
        x, y = (_number(v, where, f"polygon point {k}") for v in point)
        _inside(x, y, where, f"polygon point {k}", width, height)
        out.append([x, y])
    return out


def _inside(x: float, y: float, where: str, what: str, width: int, height: int) -> None:
    """LabelFormatError unless (x, y) lies in [0, width] x [0, height]."""
    if not (0.0 <= x <= width and 0.0 <= y <= height):
        raise LabelFormatError(
            f"{where}: {what} ({x:g}, {y:g}) lies outside the {width}x{height} image "
            f"(x in [0, {width}], y in [0, {height}] px); are the coordinates normalised, or x and y swapped?"
        )


def _check_box(box: Any, where: str, width: int, height: int) -> list[float]:
    """A box ``[x0, y0, x1, y1]`` with x0 < x1, y0 < y1 inside the image, else LabelFormatError."""
    if not isinstance(box, (list, tuple, np.ndarray)) or len(box) != 4:
        raise LabelFormatError(f"{where}: a box is [x0, y0, x1, y1] (four numbers, px), got {box!r}.")
    x0, y0, x1, y1 = (_number(v, where, "box coordinate") for v in box)
    if x1 <= x0 or y1 <= y0:
        raise LabelFormatError(
            f"{where}: box [x0, y0, x1, y1] = [{x0:g}, {y0:g}, {x1:g}, {y1:g}] must have x1 > x0 and y1 > y0 "
            "(top-left corner first, then bottom-right; COCO's [x, y, w, h] must be converted)."
        )
    _inside(x0, y0, where, "box corner", width, height)
    _inside(x1, y1, where, "box corner", width, height)
    return [x0, y0, x1, y1]


def _check_region(region: Any, where: str, kind: str, width: int, height: int) -> dict[str, Any]:
    """One region in canonical form (label, polygon or box, iscrowd only when true), else LabelFormatError."""
    if not isinstance(region, Mapping):
        raise LabelFormatError(f"{where}: a region is a dict with 'label' and 'polygon' or 'box', got {region!r}.")
    unknown = set(region) - _REGION_KEYS
    if unknown:
        raise LabelFormatError(f"{where}: unknown region keys {sorted(unknown)}; allowed: {sorted(_REGION_KEYS)}.")
    label = region.get("label")
    if not isinstance(label, str) or not label.strip() or SEPARATOR in label:
        raise LabelFormatError(
            f"{where}: region label must be a class name (text without '{SEPARATOR}'), got {label!r}."
        )
    shape = REGION_KINDS[kind]
    other = "box" if shape == "polygon" else "polygon"
    if other in region:
        raise LabelFormatError(
            f"{where}: {kind} regions are {shape}s, but this one has a {other} "
            f"(use kind={'detection' if other == 'box' else 'segmentation'!r}, or convert it)."
        )
    if shape not in region:
        raise LabelFormatError(f"{where}: region {label!r} has no {shape}.")
    out: dict[str, Any] = {"label": label.strip()}
    if shape == "polygon":
        out["polygon"] = _check_points(region["polygon"], where, width, height)
    else:
        out["box"] = _check_box(region["box"], where, width, height)
    if "iscrowd" in region and _flag(region["iscrowd"], where):
        out["iscrowd"] = True
    return out


def _iso(value: Any, where: str) -> str:
    """``value`` as ISO 8601 text ("" if empty), else LabelFormatError."""
    if _missing(value) or str(value).strip() == "":
        return ""
    text = str(value).strip()
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise LabelFormatError(
            f"{where}: labelled_at {text!r} is not ISO 8601 (e.g. 2024-05-01T14:30:00Z or 2024-05-01)."
        ) from None
    return text


def check_labels(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Validate a labels table for ``kind`` and return its canonical form (LabelFormatError naming row and path).

    Canonical: columns in :data:`COLUMNS` order (others left out), rows sorted by path, paths POSIX and relative,
    multi-label names sorted, width/height int pixels, regions as lists of canonical dicts (float coordinates),
    the label of region kinds derived from the regions (a given ``label`` column must agree with them).
    """
    _kind(kind)
    if not isinstance(table, pd.DataFrame):
        raise LabelFormatError(f"a labels table is a pandas DataFrame, got {type(table).__name__}.")
    regional = kind in REGION_KINDS
    if "path" not in table.columns:
        raise LabelFormatError("the labels table has no 'path' column (image file relative to the data folder).")
    if not regional and "label" not in table.columns:
        raise LabelFormatError(f"a {kind} table needs a 'label' column (class name per image).")
    if regional and "regions" not in table.columns:
        raise LabelFormatError(
            f"a {kind} table needs a 'regions' column (a list of {{'label', '{REGION_KINDS[kind]}'}} dicts per image)."
        )
    if "regions" in table.columns and not regional:
        raise LabelFormatError(
            f"the table has regions but kind={kind!r}; use kind='segmentation' (polygons) or 'detection' (boxes)."
        )
    sized = "width" in table.columns or "height" in table.columns
    if regional and not ("width" in table.columns and "height" in table.columns):
        raise LabelFormatError(
            f"{kind} labels need the images' width and height columns (pixels): Azure normalises coordinates by "
            "them and COCO needs them. Add them, e.g. with from_manifest(..., size=...) or image_size(root / path)."
        )
    if sized and not ("width" in table.columns and "height" in table.columns):
        raise LabelFormatError("the table has only one of width/height; give both (pixels) or neither.")
    rows = []
    seen: dict[str, int] = {}
    for i, row in enumerate(table.to_dict("records")):
        path = clean_path(row.get("path"), f"row {i}")
        where = f"row {i} ({path})"
        if path in seen:
            raise LabelFormatError(f"{where}: the same image as row {seen[path]}; one row per image: merge them.")
        seen[path] = i
        out: dict[str, Any] = {"path": path}
        if sized:
            width_, height_ = row.get("width"), row.get("height")
            if _missing(width_) or _missing(height_):
                need = f"{kind} labels need every image's size" if regional else "give every image its size or none"
                raise LabelFormatError(f"{where}: width/height (px) missing; {need}.")
            out["width"] = _size(width_, where, "width")
            out["height"] = _size(height_, where, "height")
        if regional:
            regions = row.get("regions")
            if _missing(regions):
                regions = []
            if not isinstance(regions, (list, tuple, np.ndarray)):
                raise LabelFormatError(f"{where}: regions must be a list of dicts (empty for none), got {regions!r}.")
            out["regions"] = [
                _check_region(r, f"{where} region {k}", kind, out["width"], out["height"])
                for k, r in enumerate(regions)
            ]
            derived = sorted({r["label"] for r in out["regions"]})
            if "label" in table.columns:
                given = _names(row.get("label"), where, "multilabel")
                if given != derived:
                    raise LabelFormatError(
                        f"{where}: label {SEPARATOR.join(given)!r} disagrees with the regions' "
                        f"{SEPARATOR.join(derived)!r}; drop the label column (it is derived) or fix it."
                    )
            out["label"] = SEPARATOR.join(derived)
        else:
            out["label"] = SEPARATOR.join(_names(row.get("label"), where, kind))
        if "annotator" in table.columns:
            value = row.get("annotator")
            out["annotator"] = "" if _missing(value) else str(value).strip()
        if "labelled_at" in table.columns:
            out["labelled_at"] = _iso(row.get("labelled_at"), where)
        rows.append(out)
    columns = [c for c in COLUMNS if c in ("path", "label") or c in table.columns]
    result = pd.DataFrame(rows, columns=columns)
    if sized:
        result = result.astype({"width": "int64", "height": "int64"})
    return result.sort_values("path", kind="stable").reset_index(drop=True)


def infer_kind(table: pd.DataFrame) -> str:
    """The kind a labels table holds: regions -> segmentation (polygons) or detection (boxes), '|' -> multilabel."""
    if "regions" in table.columns:
        shapes = {
            "polygon" if "polygon" in r else "box"
            for regions in table["regions"]
            if isinstance(regions, (list, tuple))
            for r in regions
            if isinstance(r, Mapping)
        }
        if len(shapes) > 1:
            raise LabelFormatError("the table mixes polygons and boxes; keep one kind of region per table.")
        return "detection" if shapes == {"box"} else "segmentation"
    labels = table["label"] if "label" in table.columns else []
    return "multilabel" if any(isinstance(v, str) and SEPARATOR in v for v in labels) else "classification"


def _tidy(value: float) -> float:
    """``value`` rounded to :data:`ROUND_PX` decimals (undoes float noise of normalising and [x, y, w, h])."""
    return round(float(value), ROUND_PX) + 0.0


# --- Image sizes and the generated manifests -----------------------------------------------------------


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) in pixels of an image file: DICOM from its header (Columns, Rows), others with Pillow."""
    path = Path(path)
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        from PIL import Image

        with Image.open(path) as image:
            return int(image.size[0]), int(image.size[1])
    from helpers.dicom import read_dicom

    ds = read_dicom(path, stop_before_pixels=True)
    if "Columns" not in ds or "Rows" not in ds:
        raise LabelFormatError(f"{path}: the DICOM header has no Rows/Columns; pass size=(width, height).")
    return int(ds.Columns), int(ds.Rows)


def from_manifest(
    manifest: pd.DataFrame,
    kind: str = "classification",
    root: str | Path | None = None,
    size: int | tuple[int, int] | None = None,
    boxes: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """A labels table from a generated manifest: ``finding`` as classes, or lesion box columns as detection boxes.

    ``root``: the data folder (needed when the manifest's paths are absolute, as :func:`make_chest_xray` returns
    them, and to read sizes). ``size``: the image size in px (an int for square images, or (width, height));
    ``None`` reads it from each file's header. ``boxes`` maps a box column prefix to a class name (default
    ``{"lesion": "pneumonia"}``); the manifest's boxes are inclusive pixel indices, so ``<p>_x1 + 1`` becomes the
    right edge. classification: ``finding`` as is (``normal``/``pneumonia``); multilabel: ``normal`` becomes ``""``.
    """
    _kind(kind)
    if kind == "segmentation":
        raise LabelFormatError(
            "the manifest holds lesion boxes, not outlines: use kind='detection' "
            "(outlines from masks: helpers.contours.mask_to_contour)."
        )
    if "path" not in manifest.columns:
        raise LabelFormatError("the manifest has no 'path' column.")
    root_path = Path(root).expanduser().absolute() if root is not None else None
    rows = []
    for i, row in enumerate(manifest.to_dict("records")):
        raw = Path(str(row["path"]))
        if raw.is_absolute():
            if root_path is None:
                raise LabelFormatError(
                    f"row {i}: path {str(raw)!r} is absolute; pass root=<the data folder> so that labels hold "
                    "paths relative to it."
                )
            try:
                raw = raw.absolute().relative_to(root_path)
            except ValueError:
                try:  # the same folder reached through a symbolic link
                    raw = raw.resolve().relative_to(root_path.resolve())
                except ValueError:
                    raise LabelFormatError(f"row {i}: {raw} is not inside root {root_path}.") from None
        rel = clean_path(raw.as_posix(), f"row {i}")
        if size is not None:
            width, height = (size, size) if isinstance(size, (int, np.integer)) else size
        else:
            width, height = image_size((root_path or Path.cwd()) / rel)
        out: dict[str, Any] = {"path": rel, "width": int(width), "height": int(height)}
        if kind in ("classification", "multilabel"):
            if "finding" not in manifest.columns:
                raise LabelFormatError("the manifest has no 'finding' column to take class names from.")
            finding = str(row["finding"])
            out["label"] = "" if kind == "multilabel" and finding == "normal" else finding
        else:
            regions = []
            for prefix, name in (boxes or {"lesion": "pneumonia"}).items():
                columns = [f"{prefix}_{s}" for s in ("x0", "y0", "x1", "y1")]
                if not set(columns) <= set(manifest.columns):
                    raise LabelFormatError(f"the manifest has no {', '.join(columns)} columns for boxes {prefix!r}.")
                values = [row[c] for c in columns]
                if any(_missing(v) for v in values):
                    continue  # no lesion of this kind in this image
                x0, y0, x1, y1 = (float(v) for v in values)
                regions.append({"label": name, "box": [x0, y0, x1 + 1.0, y1 + 1.0]})
            out["regions"] = regions
        rows.append(out)
    return check_labels(pd.DataFrame(rows), kind)


# --- CSV -----------------------------------------------------------------------------------------------


def to_csv(table: pd.DataFrame, path: str | Path, kind: str | None = None) -> Path:
    """Write a classification (or multi-label) table as ``path,label[,width,height,annotator,labelled_at]`` CSV."""
    if "regions" in table.columns or kind in REGION_KINDS:
        raise LabelFormatError(
            "a plain CSV holds one label per image and cannot keep regions (polygons or boxes): "
            "use write_coco or to_azureml_jsonl for segmentation and detection labels."
        )
    table = check_labels(table, kind or infer_kind(table))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, lineterminator="\n")
    return path


def from_csv(path: str | Path, kind: str | None = None) -> pd.DataFrame:
    """Read a labels CSV (``path,label[,...]``) into a canonical table; kind inferred when None."""
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LabelFormatError(f"{path.name}: not a readable CSV ({exc}).") from None
    unknown = [c for c in raw.columns if c not in CSV_COLUMNS]
    if unknown:
        raise LabelFormatError(
            f"{path.name}: unexpected columns {unknown}; a labels CSV holds {','.join(CSV_COLUMNS)} "
            "(regions belong in COCO or Azure JSONL)."
        )
    for column in ("width", "height"):
        if column in raw.columns:
            raw[column] = [
                _size(v, f"{path.name} line {i + 2}", column) if v.strip() else None for i, v in enumerate(raw[column])
            ]
    return check_labels(raw, kind or infer_kind(raw))


# --- COCO ----------------------------------------------------------------------------------------------


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """Area in px² enclosed by a polygon ``[[x, y], ...]`` (shoelace formula; either winding)."""
    xy = np.asarray(points, dtype=np.float64)
    x, y = xy[:, 0], xy[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def to_coco(
    table: pd.DataFrame, categories: Sequence[str] | None = None, kind: str | None = None, supercategory: str = ""
) -> dict[str, Any]:
    """The labels as a COCO dict; ids from 1, images sorted by path, categories in the given (else sorted) order."""
    kind = kind or infer_kind(table)
    table = check_labels(table, kind)
    names = {n for label in table["label"] for n in label.split(SEPARATOR) if n}
    if categories is None:
        categories = sorted(names)
    categories = list(categories)
    if len(set(categories)) != len(categories):
        raise LabelFormatError(f"categories {categories} name a class twice.")
    missing = sorted(names - set(categories))
    if missing:
        raise LabelFormatError(f"labels {missing} are not among categories {categories}; add them.")
    category_id = {name: k + 1 for k, name in enumerate(categories)}
    images, annotations = [], []
    for image_id, row in enumerate(table.to_dict("records"), start=1):
        image: dict[str, Any] = {"id": image_id, "file_name": row["path"]}
        if "width" in row:
            image.update(width=int(row["width"]), height=int(row["height"]))
        image.update({c: row[c] for c in TEXT_COLUMNS if c in row})
        images.append(image)
        if kind in REGION_KINDS:
            for region in row["regions"]:
                annotation: dict[str, Any] = {
                    "id": len(annotations) + 1, "image_id": image_id, "category_id": category_id[region["label"]]
                }
                if "polygon" in region:
                    xy = np.asarray(region["polygon"], dtype=np.float64)
                    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
                    annotation["segmentation"] = [[float(v) for v in xy.ravel()]]
                    annotation["area"] = polygon_area(xy)
                else:
                    x0, y0, x1, y1 = region["box"]
                    annotation["segmentation"] = []
                    annotation["area"] = float((x1 - x0) * (y1 - y0))
                annotation["bbox"] = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
                annotation["iscrowd"] = int(region.get("iscrowd", False))
                annotations.append(annotation)
        else:
            for name in sorted((n for n in row["label"].split(SEPARATOR) if n), key=category_id.__getitem__):
                annotations.append(
                    {"id": len(annotations) + 1, "image_id": image_id, "category_id": category_id[name], "iscrowd": 0}
                )
    return {
        "info": {"description": f"{kind} labels (helpers.labels)", "version": "1.0"},
        "licenses": [],
        "images": images,
        "categories": [{"id": category_id[n], "name": n, "supercategory": supercategory} for n in categories],
        "annotations": annotations,
    }


def write_coco(
    table: pd.DataFrame, path: str | Path, categories: Sequence[str] | None = None, kind: str | None = None
) -> Path:
    """Write :func:`to_coco` of ``table`` as a JSON file and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_coco(table, categories, kind), indent=2) + "\n", encoding="utf-8")
    return path


def _flat_polygon(flat: Any, where: str) -> list[list[float]]:
    """``[x1, y1, x2, y2, ...]`` as ``[[x, y], ...]``; LabelFormatError for odd or short lists."""
    if not isinstance(flat, list) or any(isinstance(v, list) for v in flat):
        raise LabelFormatError(f"{where}: a polygon is a flat list [x1, y1, x2, y2, ...], got {flat!r}.")
    if len(flat) % 2:
        raise LabelFormatError(
            f"{where}: a polygon has an odd number of coordinates ({len(flat)}); it must alternate x, y."
        )
    if len(flat) < 6:
        raise LabelFormatError(f"{where}: a polygon needs at least 3 points (6 numbers), got {len(flat)} numbers.")
    values = [_number(v, where, "polygon coordinate") for v in flat]
    return [[values[k], values[k + 1]] for k in range(0, len(values), 2)]


def from_coco(coco: Mapping[str, Any] | str | Path, kind: str | None = None) -> pd.DataFrame:
    """A canonical labels table from a COCO dict or file (kind inferred when None); LabelFormatError names the entry.

    A polygon annotation with several polygons becomes one region per polygon; ``kind='detection'`` reads
    polygon annotations by their ``bbox``. RLE masks are refused (convert them to polygons first).
    """
    name = "COCO"
    if not isinstance(coco, Mapping):
        name = Path(coco).name
        try:
            coco = json.loads(Path(coco).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise LabelFormatError(f"{name}: not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    if not isinstance(coco, Mapping) or not all(
        isinstance(coco.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise LabelFormatError(f"{name}: a COCO file is an object with 'images', 'annotations' and 'categories' lists.")
    if kind is not None:
        _kind(kind)
    categories = {}
    for k, category in enumerate(coco["categories"]):
        if not isinstance(category, Mapping) or "id" not in category or not isinstance(category.get("name"), str):
            raise LabelFormatError(f"{name} categories[{k}]: needs an 'id' and a 'name', got {category!r}.")
        categories[category["id"]] = category["name"]
    images: dict[Any, dict[str, Any]] = {}
    for k, image in enumerate(coco["images"]):
        if not isinstance(image, Mapping) or "id" not in image or "file_name" not in image:
            raise LabelFormatError(f"{name} images[{k}]: needs an 'id' and a 'file_name', got {image!r}.")
        if image["id"] in images:
            raise LabelFormatError(f"{name} images[{k}]: image id {image['id']} is used twice.")
        where = f"{name} image {image['id']}"
        row: dict[str, Any] = {"path": clean_path(image["file_name"], where), "names": [], "regions": []}
        for column in ("width", "height"):
            if not _missing(image.get(column)):
                row[column] = _size(image[column], where, column)
        row.update({c: image[c] for c in TEXT_COLUMNS if c in image})
        images[image["id"]] = row
    has_regions = has_names = has_polygons = False
    for k, annotation in enumerate(coco["annotations"]):
        if not isinstance(annotation, Mapping):
            raise LabelFormatError(f"{name} annotations[{k}]: an annotation is an object, got {annotation!r}.")
        where = f"{name} annotation {annotation.get('id', f'[{k}]')}"
        if annotation.get("image_id") not in images:
            raise LabelFormatError(f"{where}: image_id {annotation.get('image_id')!r} is not among the images.")
        if annotation.get("category_id") not in categories:
            raise LabelFormatError(f"{where}: category_id {annotation.get('category_id')!r} is not a category id.")
        row = images[annotation["image_id"]]
        where = f"{where} ({row['path']})"
        label = categories[annotation["category_id"]]
        segmentation = annotation.get("segmentation") or []
        bbox = annotation.get("bbox")
        if isinstance(segmentation, Mapping):
            raise LabelFormatError(f"{where}: RLE masks are not supported; convert them to polygons first.")
        if not isinstance(segmentation, list):
            raise LabelFormatError(f"{where}: segmentation must be a list of polygons, got {segmentation!r}.")
        extra = {"iscrowd": True} if _flag(annotation.get("iscrowd", 0), where) else {}
        if not segmentation and bbox is None:  # an image-level label (this module's convention)
            if label in row["names"]:
                raise LabelFormatError(f"{where}: image-level label {label!r} is given twice for this image.")
            row["names"].append(label)
            has_names = True
        elif kind == "detection" or not segmentation:  # a box (a polygon read as detection keeps its bbox)
            if kind == "segmentation":
                raise LabelFormatError(f"{where}: kind='segmentation' needs polygons, but this one has only a bbox.")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise LabelFormatError(f"{where}: bbox is [x, y, width, height] in px, got {bbox!r}.")
            x, y, w, h = (_number(v, where, "bbox value") for v in bbox)
            if w <= 0 or h <= 0:
                raise LabelFormatError(f"{where}: bbox [x, y, w, h] = {bbox} needs a positive width and height.")
            row["regions"].append({"label": label, "box": [_tidy(x), _tidy(y), _tidy(x + w), _tidy(y + h)], **extra})
            has_regions = True
        else:
            for flat in segmentation:
                row["regions"].append({"label": label, "polygon": _flat_polygon(flat, where), **extra})
            has_regions = has_polygons = True
    if has_regions and has_names:
        raise LabelFormatError(
            f"{name}: mixes image-level labels (annotations without bbox/segmentation) and regions; "
            "a labels table holds one kind: split the file."
        )
    if kind is None:
        if has_regions:
            kind = "segmentation" if has_polygons else "detection"
        else:
            kind = "multilabel" if any(len(r["names"]) > 1 for r in images.values()) else "classification"
    elif kind in REGION_KINDS and has_names:
        raise LabelFormatError(f"{name}: holds image-level labels, not {REGION_KINDS[kind]}s; read it with kind=None.")
    elif kind not in REGION_KINDS and has_regions:
        raise LabelFormatError(f"{name}: holds regions; read it with kind='segmentation' or 'detection'.")
    rows = []
    for row in images.values():
        out = {k: v for k, v in row.items() if k not in ("names", "regions")}
        if kind in REGION_KINDS:
            out["regions"] = row["regions"]
        else:
            out["label"] = SEPARATOR.join(sorted(row["names"]))
        rows.append(out)
    table = pd.DataFrame(rows, columns=_present(rows, kind))
    return check_labels(table, kind)


def _present(rows: list[dict[str, Any]], kind: str) -> list[str]:
    """The canonical columns that ``rows`` hold (all-or-none for width/height is checked by check_labels)."""
    keys = set().union(*rows) if rows else set()
    base = ["path", "regions"] if kind in REGION_KINDS else ["path", "label"]
    if kind in REGION_KINDS:
        base += ["width", "height"]
    return [c for c in COLUMNS if c in base or c in keys]


# --- Azure ML JSON Lines -------------------------------------------------------------------------------


def _check_prefix(prefix: str) -> str:
    """A datastore URI prefix without its trailing slash, else LabelFormatError with the expected form."""
    text = str(prefix).strip().rstrip("/")
    if not re.match(r"^azureml://datastores/[^/]+/paths(/|$)", _short(text) + "/"):
        raise LabelFormatError(
            f"datastore_uri_prefix {prefix!r} is not a datastore URI; use azureml://datastores/<store>/paths/<folder> "
            "(the folder that holds the images, as uploaded)."
        )
    return text


def to_azureml_jsonl(table: pd.DataFrame, path: str | Path, datastore_uri_prefix: str, kind: str | None = None) -> Path:
    """Write the labels as Azure ML JSON Lines (AutoML for Images / data labeling export form); return the path.

    Each line: ``image_url`` (prefix + "/" + path), ``image_details`` ({format, width: "256px", height: "256px"},
    when sizes are known; format only for the types AutoML lists), ``label`` (a class name; a list of names for
    multilabel; for detection a list of {label, topX, topY, bottomX, bottomY, isCrowd}, for segmentation of
    {label, isCrowd, polygon: [[x1, y1, x2, y2, ...]]}, coordinates divided by width/height), ``label_confidence``
    (1.0 per label, as a labeling export writes) and ``annotator``/``labelled_at`` when the table has them (extra
    keys outside AutoML's schema). Pass ``kind='multilabel'`` for lists even where an image has one class.
    """
    kind = kind or infer_kind(table)
    table = check_labels(table, kind)
    prefix = _check_prefix(datastore_uri_prefix)
    lines = []
    for row in table.to_dict("records"):
        where = f"row ({row['path']})"
        record: dict[str, Any] = {"image_url": f"{prefix}/{row['path']}"}
        if "width" in row:
            details: dict[str, Any] = {}
            suffix = PurePosixPath(row["path"]).suffix.lower().lstrip(".")
            if suffix in AZURE_IMAGE_FORMATS:
                details["format"] = suffix
            details.update(width=f"{row['width']}px", height=f"{row['height']}px")
            record["image_details"] = details
        if kind == "classification":
            if not row["label"]:
                raise LabelFormatError(
                    f"{where}: has no label, and an Azure multi-class line needs one; give it a class "
                    "(e.g. 'normal') or leave the image out."
                )
            record["label"] = row["label"]
            record["label_confidence"] = [1.0]
        elif kind == "multilabel":
            names = [n for n in row["label"].split(SEPARATOR) if n]
            record["label"] = names
            record["label_confidence"] = [1.0] * len(names)
        else:
            width, height = float(row["width"]), float(row["height"])
            regions = []
            for region in row["regions"]:
                crowd = int(region.get("iscrowd", False))
                if kind == "detection":
                    x0, y0, x1, y1 = region["box"]
                    regions.append({
                        "label": region["label"], "topX": x0 / width, "topY": y0 / height,
                        "bottomX": x1 / width, "bottomY": y1 / height, "isCrowd": crowd,
                    })
                else:
                    flat = [v / s for x, y in region["polygon"] for v, s in ((x, width), (y, height))]
                    regions.append({"label": region["label"], "isCrowd": crowd, "polygon": [flat]})
            record["label"] = regions
            record["label_confidence"] = [1.0] * len(regions)
        record.update({c: row[c] for c in TEXT_COLUMNS if c in row})
        lines.append(json.dumps(record))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _line_kind(label: Any, where: str) -> str:
    """The kind one JSONL ``label`` value has (``""`` when it is an empty list and cannot tell)."""
    if isinstance(label, str):
        return "classification"
    if isinstance(label, Mapping):
        label = [label]
    if not isinstance(label, list):
        raise LabelFormatError(
            f"{where}: 'label' must be a class name, a list of names or a list of regions, got {label!r}."
        )
    if not label:
        return ""
    if all(isinstance(v, str) for v in label):
        return "multilabel"
    if all(isinstance(v, Mapping) for v in label):
        return "segmentation" if any("polygon" in v for v in label) else "detection"
    raise LabelFormatError(f"{where}: 'label' mixes class names and regions: {label!r}.")


def _common_folder(urls: Iterable[str]) -> str:
    """The longest folder prefix (ending at a '/') shared by all ``urls``."""
    urls = [_short(url) for url in urls]
    common = urls[0]
    for url in urls[1:]:
        while not url.startswith(common):
            common = common[:-1]
    return common[: common.rfind("/")] if "/" in common else ""


def _short(url: str) -> str:
    """A long ``azureml://subscriptions/.../workspaces/<ws>/datastores/...`` URI as ``azureml://datastores/...``."""
    return _WORKSPACE_PART.sub("azureml://", url)


def _url_to_path(url: str, prefix: str, where: str) -> str:
    """The relative path of ``url`` below ``prefix`` (long and short datastore URIs compare equal)."""
    url, prefix = _short(url), _short(prefix)
    if not url.startswith(prefix + "/"):
        raise LabelFormatError(f"{where}: image_url {url!r} does not start with the prefix {prefix!r}.")
    return clean_path(url[len(prefix) + 1 :], where)


def _azure_size(record: Mapping[str, Any], where: str) -> tuple[int, int] | None:
    """(width, height) from ``image_details`` (``"256px"`` or 256) or a labeling export's image_width/height."""
    details = record.get("image_details")
    if details is not None and not isinstance(details, Mapping):
        raise LabelFormatError(f"{where}: image_details must be an object, got {details!r}.")
    details = details or {}
    width = details.get("width", record.get("image_width"))
    height = details.get("height", record.get("image_height"))
    if _missing(width) and _missing(height):
        return None
    if _missing(width) or _missing(height):
        raise LabelFormatError(f"{where}: gives only one of the image's width and height.")
    return _size(width, where, "width"), _size(height, where, "height")


def _azure_region(item: Mapping[str, Any], where: str, kind: str, width: int, height: int) -> list[dict[str, Any]]:
    """Regions (px) from one Azure label dict; a polygon with several segments gives one region per segment."""
    label = item.get("label")
    if not isinstance(label, str) or not label.strip():
        raise LabelFormatError(f"{where}: every region needs a 'label' (class name), got {label!r}.")
    extra = {"iscrowd": True} if "isCrowd" in item and _flag(item["isCrowd"], where) else {}

    def norm(value: Any, what: str) -> float:
        number = _number(value, where, what)
        if not 0.0 <= number <= 1.0:
            raise LabelFormatError(
                f"{where}: {what} = {number:g} lies outside [0, 1]; Azure coordinates are fractions of the image "
                "size (pixels / width or height)."
            )
        return number

    if kind == "detection":
        missing = [k for k in ("topX", "topY", "bottomX", "bottomY") if k not in item]
        if missing:
            raise LabelFormatError(f"{where}: region {label!r} lacks {', '.join(missing)}.")
        x0, y0, x1, y1 = (norm(item[k], k) for k in ("topX", "topY", "bottomX", "bottomY"))
        if x1 <= x0 or y1 <= y0:
            raise LabelFormatError(
                f"{where}: region {label!r} needs bottomX > topX and bottomY > topY, got topX={x0:g}, topY={y0:g}, "
                f"bottomX={x1:g}, bottomY={y1:g}."
            )
        box = [_tidy(x0 * width), _tidy(y0 * height), _tidy(x1 * width), _tidy(y1 * height)]
        return [{"label": label, "box": box, **extra}]
    polygons = item.get("polygon")
    if not isinstance(polygons, list) or not polygons:
        raise LabelFormatError(f"{where}: region {label!r} needs 'polygon': [[x1, y1, x2, y2, ...]], got {polygons!r}.")
    if all(not isinstance(p, list) for p in polygons):
        polygons = [polygons]  # a single flat list, without the outer list
    out = []
    for flat in polygons:
        points = _flat_polygon(flat, where)
        for k, (x, y) in enumerate(points):
            norm(x, f"polygon x{k + 1}")
            norm(y, f"polygon y{k + 1}")
        out.append({"label": label, "polygon": [[_tidy(x * width), _tidy(y * height)] for x, y in points], **extra})
    return out


def from_azureml_jsonl(
    path: str | Path, kind: str | None = None, datastore_uri_prefix: str | None = None
) -> pd.DataFrame:
    """A canonical labels table from Azure ML JSON Lines; LabelFormatError names the line and what is wrong.

    ``image_url`` becomes a path relative to ``datastore_uri_prefix``, or (None) to the folder all URLs share,
    which for a single image or a single sub-folder is that folder: give the prefix to be sure. Width and height
    come from ``image_details`` ("256px" or 256) or a labeling export's ``image_width``/``image_height``; isCrowd
    may be true/false, "true"/"false" or 0/1; ``label_confidence`` must be a list of numbers in [0, 1] and is not
    kept. The kind is inferred from the labels when None. Blank lines are passed over; nothing else is skipped.
    """
    path = Path(path)
    if kind is not None:
        _kind(kind)
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelFormatError(f"{where}: not valid JSON ({exc.msg}; column {exc.colno}).") from None
        if not isinstance(record, Mapping):
            raise LabelFormatError(f"{where}: each line must be a JSON object, got {type(record).__name__}.")
        if not isinstance(record.get("image_url"), str) or not record["image_url"].strip():
            raise LabelFormatError(f"{where}: has no 'image_url' (the image's datastore URI).")
        if "label" not in record:
            raise LabelFormatError(f"{where}: has no 'label'.")
        confidence = record.get("label_confidence")
        if confidence is not None and (
            not isinstance(confidence, list)
            or not all(0.0 <= _number(c, where, "label_confidence") <= 1.0 for c in confidence)
        ):
            raise LabelFormatError(f"{where}: label_confidence must be a list of numbers in [0, 1]: {confidence!r}.")
        records.append((where, record, _line_kind(record["label"], where)))
    if not records:
        raise LabelFormatError(f"{path.name}: holds no labelled images.")
    kinds = {k for _, _, k in records if k}
    if kind is None:
        if len(kinds) > 1:
            first = {k: w for w, _, k in reversed(records) if k}
            raise LabelFormatError(f"{path.name}: lines hold different kinds of labels ({first}); keep one per file.")
        if not kinds:
            raise LabelFormatError(f"{path.name}: every label list is empty, so the kind cannot be told; pass kind=.")
        kind = kinds.pop()
    urls = [record["image_url"] for _, record, _ in records]
    prefix = _check_prefix(datastore_uri_prefix) if datastore_uri_prefix else _common_folder(urls)
    rows = []
    for where, record, line_kind in records:
        compatible = line_kind in ("", kind) or {kind, line_kind} == {"classification", "multilabel"}
        if not compatible:
            raise LabelFormatError(f"{where}: holds {line_kind} labels, but kind is {kind!r}.")
        row: dict[str, Any] = {"path": _url_to_path(record["image_url"], prefix, where)}
        size = _azure_size(record, where)
        if size is not None:
            row["width"], row["height"] = size
        label = record["label"]
        if kind in REGION_KINDS:
            if size is None:
                raise LabelFormatError(
                    f"{where}: has regions but no image size; add image_details width/height so that the "
                    "normalised coordinates can be turned into pixels."
                )
            items = [label] if isinstance(label, Mapping) else label
            row["regions"] = [
                region for k, item in enumerate(items)
                for region in _azure_region(item, f"{where} region {k}", kind, *size)
            ]
        elif isinstance(label, str):
            row["label"] = label
        else:
            if kind == "classification" and len(label) > 1:
                raise LabelFormatError(f"{where}: holds {len(label)} classes; read it with kind='multilabel'.")
            if len(set(label)) != len(label):
                raise LabelFormatError(f"{where}: names a class twice: {label!r}.")
            if any(SEPARATOR in n or not n.strip() for n in label):
                raise LabelFormatError(f"{where}: class names must be non-empty and free of '{SEPARATOR}': {label!r}.")
            row["label"] = SEPARATOR.join(sorted(label))
        row.update({c: record[c] for c in TEXT_COLUMNS if c in record})
        rows.append(row)
    sized = ["width" in r for r in rows]
    if any(sized) and not all(sized):
        where = records[sized.index(False)][0]
        raise LabelFormatError(f"{where}: has no image size while other lines do; give every line its size or none.")
    seen: dict[str, str] = {}
    for (where, _, _), row in zip(records, rows):
        if row["path"] in seen:
            raise LabelFormatError(f"{where}: {row['path']} was already labelled on {seen[row['path']]}; merge them.")
        seen[row["path"]] = where.split(" ", 1)[1]
    return check_labels(pd.DataFrame(rows, columns=_present(rows, kind)), kind)
