"""The label journal (label, undo, resume, a crash mid-session, damage), the annotation loop, replay and the widget."""

from __future__ import annotations

import importlib
import io
import json
import os
import signal
import subprocess
import sys
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import annotate as A
from helpers.errors import LabelFormatError, LabelJournalError
from helpers.labels import check_labels

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["normal", "pneumonia"]


def events(path: Path) -> list[dict]:
    """The journal's events; fails unless every line is complete, valid JSON."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that can import helpers."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def pngs(tmp_path):
    """Five 8x8 greyscale PNGs under tmp_path/images (value = 4 * pixel index + k) and their table, in order."""
    from PIL import Image

    root = tmp_path / "images"
    (root / "chest").mkdir(parents=True)
    paths, arrays = [], {}
    for k in range(5):
        array = (np.arange(64).reshape(8, 8) * 4 + k).astype(np.uint8)
        rel = f"chest/{k}.png"
        Image.fromarray(array).save(root / rel)
        paths.append(rel)
        arrays[rel] = array
    return root, pd.DataFrame({"path": paths}), arrays


# --- The label journal -------------------------------------------------------------------------------------


def test_label_undo_and_relabel_by_hand(tmp_path):
    journal = tmp_path / "labels.jsonl"
    store = A.LabelStore(journal, classes=CLASSES)
    assert len(store) == 0 and store.undo() is None and not journal.exists()  # nothing to undo writes nothing
    store.label("a.png", "normal")
    store.label("b.png", "pneumonia")
    store.label("a.png", "pneumonia")  # relabel: the last label wins
    assert (store.label_of("a.png"), store.label_of("b.png"), len(store)) == ("pneumonia", "pneumonia", 2)
    assert store.undo() == "a.png" and store.label_of("a.png") == "normal"  # its previous label comes back
    assert store.undo() == "b.png" and "b.png" not in store and "a.png" in store
    assert store.undo() == "a.png" and len(store) == 0 and store.label_of("a.png") is None
    assert store.undo() is None
    lines = events(journal)
    assert [e["event"] for e in lines] == ["label"] * 3 + ["undo"] * 3
    assert [(e["path"], e["label"]) for e in lines[3:]] == [("a.png", "pneumonia"), ("b.png", "pneumonia"),
                                                             ("a.png", "normal")]
    assert all(list(e) == list(A.EVENT_KEYS) and e["annotator"] == "reader1" for e in lines)
    assert all(e["time"].endswith("Z") and datetime.fromisoformat(e["time"]).utcoffset().total_seconds() == 0
               for e in lines)
    assert len(A.LabelStore(journal)) == 0  # replaying the journal gives the same (empty) state


def test_undo_takes_back_only_the_annotators_own_labels(tmp_path):
    journal = tmp_path / "labels.jsonl"
    first, second = A.LabelStore(journal, "reader1"), A.LabelStore(journal, "reader2")
    first.label("a.png", "normal")
    second.label("a.png", "pneumonia")  # second re-reads the journal before writing
    second.label("b.png", "normal")
    assert first.undo() == "a.png"  # first's own label, under second's
    assert first.label_of("a.png") == "pneumonia" and first.undo() is None
    table = A.LabelStore(journal).labels()
    assert table[["path", "label", "annotator"]].values.tolist() == [["a.png", "pneumonia", "reader2"],
                                                                      ["b.png", "normal", "reader2"]]
    assert second.undo() == "b.png" and second.undo() == "a.png" and len(A.LabelStore(journal)) == 0


def test_a_second_store_resumes_where_the_first_stopped(tmp_path):
    journal = tmp_path / "sub" / "labels.jsonl"  # the folder is made on the first label
    paths = [f"p{k}.png" for k in range(5)]
    first = A.LabelStore(journal)
    for path in paths[:2]:
        first.label(path, "normal")
    first.label(paths[3], "pneumonia")  # out of order: p2 stays the next
    second = A.LabelStore(journal)
    pd.testing.assert_frame_equal(second.labels(), first.labels())
    assert second.next_unlabelled(paths) == "p2.png" and second.progress(paths) == (3, 5)
    second.label("p2.png", "normal")
    assert second.next_unlabelled(paths) == "p4.png" and second.next_unlabelled(paths[:4]) is None
    assert second.next_unlabelled(reversed(paths)) == "p4.png"


def test_labels_is_a_valid_labels_table(tmp_path):
    store = A.LabelStore(tmp_path / "labels.jsonl", classes=CLASSES)
    empty = store.labels()
    assert list(empty.columns) == ["path", "label", "annotator", "labelled_at"] and len(empty) == 0
    store.label("z/2.dcm", "normal")
    store.label(r"a\1.dcm", "pneumonia")  # Windows slashes become POSIX
    table = store.labels()
    assert table.path.tolist() == ["a/1.dcm", "z/2.dcm"] and table.label.tolist() == ["pneumonia", "normal"]
    pd.testing.assert_frame_equal(check_labels(table, "classification"), table)
    assert (table.annotator == "reader1").all() and all(datetime.fromisoformat(t) for t in table.labelled_at)


def test_unknown_classes_and_bad_paths_are_refused_before_anything_is_written(tmp_path):
    journal = tmp_path / "labels.jsonl"
    store = A.LabelStore(journal, classes=CLASSES)
    with pytest.raises(LabelFormatError, match="not a class here; choose one of: normal, pneumonia"):
        store.label("a.png", "effusion")
    with pytest.raises(LabelFormatError, match="several classes"):
        A.LabelStore(journal).label("a.png", "normal|effusion")
    with pytest.raises(LabelFormatError, match="absolute"):
        store.label("/data/a.png", "normal")
    with pytest.raises(LabelFormatError, match="twice"):
        A.LabelStore(journal, classes=["normal", "normal"])
    assert not journal.exists()


def test_each_event_is_on_disk_complete_before_the_call_returns(tmp_path, monkeypatch):
    journal = tmp_path / "labels.jsonl"
    store = A.LabelStore(journal)
    seen = []
    real_fsync = os.fsync

    def fsync(fd):
        seen.append(journal.read_bytes())  # what the file holds when it is forced to disk
        real_fsync(fd)

    monkeypatch.setattr(A.os, "fsync", fsync)
    store.label("a.png", "normal")
    store.undo()
    assert len(seen) >= 2 and seen[0].endswith(b"\n") and json.loads(seen[0])["path"] == "a.png"
    assert seen[-1].count(b"\n") == 2


def test_a_failed_write_leaves_no_partial_line_and_no_label(tmp_path, monkeypatch):
    journal = tmp_path / "labels.jsonl"
    store = A.LabelStore(journal)
    store.label("a.png", "normal")
    before = journal.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(A.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        store.label("b.png", "normal")
    monkeypatch.undo()
    assert journal.read_bytes() == before and "b.png" not in store
    store.label("c.png", "pneumonia")
    assert [e["path"] for e in events(journal)] == ["a.png", "c.png"]


# --- A crash mid-session --------------------------------------------------------------------------------------

CRASH_MID_WRITE = """
import os, sys
from helpers.annotate import LabelStore
store = LabelStore(sys.argv[1], classes=["normal", "pneumonia"])
for k in range(int(sys.argv[2])):
    store.label(f"img/{k}.png", "normal" if k % 2 else "pneumonia")
