"""helpers.labels: the labels table, and its round trips through CSV, COCO and Azure ML JSON Lines."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers.errors import LabelFormatError
from helpers.labels import (
    check_labels,
    from_azureml_jsonl,
    from_coco,
    from_csv,
    from_manifest,
    image_size,
    infer_kind,
    polygon_area,
    to_azureml_jsonl,
    to_coco,
    to_csv,
    write_coco,
)

PREFIX = "azureml://datastores/workspaceblobstore/paths/chest_xray"


def assert_same(a: pd.DataFrame, b: pd.DataFrame, atol: float = 1e-6) -> None:
    """Equal labels tables: same columns and text, coordinates equal within ``atol`` px."""
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    plain = [c for c in a.columns if c != "regions"]
    pd.testing.assert_frame_equal(a[plain].reset_index(drop=True), b[plain].reset_index(drop=True))
    if "regions" in a.columns:
        for ra, rb in zip(a["regions"], b["regions"]):
            assert [{k: v for k, v in r.items() if k not in ("polygon", "box")} for r in ra] == [
                {k: v for k, v in r.items() if k not in ("polygon", "box")} for r in rb
            ]
            for x, y in zip(ra, rb):
                shape = "polygon" if "polygon" in x else "box"
                np.testing.assert_allclose(x[shape], y[shape], rtol=0, atol=atol)


@pytest.fixture
def classes() -> pd.DataFrame:
    """Four chest images, given out of order, one without a label, with annotator and time."""
    return pd.DataFrame({
        "path": ["CXR0003/0001.dcm", "CXR0001/0001.dcm", "CXR0002/0001.dcm", "CXR0004/0001.dcm"],
        "label": ["pneumonia", "normal", "", "pneumonia"],
        "annotator": ["dr_a", "dr_b", "", "dr_a"],
        "labelled_at": ["2024-05-01T14:30:00+00:00", "2024-05-02", "", "2024-05-03T09:00:00"],
    })


@pytest.fixture
def multi() -> pd.DataFrame:
    return pd.DataFrame({
        "path": ["a.png", "b.png", "c.png"],
        "label": ["nodule|effusion", "", "cardiomegaly"],
        "width": [64, 64, 80],
        "height": [64, 64, 40],
    })


@pytest.fixture
def boxes() -> pd.DataFrame:
    return pd.DataFrame({
        "path": ["p2/img.dcm", "p1/img.dcm", "p3/img.dcm"],
        "width": [256, 256, 200],
        "height": [256, 256, 100],
        "regions": [
            [{"label": "pneumonia", "box": [10, 20, 60, 100]}, {"label": "nodule", "box": [0.5, 1.25, 3.75, 2.5]}],
            [],
            [{"label": "pneumonia", "box": [0, 0, 200, 100], "iscrowd": True}],
        ],
    })


@pytest.fixture
def polygons() -> pd.DataFrame:
    return pd.DataFrame({
        "path": ["b.png", "a.png"],
        "width": [250, 100],
        "height": [130, 50],
        "regions": [
            [{"label": "lesion", "polygon": [[0, 0], [4, 0], [4, 3]]},
             {"label": "lung", "polygon": [[10.1, 20.2], [200.3, 20.2], [127.9, 46.9], [10.1, 100.0]]}],
            [{"label": "lesion", "polygon": [[1, 1], [99, 1], [50, 49.5]]}],
        ],
    })


# --- the table ---------------------------------------------------------------------------------------


def test_check_labels_gives_the_canonical_form(classes, boxes):
    table = check_labels(classes, "classification")
    assert list(table.columns) == ["path", "label", "annotator", "labelled_at"]
    assert list(table["path"]) == ["CXR0001/0001.dcm", "CXR0002/0001.dcm", "CXR0003/0001.dcm", "CXR0004/0001.dcm"]
    assert list(table["label"]) == ["normal", "", "pneumonia", "pneumonia"]
    det = check_labels(boxes, "detection")
    assert list(det.columns) == ["path", "label", "width", "height", "regions"]
    assert list(det["label"]) == ["", "nodule|pneumonia", "pneumonia"]  # derived from the regions, sorted
    assert det["width"].dtype == np.int64
    assert det["regions"][1][0] == {"label": "pneumonia", "box": [10.0, 20.0, 60.0, 100.0]}
    assert det["regions"][2][0]["iscrowd"] is True and "iscrowd" not in det["regions"][1][0]


def test_backslash_paths_become_posix():
    table = check_labels(pd.DataFrame({"path": ["CXR0001\\0001.dcm", ".\\b\\c.png"], "label": ["a", "b"]}),
                         "classification")
    assert list(table["path"]) == ["CXR0001/0001.dcm", "b/c.png"]


def test_multilabel_names_are_sorted_and_infer_kind(multi, boxes, polygons):
    assert list(check_labels(multi, "multilabel")["label"]) == ["effusion|nodule", "", "cardiomegaly"]
    assert infer_kind(multi) == "multilabel"
    assert infer_kind(boxes) == "detection"
    assert infer_kind(polygons) == "segmentation"
    assert infer_kind(pd.DataFrame({"path": ["a"], "label": ["x"]})) == "classification"


@pytest.mark.parametrize(
    ("table", "kind", "message"),
    [
        ({"path": ["a.png"], "label": ["a|b"]}, "classification", r"row 0 \(a.png\).*kind='multilabel'"),
        ({"path": ["a.png", "a.png"], "label": ["x", "y"]}, "classification", r"row 1 \(a.png\).*same image as row 0"),
        ({"path": ["/data/a.png"], "label": ["x"]}, "classification", "absolute.*relative to the data folder"),
        ({"path": ["../a.png"], "label": ["x"]}, "classification", r"no '\.\.'"),
        ({"path": ["a.png"], "label": ["x"], "labelled_at": ["yesterday"]}, "classification", "not ISO 8601"),
        ({"path": ["a.png"], "label": ["x"]}, "histology", "kind must be one of"),
        ({"path": ["a.png"], "regions": [[{"label": "x", "box": [0, 0, 2, 2]}]]}, "detection",
         "need the images' width and height"),
        ({"path": ["a.png"], "width": [8], "height": [8], "regions": [[{"label": "x", "box": [5, 0, 3, 2]}]]},
         "detection", r"row 0 \(a.png\) region 0: box .* x1 > x0"),
        ({"path": ["a.png"], "width": [8], "height": [8], "regions": [[{"label": "x", "box": [0, 0, 9, 2]}]]},
         "detection", r"\(9, 2\) lies outside the 8x8 image"),
        ({"path": ["a.png"], "width": [8], "height": [8], "regions": [[{"label": "x", "polygon": [[0, 0], [1, 1]]}]]},
         "segmentation", "at least 3"),
        ({"path": ["a.png"], "width": [8], "height": [8],
          "regions": [[{"label": "x", "polygon": [[0, 0, 1], [1, 1], [2, 0]]}]]}, "segmentation", "point 0 must be"),
        ({"path": ["a.png"], "width": [8], "height": [8], "regions": [[{"label": "x", "box": [0, 0, 2, 2]}]]},
         "segmentation", "segmentation regions are polygons"),
        ({"path": ["a.png"], "width": [8], "height": [8], "label": ["y"],
          "regions": [[{"label": "x", "box": [0, 0, 2, 2]}]]}, "detection", "disagrees with the regions"),
        ({"path": ["a.png"], "width": [8], "height": [8],
          "regions": [[{"label": "x", "box": [0, 0, 2, 2], "score": 0.9}]]}, "detection", "unknown region keys"),
    ],
)
def test_check_labels_names_the_row_and_the_fault(table, kind, message):
    with pytest.raises(LabelFormatError, match=message):
        check_labels(pd.DataFrame(table), kind)


# --- CSV -----------------------------------------------------------------------------------------------


def test_csv_round_trip(tmp_path, classes):
    path = to_csv(classes, tmp_path / "labels.csv")
    assert path.read_text().splitlines()[:2] == [
        "path,label,annotator,labelled_at",
        "CXR0001/0001.dcm,normal,dr_b,2024-05-02",
    ]
    back = from_csv(path)
    assert_same(back, check_labels(classes, "classification"))
    assert back.loc[1, "label"] == ""  # an empty label stays empty text, not NaN


def test_csv_round_trip_multilabel_with_sizes(tmp_path, multi):
    back = from_csv(to_csv(multi, tmp_path / "multi.csv"))
    assert_same(back, check_labels(multi, "multilabel"))
    assert back["height"].tolist() == [64, 64, 40]


def test_csv_refuses_regions(tmp_path, boxes):
    with pytest.raises(LabelFormatError, match="use write_coco or to_azureml_jsonl"):
        to_csv(boxes, tmp_path / "boxes.csv")
    assert not (tmp_path / "boxes.csv").exists()


def test_csv_with_unknown_columns_is_refused(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("path,label,polygon\na.png,x,1 2 3\n")
    with pytest.raises(LabelFormatError, match=r"unexpected columns \['polygon'\]"):
        from_csv(path)


# --- COCO ----------------------------------------------------------------------------------------------


def test_polygon_area_by_hand():
    assert polygon_area([[0, 0], [4, 0], [4, 3]]) == 6.0  # right triangle: 4 * 3 / 2
    assert polygon_area([[0, 0], [0, 2], [2, 2], [2, 1], [1, 1], [1, 0]]) == 3.0  # an L of three unit squares
    assert polygon_area([[4, 3], [4, 0], [0, 0]]) == 6.0  # either winding


def test_coco_classification_convention(classes):
    coco = to_coco(classes, categories=["pneumonia", "normal"])
    assert [c["name"] for c in coco["categories"]] == ["pneumonia", "normal"]
    assert [c["id"] for c in coco["categories"]] == [1, 2]
    assert [(i["id"], i["file_name"]) for i in coco["images"]] == [
        (1, "CXR0001/0001.dcm"), (2, "CXR0002/0001.dcm"), (3, "CXR0003/0001.dcm"), (4, "CXR0004/0001.dcm"),
    ]
    # One annotation per image and class, none for the unlabelled image, no bbox/segmentation/area.
    assert coco["annotations"] == [
        {"id": 1, "image_id": 1, "category_id": 2, "iscrowd": 0},
        {"id": 2, "image_id": 3, "category_id": 1, "iscrowd": 0},
        {"id": 3, "image_id": 4, "category_id": 1, "iscrowd": 0},
    ]
    assert coco["images"][0]["annotator"] == "dr_b"
    assert_same(from_coco(coco), check_labels(classes, "classification"))


def test_coco_multilabel_round_trip(tmp_path, multi):
    path = write_coco(multi, tmp_path / "multi.json")
    coco = json.loads(path.read_text())
    assert [c["name"] for c in coco["categories"]] == ["cardiomegaly", "effusion", "nodule"]  # sorted by default
    assert coco["images"][0] == {"id": 1, "file_name": "a.png", "width": 64, "height": 64}
    assert [a["category_id"] for a in coco["annotations"] if a["image_id"] == 1] == [2, 3]
    assert_same(from_coco(path), check_labels(multi, "multilabel"))


def test_coco_boxes_round_trip(tmp_path, boxes):
    coco = to_coco(boxes)
    first = coco["annotations"][0]  # p2/img.dcm is image 2 after sorting; its first box
    assert first["image_id"] == 2 and first["bbox"] == [10.0, 20.0, 50.0, 80.0]
    assert first["area"] == 50.0 * 80.0 and first["segmentation"] == [] and first["iscrowd"] == 0
    assert coco["annotations"][1]["area"] == pytest.approx(3.25 * 1.25)
    assert coco["annotations"][2]["iscrowd"] == 1
    assert_same(from_coco(write_coco(boxes, tmp_path / "boxes.json")), check_labels(boxes, "detection"), atol=0)


def test_coco_polygons_round_trip_with_area(tmp_path, polygons):
    coco = to_coco(polygons)
    triangle = next(a for a in coco["annotations"] if a["segmentation"] == [[0.0, 0.0, 4.0, 0.0, 4.0, 3.0]])
    assert triangle["area"] == 6.0 and triangle["bbox"] == [0.0, 0.0, 4.0, 3.0]
    assert [c["name"] for c in coco["categories"]] == ["lesion", "lung"]
    back = from_coco(write_coco(polygons, tmp_path / "seg.json"))
    assert_same(back, check_labels(polygons, "segmentation"), atol=0)
    # The same file read as detection keeps each polygon's bbox.
    det = from_coco(coco, kind="detection")
    assert det.loc[1, "regions"][0] == {"label": "lesion", "box": [0.0, 0.0, 4.0, 3.0]}


def test_coco_bad_inputs_are_named():
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "lesion"}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5]]}],
    }
    with pytest.raises(LabelFormatError, match=r"annotation 7 \(a.png\): a polygon has an odd number"):
        from_coco(coco)
    coco["annotations"] = [{"id": 8, "image_id": 1, "category_id": 1, "bbox": [5, 5, -2, 3]}]
    with pytest.raises(LabelFormatError, match="annotation 8.*positive width"):
        from_coco(coco)
    coco["annotations"] = [{"id": 9, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]}]
    with pytest.raises(LabelFormatError, match="annotation 9: image_id 2 is not among the images"):
        from_coco(coco)
    coco["annotations"] = [{"id": 9, "image_id": 1, "category_id": 1, "segmentation": {"counts": "x", "size": [10, 10]}}]
    with pytest.raises(LabelFormatError, match="RLE"):
        from_coco(coco)
    coco["annotations"] = [{"id": 1, "image_id": 1, "category_id": 1}, {"id": 2, "image_id": 1, "category_id": 1}]
    with pytest.raises(LabelFormatError, match="annotation 2 .*'lesion' is given twice"):
        from_coco(coco)


def test_coco_refuses_labels_outside_categories(multi):
    with pytest.raises(LabelFormatError, match=r"\['effusion', 'nodule'\] are not among categories"):
        to_coco(multi, categories=["cardiomegaly"])


# --- Azure ML JSON Lines -------------------------------------------------------------------------------


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_azure_classification_round_trip(tmp_path, classes):
    labelled = classes[classes["label"] != ""]
    path = to_azureml_jsonl(labelled, tmp_path / "cls.jsonl", PREFIX + "/", "classification")
    assert _lines(path)[0] == {
        "image_url": f"{PREFIX}/CXR0001/0001.dcm",
        "label": "normal",
        "label_confidence": [1.0],
        "annotator": "dr_b",
        "labelled_at": "2024-05-02",
    }
    assert_same(from_azureml_jsonl(path, datastore_uri_prefix=PREFIX), check_labels(labelled, "classification"))


def test_azure_multiclass_needs_a_label_on_every_image(tmp_path, classes):
    with pytest.raises(LabelFormatError, match=r"CXR0002/0001.dcm.*has no label"):
        to_azureml_jsonl(classes, tmp_path / "cls.jsonl", PREFIX, "classification")


def test_azure_multilabel_round_trip(tmp_path, multi):
    path = to_azureml_jsonl(multi, tmp_path / "multi.jsonl", PREFIX, "multilabel")
    first, second = _lines(path)[:2]
    assert first == {
        "image_url": f"{PREFIX}/a.png",
        "image_details": {"format": "png", "width": "64px", "height": "64px"},
        "label": ["effusion", "nodule"],
        "label_confidence": [1.0, 1.0],
    }
    assert second["label"] == [] and second["label_confidence"] == []
    back = from_azureml_jsonl(path, datastore_uri_prefix=PREFIX)  # kind inferred from the lists
    assert_same(back, check_labels(multi, "multilabel"))


def test_azure_segmentation_round_trip(tmp_path, polygons):
    path = to_azureml_jsonl(polygons, tmp_path / "seg.jsonl", PREFIX, "segmentation")
    line = _lines(path)[0]  # a.png, 100 x 50 px
    assert line["image_details"] == {"format": "png", "width": "100px", "height": "50px"}
    assert line["label"] == [{"label": "lesion", "isCrowd": 0, "polygon": [[0.01, 0.02, 0.99, 0.02, 0.5, 0.99]]}]
    back = from_azureml_jsonl(path, datastore_uri_prefix=PREFIX)
    assert_same(back, check_labels(polygons, "segmentation"))
    assert 127.9 / 250 * 250 != 127.9 and 46.9 / 130 * 130 != 46.9  # so normalising adds float noise ...
    assert back.loc[1, "regions"][1]["polygon"][2] == [127.9, 46.9]  # ... which reading back rounds away


def test_azure_detection_round_trip(tmp_path, boxes):
    path = to_azureml_jsonl(boxes, tmp_path / "det.jsonl", PREFIX, "detection")
    lines = _lines(path)
    assert "format" not in lines[0]["image_details"]  # DICOM is not among AutoML's listed formats
    assert lines[1]["label"][0] == {
        "label": "pneumonia", "topX": 10 / 256, "topY": 20 / 256, "bottomX": 60 / 256, "bottomY": 100 / 256,
        "isCrowd": 0,
    }
    assert lines[0]["label"] == [] and lines[2]["label"][0]["isCrowd"] == 1
    back = from_azureml_jsonl(path, datastore_uri_prefix=PREFIX)
    assert_same(back, check_labels(boxes, "detection"))


def test_documented_azure_lines_import_to_the_expected_rows(tmp_path):
    url = ("azureml://subscriptions/my-subscription-id/resourcegroups/my-resource-group/workspaces/my-workspace/"
           "datastores/my-datastore/paths/image_data")
    detection = {
        "image_url": f"{url}/Image_01.jpg",
        "image_details": {"format": "jpg", "width": "400px", "height": "200px"},
        "label": [{"label": "nodule", "topX": 0.25, "topY": 0.5, "bottomX": 0.75, "bottomY": 1.0, "isCrowd": 0}],
    }
    path = tmp_path / "doc.jsonl"
    path.write_text(json.dumps(detection) + "\n")
    table = from_azureml_jsonl(path, datastore_uri_prefix="azureml://datastores/my-datastore/paths/image_data")
    assert table.to_dict("records") == [{
        "path": "Image_01.jpg", "label": "nodule", "width": 400, "height": 200,
        "regions": [{"label": "nodule", "box": [100.0, 100.0, 300.0, 200.0]}],
    }]
    segmentation = {  # integer sizes and a string isCrowd, both allowed by the schema
        "image_url": f"{url}/scans/Image_02.png",
        "image_details": {"format": "png", "width": 10, "height": 20},
        "label": [{"label": "lesion", "isCrowd": "true", "polygon": [[0.1, 0.1, 0.9, 0.1, 0.5, 0.6]]}],
    }
    path.write_text(json.dumps(segmentation) + "\n")
    (row,) = from_azureml_jsonl(path, datastore_uri_prefix=url).to_dict("records")
    assert row["path"] == "scans/Image_02.png" and (row["width"], row["height"]) == (10, 20)
    assert row["regions"] == [{"label": "lesion", "polygon": [[1.0, 2.0], [9.0, 2.0], [5.0, 12.0]], "iscrowd": True}]
    export = {  # a data labeling export line: label_confidence, image_width/image_height
        "image_url": f"{url}/Image_03.jpg", "label": "pneumonia", "label_confidence": [1.0],
        "image_width": 800, "image_height": 600,
    }
    path.write_text(json.dumps(export) + "\n")
    (row,) = from_azureml_jsonl(path).to_dict("records")  # prefix detected: the folder of the only image
    assert row == {"path": "Image_03.jpg", "label": "pneumonia", "width": 800, "height": 600}


def test_azure_prefix_is_detected_from_the_shared_folder(tmp_path, multi):
    table = multi.assign(path=["p1/a.png", "p2/b.png", "p2/c.png"])
    path = to_azureml_jsonl(table, tmp_path / "m.jsonl", PREFIX, "multilabel")
    assert list(from_azureml_jsonl(path)["path"]) == ["p1/a.png", "p2/b.png", "p2/c.png"]
    with pytest.raises(LabelFormatError, match="line 1: image_url .* does not start with the prefix"):
        from_azureml_jsonl(path, datastore_uri_prefix="azureml://datastores/other/paths/x")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"image_url": "azureml://datastores/d/paths/a.png", "label": "x"}', '{"image_url": "azureml://datas'],
         r"line 2: not valid JSON"),
        (['{"image_url": "azureml://datastores/d/paths/a.png", "image_details": {"width": 10, "height": 10}, '
          '"label": [{"label": "x", "isCrowd": 0, "polygon": [[0.1, 0.1, 0.5, 0.1, 0.5]]}]}'],
         r"line 1 region 0: a polygon has an odd number of coordinates \(5\)"),
        (['{"image_url": "azureml://datastores/d/paths/a.png", "image_details": {"width": 10, "height": 10}, '
          '"label": [{"label": "x", "topX": 0.6, "topY": 0.1, "bottomX": 0.2, "bottomY": 0.5}]}'],
         r"line 1 region 0: .*bottomX > topX"),
        (['', '{"image_url": "azureml://datastores/d/paths/a.png", "image_details": {"width": 10, "height": 10}, '
          '"label": [{"label": "x", "topX": 12, "topY": 0.1, "bottomX": 20, "bottomY": 0.5}]}'],
         r"line 2 region 0: topX = 12 lies outside \[0, 1\]"),
        (['{"image_url": "azureml://datastores/d/paths/a.png", '
          '"label": [{"label": "x", "topX": 0.1, "topY": 0.1, "bottomX": 0.2, "bottomY": 0.5}]}'],
         r"line 1: has regions but no image size"),
        (['{"image_url": "azureml://datastores/d/paths/a.png", "image_details": {"width": "wide", "height": 10}, '
          '"label": "x"}'], r"line 1: width must be a number"),
        (['{"image_url": "azureml://datastores/d/paths/a.png", "image_details": {"width": 10, "height": 10}, '
          '"label": [{"label": "x", "isCrowd": "maybe", "polygon": [[0.1, 0.1, 0.5, 0.1, 0.5, 0.5]]}]}'],
         r"line 1 region 0: isCrowd must be true/false"),
        (['{"image_url": "azureml://datastores/d/paths/a.png", "label": "x"}',
          '{"image_url": "azureml://datastores/d/paths/a.png", "label": "y"}'], "line 2: a.png was already labelled on line 1"),
        (['{"image_url": "azureml://datastores/d/paths/a.png", "label": "x"}',
          '{"image_url": "azureml://datastores/d/paths/b.png", "label": ["x", "y"]}'], "different kinds of labels"),
        (['{"label": "x"}'], "line 1: has no 'image_url'"),
    ],
)
def test_azure_bad_lines_name_the_line(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelFormatError, match=message):
        from_azureml_jsonl(path, datastore_uri_prefix="azureml://datastores/d/paths")


def test_azure_prefix_must_be_a_datastore_uri(tmp_path, multi):
    with pytest.raises(LabelFormatError, match="azureml://datastores/<store>/paths/<folder>"):
        to_azureml_jsonl(multi, tmp_path / "m.jsonl", "https://example.org/images", "multilabel")


# --- a generated manifest ------------------------------------------------------------------------------


@pytest.fixture
def chest(tmp_path):
    from helpers.datasets.generated import make_chest_xray

    return make_chest_xray(tmp_path / "cxr", n_patients=6, images_per_patient=1, size=64, seed=0), tmp_path / "cxr"


def test_manifest_classification_through_coco_and_azure(tmp_path, chest):
    manifest, root = chest
    table = from_manifest(manifest, "classification", root=root)  # sizes read from the DICOM headers
    assert len(table) == 6 and set(table["label"]) == {"normal", "pneumonia"}
    assert (table["label"] == "pneumonia").sum() == (manifest["finding"] == "pneumonia").sum()
    assert table["path"].str.match(r"^CXR\d{4}/0001\.dcm$").all()
    assert (table["width"] == 64).all() and (table["height"] == 64).all()
    assert image_size(root / table.loc[0, "path"]) == (64, 64)
    assert_same(from_coco(write_coco(table, tmp_path / "cls.json")), table)
    jsonl = to_azureml_jsonl(table, tmp_path / "cls.jsonl", PREFIX, "classification")
    assert_same(from_azureml_jsonl(jsonl, datastore_uri_prefix=PREFIX), table)


def test_manifest_boxes_through_coco_and_azure(tmp_path, chest):
    manifest, root = chest
    table = from_manifest(manifest, "detection", root=root, size=64)
    sick = manifest[manifest["finding"] == "pneumonia"].iloc[0]
    row = table[table["path"] == f"{sick['patient_id']}/0001.dcm"].iloc[0]
    # Inclusive pixel indices x0..x1 become corner coordinates x0 .. x1 + 1.
    assert row["regions"] == [{"label": "pneumonia", "box": [
        float(sick["lesion_x0"]), float(sick["lesion_y0"]), float(sick["lesion_x1"]) + 1, float(sick["lesion_y1"]) + 1,
    ]}]
    assert (table["label"] == "").sum() == (manifest["finding"] == "normal").sum()  # healthy: no regions
    coco = to_coco(table)
    assert coco["annotations"][0]["area"] == coco["annotations"][0]["bbox"][2] * coco["annotations"][0]["bbox"][3]
    assert_same(from_coco(coco), table, atol=0)
    jsonl = to_azureml_jsonl(table, tmp_path / "det.jsonl", PREFIX, "detection")
    assert_same(from_azureml_jsonl(jsonl, datastore_uri_prefix=PREFIX), table)


def test_manifest_needs_root_for_absolute_paths(chest):
    manifest, _ = chest
    with pytest.raises(LabelFormatError, match="pass root="):
        from_manifest(manifest, "classification", size=64)
    with pytest.raises(LabelFormatError, match="kind='detection'"):
        from_manifest(manifest, "segmentation", size=64)