with open(sys.argv[1], "ab", buffering=0) as f:  # the next event, cut off mid-line by the crash
    f.write(b'{"event": "label", "path": "img/9.png", "la')
    os._exit(1)
"""


def test_labels_survive_a_crash_mid_write(tmp_path):
    journal, k = tmp_path / "labels.jsonl", 3
    result = run_python(CRASH_MID_WRITE, str(journal), str(k))
    assert result.returncode == 1, result.stderr
    data = journal.read_bytes()
    complete = data[: data.rindex(b"\n") + 1]
    assert not data.endswith(b"\n") and len(complete) < len(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = A.LabelStore(journal, classes=CLASSES)
    torn = [w for w in caught if issubclass(w.category, A.TornLineWarning)]
    assert len(torn) == 1 and len(caught) == 1
    assert str(journal) in str(torn[0].message) and f"byte {len(complete)} to {len(data)}" in str(torn[0].message)
    assert torn[0].filename == __file__  # points at the line that opened the store
    assert store.labels()[["path", "label"]].values.tolist() == [
        ["img/0.png", "pneumonia"], ["img/1.png", "normal"], ["img/2.png", "pneumonia"]]
    assert journal.read_bytes() == complete  # the torn line was cut off
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once repaired, opening again is silent
        again = A.LabelStore(journal)
    assert len(again) == k
    again.label("img/9.png", "normal")  # appends cleanly after the repair
    assert len(events(journal)) == k + 1 and len(A.LabelStore(journal)) == k + 1


KILLED_AFTER_K = """
import sys, time
from helpers.annotate import LabelStore
store = LabelStore(sys.argv[1])
for k in range(int(sys.argv[2])):
    store.label(f"img/{k}.png", "normal")
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX only")
def test_labels_survive_sigkill(tmp_path):
    journal, k = tmp_path / "labels.jsonl", 4
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", KILLED_AFTER_K, str(journal), str(k)], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)  # no exit handlers, no buffers flushed
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.stderr.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = A.LabelStore(journal)
    assert store.labels().path.tolist() == [f"img/{i}.png" for i in range(k)]


@pytest.mark.parametrize("tail", [b"not json\n", b"\x00\x00\x00\x00", b'{"event": "undo"'])
def test_an_unreadable_last_line_is_cut_off_with_a_warning(tmp_path, tail):
    journal = tmp_path / "labels.jsonl"
    store = A.LabelStore(journal)
    store.label("a.png", "normal")
    store.label("b.png", "normal")
    good = journal.read_bytes()
    journal.write_bytes(good + tail)
    with pytest.warns(A.TornLineWarning, match=f"byte {len(good)} to {len(good) + len(tail)}"):
        assert len(A.LabelStore(journal)) == 2
    assert journal.read_bytes() == good


@pytest.mark.parametrize("damage, where", [
    (lambda lines: lines[:1] + [b'{"event": "label", "pa'] + lines[2:], "not valid JSON"),  # torn in the middle
    (lambda lines: lines[:1] + [lines[1].replace(b'"label"', b'"lable"', 1)] + lines[2:], "unknown event"),
    (lambda lines: lines[:1] + lines[2:] + [lines[1]], "undo names"),  # reordered: the undo fits no label
])
def test_damage_inside_the_journal_raises_and_leaves_the_file_unchanged(tmp_path, damage, where):
    journal = tmp_path / "labels.jsonl"
    store = A.LabelStore(journal)
    store.label("a.png", "normal")
    store.label("b.png", "pneumonia")
    store.undo()
    lines = journal.read_bytes().splitlines()
    damaged = b"\n".join(damage(lines)) + b"\n" + b'{"event": "lab'  # plus a torn tail: still not repaired
    journal.write_bytes(damaged)
    with pytest.raises(LabelJournalError, match=rf"line \d \(byte \d+\): {where}") as info:
        A.LabelStore(journal)
    assert str(journal) in str(info.value) and "left unchanged" in str(info.value)
    assert journal.read_bytes() == damaged


def test_a_complete_last_line_that_is_not_an_event_is_damage_not_a_crash(tmp_path):
    journal = tmp_path / "labels.jsonl"
    A.LabelStore(journal).label("a.png", "normal")
    damaged = journal.read_bytes() + b'{"event": "label", "path": "/abs.png", "label": "x", "annotator": "r", ' \
                                     b'"time": "2024-01-01"}\n'
    journal.write_bytes(damaged)
    with pytest.raises(LabelJournalError, match=r"line 2 \(byte \d+\): .*absolute"):
        A.LabelStore(journal)
    assert journal.read_bytes() == damaged


def test_summary_counts_per_class(tmp_path):
    store = A.LabelStore(tmp_path / "labels.jsonl", classes=["normal", "pneumonia", "effusion"])
    store.label("a.png", "pneumonia")
    store.label("b.png", "normal")
    store.label("c.png", "pneumonia")
    store.label("elsewhere.png", "normal")  # not among the paths asked about
    assert A.summary(store, ["a.png", "b.png", "c.png", "d.png"]) == {
        "done": 3, "total": 4, "by_class": {"normal": 1, "pneumonia": 2, "effusion": 0}}


# --- The annotation loop ----------------------------------------------------------------------------------


def test_session_choose_skip_undo_order(tmp_path, pngs):
    root, table, arrays = pngs
    store = A.LabelStore(tmp_path / "labels.jsonl", classes=CLASSES)
    session = A.AnnotationSession(table, CLASSES, store, root=root)
    p = table.path.tolist()
    assert session.current == p[0] and session.progress == (0, 5) and not session.done
    np.testing.assert_allclose(session.image(), arrays[p[0]] / 255.0, atol=1e-7)
    assert session.choose("normal") == p[0] and session.current == p[1]
    assert session.skip() == p[1] and session.current == p[2]
    assert session.choose("pneumonia") == p[2] and session.current == p[3]
    assert session.undo() == p[2] and session.current == p[2] and p[2] not in store  # back to the undone image
    assert session.choose("normal") == p[2] and store.label_of(p[2]) == "normal"
    session.choose("normal")
    session.choose("pneumonia")
    assert session.current == p[1] and session.progress == (4, 5)  # the skipped image comes back at the end
    np.testing.assert_allclose(session.image(), arrays[p[1]] / 255.0, atol=1e-7)
    assert session.choose("pneumonia") == p[1] and session.done and session.image() is None
    with pytest.raises(RuntimeError, match="All 5 images are labelled"):
        session.choose("normal")
    assert session.skip() is None
    assert session.undo() == p[1] and session.current == p[1]  # undo works after the end too
    session.choose("normal")
    store.label(p[3], "pneumonia")  # relabel p3 (was normal), then undo: p3 shows again with its earlier label
    assert session.undo() == p[3] and session.current == p[3] and store.label_of(p[3]) == "normal"
    with pytest.raises(LabelFormatError, match="choose one of"):
        session.choose("effusion")
    assert session.choose("pneumonia") == p[3] and session.done
    assert A.LabelStore(store.path).labels().label.tolist() == ["normal", "normal", "normal", "pneumonia", "pneumonia"]


def test_session_skips_cycle_and_resume_after_restart(tmp_path, pngs):
    root, table, _ = pngs
    p = table.path.tolist()
    journal = tmp_path / "labels.jsonl"
    session = A.AnnotationSession(table, CLASSES, A.LabelStore(journal), root=root)
    session.choose("normal")
    assert [session.skip() for _ in range(5)] == [p[1], p[2], p[3], p[4], p[1]]  # skipping only ever cycles
    resumed = A.AnnotationSession(table, CLASSES, A.LabelStore(journal), root=root)  # a kernel restart
    assert resumed.current == p[1] and resumed.progress == (1, 5)
    assert resumed.undo() == p[0] and resumed.current == p[0]  # undo reaches labels from before the restart


def test_replay_labels_through_the_session(tmp_path, pngs):
    root, table, _ = pngs
    p = table.path.tolist()
    truth = dict(zip(p, ["normal", "pneumonia", "pneumonia", "normal", "normal"]))
    session = A.AnnotationSession(table, CLASSES, A.LabelStore(tmp_path / "labels.jsonl", classes=CLASSES), root=root)
    seen = []

    def reader(path):
        seen.append(path)
        return truth[path]

    assert A.replay(session, reader, n=2) == 2 and session.progress == (2, 5) and seen == p[:2]
    assert A.replay(session, reader) == 3 and session.done and seen == p
    assert dict(session.store.labels()[["path", "label"]].values.tolist()) == truth
    assert A.replay(session, reader) == 0


def test_replay_skips_when_the_annotator_is_unsure(tmp_path, pngs):
    root, table, _ = pngs
    p = table.path.tolist()
    session = A.AnnotationSession(table, CLASSES, A.LabelStore(tmp_path / "labels.jsonl"), root=root)
    unsure = {p[1], p[3]}
    assert A.replay(session, lambda path: None if path in unsure else "normal") == 3
    assert session.progress == (3, 5) and session.current in unsure and set(session.skipped) <= unsure


def test_session_on_generated_dicom_with_the_default_reader(tmp_path):
    from helpers.datasets.generated import make_chest_xray
    from helpers.labels import from_manifest

    manifest = make_chest_xray(tmp_path / "cxr", n_patients=5, images_per_patient=1, size=64, seed=0)
    truth = from_manifest(manifest, root=tmp_path / "cxr", size=64)  # relative paths, finding as label
    store = A.LabelStore(tmp_path / "labels.jsonl", classes=CLASSES)
    session = A.AnnotationSession(truth, CLASSES, store, root=tmp_path / "cxr")
    image = session.image()
    assert image.shape == (64, 64) and image.dtype == np.float32 and 0.0 <= image.min() < image.max() <= 1.0
    answers = dict(zip(truth.path, truth.label))
    assert A.replay(session, answers.__getitem__) == 5 and session.done
    labels = store.labels()
    assert labels[["path", "label"]].equals(truth[["path", "label"]])


# --- The widget --------------------------------------------------------------------------------------------


def _parts(widget):
    """Every widget inside ``widget`` (depth first)."""
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _parts(child)


def _decoded(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img)


def test_widget_buttons_save_through_the_session(tmp_path, pngs, monkeypatch):
    import ipywidgets

    monkeypatch.delenv("MEDIMG_HEADLESS", raising=False)
    monkeypatch.setitem(sys.modules, "ipykernel", importlib.import_module("ipykernel"))  # as inside Jupyter
    root, table, arrays = pngs
    p = table.path.tolist()
    journal = tmp_path / "labels.jsonl"
    session = A.AnnotationSession(table, CLASSES, A.LabelStore(journal, classes=CLASSES), root=root)
    widget = A.annotation_widget(session, window_presets={"narrow": (0.25, 0.2)})
    assert isinstance(widget, ipywidgets.VBox)
    parts = list(_parts(widget))
    buttons = {b.description: b for b in parts if isinstance(b, ipywidgets.Button)}
    assert set(buttons) == {"normal", "pneumonia", "Skip", "Undo"}
    image = next(x for x in parts if isinstance(x, ipywidgets.Image))
    bar = next(x for x in parts if isinstance(x, ipywidgets.IntProgress))
    count = next(x for x in parts if isinstance(x, ipywidgets.Label))
    sliders = {s.description: s for s in parts if isinstance(s, ipywidgets.FloatSlider)}
    np.testing.assert_array_equal(_decoded(image.value), arrays[p[0]])  # the identity window: the file's values

    buttons["pneumonia"].click()
    assert A.LabelStore(journal).label_of(p[0]) == "pneumonia"  # on disk at once
    assert session.current == p[1] and bar.value == 1 and count.value == "1 of 5 labelled"
    np.testing.assert_array_equal(_decoded(image.value), arrays[p[1]])

    dropdown = next(x for x in parts if isinstance(x, ipywidgets.Dropdown))
    dropdown.value = "narrow"  # centre 0.25, width 0.2: values 0.15..0.35 spread over 0..255
    assert (sliders["centre"].value, sliders["width"].value) == (0.25, 0.2) and session.window == (0.25, 0.2)
    expected = np.round(np.clip((arrays[p[1]] / 255.0 - 0.15) / 0.2, 0, 1) * 255)
    np.testing.assert_allclose(_decoded(image.value), expected, atol=1)
    sliders["width"].value = 1.0  # centre 0.25, width 1: values -0.25..0.75
    expected = np.round(np.clip((arrays[p[1]] / 255.0 + 0.25) / 1.0, 0, 1) * 255)
    np.testing.assert_allclose(_decoded(image.value), expected, atol=1)

    buttons["Skip"].click()
    assert session.current == p[2] and bar.value == 1
    buttons["Undo"].click()
    assert session.current == p[0] and p[0] not in A.LabelStore(journal) and bar.value == 0
    for _ in range(5):
        buttons["normal"].click()
    assert session.done and bar.value == 5 and count.value == "5 of 5 labelled"
    assert buttons["normal"].disabled and buttons["Skip"].disabled and not buttons["Undo"].disabled
    assert A.LabelStore(journal).progress(p) == (5, 5)


def test_widget_shows_a_failed_save_and_keeps_the_image(tmp_path, pngs, monkeypatch):
    monkeypatch.delenv("MEDIMG_HEADLESS", raising=False)
    monkeypatch.setitem(sys.modules, "ipykernel", importlib.import_module("ipykernel"))
    root, table, _ = pngs
    session = A.AnnotationSession(table, CLASSES, A.LabelStore(tmp_path / "labels.jsonl"), root=root)
    panel = A.AnnotationPanel(session)

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(A.os, "fsync", full_disk)
    panel.buttons["normal"].click()
    assert "Not saved" in panel.status.value and "No space" in panel.status.value
    assert session.current == table.path[0] and len(session.store) == 0


def test_widget_shows_an_unreadable_image_and_lets_it_be_skipped(tmp_path, pngs, monkeypatch):
    monkeypatch.delenv("MEDIMG_HEADLESS", raising=False)
    monkeypatch.setitem(sys.modules, "ipykernel", importlib.import_module("ipykernel"))
    root, table, arrays = pngs
    (root / table.path[0]).write_bytes(b"not a picture")
    session = A.AnnotationSession(table, CLASSES, A.LabelStore(tmp_path / "labels.jsonl"), root=root)
    panel = A.AnnotationPanel(session)
    assert panel.image.value == b"" and f"Cannot show {table.path[0]}" in panel.status.value
    panel.skip_button.click()
    np.testing.assert_array_equal(_decoded(panel.image.value), arrays[table.path[1]])


def test_widget_is_none_when_headless(tmp_path, pngs, monkeypatch):
    monkeypatch.setenv("MEDIMG_HEADLESS", "1")
    root, table, _ = pngs
    session = A.AnnotationSession(table, CLASSES, A.LabelStore(tmp_path / "labels.jsonl"), root=root)
    assert A.annotation_widget(session) is None


def test_import_stays_light():
    code = ("import sys, helpers.annotate\n"
            "print(','.join(sorted(m for m in ('torch', 'tensorflow', 'ipywidgets', 'matplotlib')"
            " if m in sys.modules)) or 'none')")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"
