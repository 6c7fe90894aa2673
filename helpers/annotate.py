"""Labelling images inside Jupyter: a crash-safe label journal, the annotation loop, its widgets and a scripted replay.

Every label is saved the moment it is made, to a **label journal**: a JSON Lines file with one event per line,

    {"event": "label", "path": "CXR0001/0001.dcm", "label": "pneumonia", "annotator": "reader1",
     "time": "2024-05-01T14:30:00.123Z"}
    {"event": "undo", "path": "CXR0001/0001.dcm", "label": "pneumonia", "annotator": "reader1", "time": "..."}

only ever appended to. Each event is one ``write`` of the whole line, then ``flush`` and ``os.fsync`` before the
call returns, so a kernel restart, a closed laptop or a killed process loses at most the label being made. Such a
crash can leave a torn last line (no trailing newline, or not valid JSON); opening the journal warns with the file
and byte offset and cuts that line off, so new events append cleanly. Damage anywhere else is not what a crash
does: it raises :class:`~helpers.errors.LabelJournalError` and the file is left as it is.

Replaying the journal gives the current labels: the last label of a path wins; an ``undo`` takes back its
annotator's most recent label still standing, restoring that path's previous label, if any. The state is the
labels table of :mod:`helpers.labels` (path, label, annotator, labelled_at), so the labels export to CSV, COCO or
Azure ML JSON Lines from there.

The pieces: :class:`LabelStore` (the journal), :class:`AnnotationSession` (the loop's logic: which image is next,
choose, skip, undo), :func:`annotation_widget` (ipywidgets buttons over a session; ``None`` when headless) and
:func:`replay` (a scripted annotator through the same code path as the buttons, so the notebook runs in CI).

This module imports neither torch nor TensorFlow, and imports ipywidgets, matplotlib and Pillow only when a
function needs them.
"""

from __future__ import annotations

import html
import json
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.dicom import read_unit_image
from helpers.errors import LabelFormatError, LabelJournalError, MedImgError
from helpers.labels import SEPARATOR, check_labels, clean_path

#: Events a label journal holds.
EVENTS = ("label", "undo")
#: Keys of every journal event, in the order they are written.
EVENT_KEYS = ("event", "path", "label", "annotator", "time")
#: Default display window (center, width) for images in [0, 1]: the identity.
UNIT_WINDOW = (0.5, 1.0)
#: Width of the image in the annotation widget (CSS), whatever the image's own size.
DISPLAY_WIDTH = "384px"


class TornLineWarning(UserWarning):
    """A label journal's last line was incomplete (a crash mid-write) and has been cut off."""


def now_iso() -> str:
    """The current UTC time as ISO 8601 text with milliseconds, e.g. ``2024-05-01T14:30:00.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_classes(classes: Iterable[str]) -> list[str]:
    """``classes`` as a list of distinct, non-empty class names without ``|``, else LabelFormatError."""
    if isinstance(classes, str):
        raise LabelFormatError(f"classes must be a list of class names, got the string {classes!r}.")
    out = [str(c).strip() if isinstance(c, str) else c for c in classes]
    bad = [c for c in out if not isinstance(c, str) or not c or SEPARATOR in c]
    if bad:
        raise LabelFormatError(f"class names must be non-empty text without '{SEPARATOR}', got {bad!r}.")
    if not out:
        raise LabelFormatError("classes is empty; give the class names to choose from, e.g. ['normal', 'pneumonia'].")
    if len(set(out)) != len(out):
        raise LabelFormatError(f"classes names a class twice: {out!r}.")
    return out


def check_label(label: Any, classes: Sequence[str] | None = None) -> str:
    """``label`` as one class name (text, no ``|``), one of ``classes`` if given, else LabelFormatError."""
    if not isinstance(label, str) or not label.strip():
        raise LabelFormatError(f"a label is a class name (non-empty text), got {label!r}.")
    label = label.strip()
    if SEPARATOR in label:
        raise LabelFormatError(f"label {label!r} holds several classes; the journal takes one class per image.")
    if classes is not None and label not in classes:
        raise LabelFormatError(f"label {label!r} is not a class here; choose one of: {', '.join(classes)}.")
    return label


# --- The label journal -------------------------------------------------------------------------------------


class LabelStore:
    """Labels saved one by one to an append-only JSON Lines journal (see the module docstring), replayed on opening.

    ``annotator`` signs this store's events (and scopes its :meth:`undo`); ``classes``, if given, are the only labels
    :meth:`label` accepts. One writer at a time: two processes appending to one journal at once are not supported
    (there is no lock; give each reader a journal of their own). A second store on the same file in the same process,
    e.g. from re-running a notebook cell, is safe: before each write a store re-reads the journal if the file has
    changed since it last read it.
    """

    def __init__(self, path: str | Path, annotator: str = "reader1", classes: Sequence[str] | None = None) -> None:
        if not isinstance(annotator, str) or not annotator.strip():
            raise LabelFormatError(f"annotator must be a non-empty name, got {annotator!r}.")
        self.path = Path(path).expanduser()
        self.annotator = annotator.strip()
        self.classes = None if classes is None else check_classes(classes)
        self._load(stacklevel=3)

    # -- reading the journal

    def _reset(self) -> None:
        """Empty state: no events, no labels."""
        self._events: list[dict[str, str]] = []  # label events, in journal order
        self._standing: dict[str, list[int]] = {}  # path -> its standing label events (indices), oldest first
        self._stacks: dict[str, list[int]] = {}  # annotator -> their standing label events, oldest first
        self._size = 0  # bytes of the journal this state was read from

    def _load(self, stacklevel: int = 2) -> None:
        """Replay the journal into the state; warn about and cut off a torn last line; raise on other damage."""
        self._reset()
        data = self.path.read_bytes() if self.path.exists() else b""
        lines = data.split(b"\n")
        tail = lines.pop()  # what follows the last newline: b"" unless the last write was torn
        torn = len(data) - len(tail) if tail else None
        offset = 0
        events: list[tuple[int, int, dict[str, str]]] = []
        for number, raw in enumerate(lines, start=1):
            start, offset = offset, offset + len(raw) + 1
            if not raw.strip():
                continue
            try:
                event = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                if number == len(lines) and torn is None:  # the last line, complete but unreadable
                    torn = start
                    break
                raise self._damage(number, start, f"not valid JSON ({exc})") from None
            events.append((number, start, event))
        for number, start, event in events:
            try:
                self._apply(self._checked(event))
            except ValueError as exc:
                raise self._damage(number, start, str(exc)) from None
        if torn is not None:
            preview = data[torn:torn + 60]
            warnings.warn(
                f"{self.path}: the last line (byte {torn} to {len(data)}: {preview!r}"
                f"{'...' if len(data) - torn > 60 else ''}) is incomplete, as a crash mid-write leaves it; it was cut "
                f"off and the {len(events)} complete events before it kept. The label being made at the crash was "
                "not saved: label that image again.",
                TornLineWarning, stacklevel=stacklevel,
            )
            with open(self.path, "r+b") as f:
                f.truncate(torn)
                f.flush()
                os.fsync(f.fileno())
            data = data[:torn]
        self._size = len(data)

    def _damage(self, number: int, start: int, reason: str) -> LabelJournalError:
        """The error for a damaged line ``number`` starting at byte ``start``."""
        return LabelJournalError(
            f"{self.path}, line {number} (byte {start}): {reason}. A crash only ever damages the last line (which is "
            "repaired on opening); this is damage inside the journal, so the file was left unchanged. Fix or delete "
            "that line by hand (each line is one JSON event), or restore the journal from a backup."
        )

    @staticmethod
    def _checked(event: Any) -> dict[str, str]:
        """A journal event with the keys of :data:`EVENT_KEYS` as text, else ValueError saying what is wrong."""
        if not isinstance(event, dict):
            raise ValueError(f"an event is a JSON object, got {type(event).__name__}")
        missing = [k for k in EVENT_KEYS if k not in event]
        if missing:
            raise ValueError(f"the event lacks {', '.join(missing)}")
        if event["event"] not in EVENTS:
            raise ValueError(f"unknown event {event['event']!r}; events are {', '.join(EVENTS)}")
        bad = [k for k in EVENT_KEYS if not isinstance(event[k], str) or not event[k].strip()]
        if bad:
            raise ValueError(f"{', '.join(bad)} must be non-empty text")
        try:
            clean_path(event["path"])
            check_label(event["label"])
            datetime.fromisoformat(event["time"])
        except (LabelFormatError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        return {k: event[k] for k in EVENT_KEYS}

    def _apply(self, event: dict[str, str]) -> str:
        """Apply one checked event to the state; return its path (ValueError for an undo that fits no label)."""
        path, who = event["path"], event["annotator"]
        stack = self._stacks.setdefault(who, [])
        if event["event"] == "label":
            self._events.append(event)
            index = len(self._events) - 1
            stack.append(index)
            self._standing.setdefault(path, []).append(index)
            return path
        if not stack:
            raise ValueError(f"undo by {who!r}, who has no label left to undo")
        undone = self._events[stack[-1]]
        if (undone["path"], undone["label"]) != (path, event["label"]):
            raise ValueError(
                f"undo names {path!r} = {event['label']!r}, but {who!r}'s last standing label is "
                f"{undone['path']!r} = {undone['label']!r} (was a line removed?)"
            )
        index = stack.pop()
        self._standing[path].remove(index)
        if not self._standing[path]:
            del self._standing[path]
        return path

    # -- writing

    def _refresh(self) -> None:
        """Re-read the journal if the file has changed since this store last read or wrote it."""
        size = self.path.stat().st_size if self.path.exists() else 0
        if size != self._size:
            self._load(stacklevel=4)

    def _write(self, event: dict[str, str]) -> None:
        """Append ``event`` as one line in one write, flushed and fsynced; on failure cut back what was written."""
        line = (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")
        created = not self.path.exists()
        if created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab", buffering=0) as f:
            before = f.tell()
            try:
                written = f.write(line)
                while written < len(line):  # a short write (rare: a full disk or a signal) is completed
                    written += f.write(line[written:])
                f.flush()
                os.fsync(f.fileno())
            except BaseException:
                try:  # leave no partial line for the next event to land after
                    f.truncate(before)
                    os.fsync(f.fileno())
                except OSError:
                    pass
                raise
            self._size = f.tell()
        if created:  # the new file's directory entry must survive a power cut too
            try:
                fd = os.open(self.path.parent, os.O_RDONLY)
            except OSError:  # Windows cannot open a folder
                return
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)

    def label(self, path: str, label: str) -> None:
        """Save ``label`` for the image at ``path`` (relative POSIX); it is on disk when this returns."""
        path = clean_path(path)
        label = check_label(label, self.classes)
        self._refresh()
        event = {"event": "label", "path": path, "label": label, "annotator": self.annotator, "time": now_iso()}
        self._write(event)
        self._apply(event)

    def undo(self) -> str | None:
        """Take back this annotator's most recent label still standing; return its path (None if there is none)."""
        self._refresh()
        stack = self._stacks.get(self.annotator)
        if not stack:
            return None
        last = self._events[stack[-1]]
        event = {"event": "undo", "path": last["path"], "label": last["label"], "annotator": self.annotator,
                 "time": now_iso()}
        self._write(event)
        return self._apply(event)

    # -- the state

    def label_of(self, path: str) -> str | None:
        """The current label of ``path``, or None if it has none."""
        standing = self._standing.get(clean_path(path))
        return self._events[standing[-1]]["label"] if standing else None

    def labels(self) -> pd.DataFrame:
        """The labels table (path, label, annotator, labelled_at), one row per labelled image, sorted by path."""
        rows = []
        for path, standing in self._standing.items():
            event = self._events[standing[-1]]
            rows.append({"path": path, "label": event["label"], "annotator": event["annotator"],
                         "labelled_at": event["time"]})
        return check_labels(pd.DataFrame(rows, columns=["path", "label", "annotator", "labelled_at"]),
                            "classification")

    def __len__(self) -> int:
        """How many images have a label."""
        return len(self._standing)

    def __contains__(self, path: object) -> bool:
        """True if the image at ``path`` has a label."""
        return isinstance(path, str) and bool(path.strip()) and clean_path(path) in self._standing

    def next_unlabelled(self, paths: Iterable[str]) -> str | None:
        """The first of ``paths`` (in their order) without a label, or None when all have one."""
        return next((p for p in map(clean_path, paths) if p not in self._standing), None)

    def progress(self, paths: Iterable[str]) -> tuple[int, int]:
        """(labelled, total) over ``paths``."""
        cleaned = [clean_path(p) for p in paths]
        return sum(p in self._standing for p in cleaned), len(cleaned)

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r}, annotator={self.annotator!r}, {len(self)} labelled)"


def summary(store: LabelStore, paths: Iterable[str]) -> dict[str, Any]:
    """Progress over ``paths``: ``{"done", "total", "by_class": {class: images}}``, the store's classes first."""
    paths = [clean_path(p) for p in paths]
    labels = [store.label_of(p) for p in paths]
    counts = {c: 0 for c in store.classes or []}
    for label in sorted(x for x in labels if x is not None):
        counts[label] = counts.get(label, 0) + 1
    return {"done": sum(x is not None for x in labels), "total": len(paths), "by_class": counts}


# --- Reading images --------------------------------------------------------------------------------------


def png_bytes(image: np.ndarray, win: tuple[float, float] | None = UNIT_WINDOW) -> bytes:
    """``image`` windowed with (center, width) (see :func:`helpers.viz.to_display`) as 8-bit greyscale PNG bytes."""
    from helpers.viz import to_display, to_png

    return to_png(to_display(image, win))


# --- The annotation loop ----------------------------------------------------------------------------------


def _table_paths(table: pd.DataFrame | Sequence[str]) -> list[str]:
    """The image paths of a table (its ``path`` column) or a list, cleaned, first occurrence kept."""
    if isinstance(table, pd.DataFrame):
        if "path" not in table.columns:
            raise LabelFormatError("the table has no 'path' column (image files relative to the data folder).")
        table = table["path"].tolist()
    paths = [clean_path(p, f"image {i}") for i, p in enumerate(table)]
    return list(dict.fromkeys(paths))


class AnnotationSession:
    """The annotation loop without widgets: the current image, choose (save and advance), skip, undo, progress.

    The current image is the first image of ``table`` (in its order) without a label in ``store``, so a session on a
    journal that already has labels resumes where the last one stopped. Skipped images come back after all the others,
    in the order they were skipped. After :meth:`undo` the current image is the one whose label was taken back (with
    its earlier label, if it had one), to be labelled again. ``root``: the folder the table's paths are relative to
    (default: the working folder). ``window``: the display window (center, width) in the units of ``read_image``
    (default :data:`UNIT_WINDOW`, the identity on [0, 1]). ``read_image(path) -> float (H, W) in [0, 1]``: default
    :func:`helpers.dicom.read_unit_image`.
    """

    def __init__(self, table: pd.DataFrame | Sequence[str], classes: Sequence[str], store: LabelStore,
                 root: str | Path | None = None, window: tuple[float, float] | None = None,
                 read_image: Callable[[Path], np.ndarray] | None = None) -> None:
        self.paths = _table_paths(table)
        if not self.paths:
            raise LabelFormatError("the table has no images to label.")
        self.classes = check_classes(classes)
        if store.classes is not None and set(self.classes) - set(store.classes):
            extra = sorted(set(self.classes) - set(store.classes))
            raise LabelFormatError(f"classes {extra} are not among the store's classes {store.classes}.")
        self.store = store
        self.root = Path(root).expanduser() if root is not None else None
        self.window = tuple(window) if window is not None else UNIT_WINDOW
        self.read_image = read_image or read_unit_image
        self.skipped: list[str] = []
        self._focus: str | None = None
        self._cache: tuple[str, np.ndarray] | None = None

    @property
    def current(self) -> str | None:
        """The path of the image to label now, or None when every image has a label."""
        if self._focus is not None:
            return self._focus
        skipped = set(self.skipped)
        return self.store.next_unlabelled([p for p in self.paths if p not in skipped] + self.skipped)

    @property
    def done(self) -> bool:
        """True when every image of the table has a label."""
        return self.current is None

    @property
    def progress(self) -> tuple[int, int]:
        """(labelled, total) over the table's images."""
        return self.store.progress(self.paths)

    def choose(self, label: str) -> str:
        """Save ``label`` for the current image (on disk when this returns) and move on; return the path labelled."""
        path = self.current
        if path is None:
            raise RuntimeError(f"All {len(self.paths)} images are labelled; press Undo to change the last label.")
        self.store.label(path, check_label(label, self.classes))
        self._focus = None
        if path in self.skipped:
            self.skipped.remove(path)
        return path

    def skip(self) -> str | None:
        """Move on without labelling the current image (it comes back at the end); return its path (None if done)."""
        path = self.current
        if path is None:
            return None
        self._focus = None
        if path in self.skipped:
            self.skipped.remove(path)
        self.skipped.append(path)
        return path

    def undo(self) -> str | None:
        """Take back the annotator's last label and go back to that image; return its path (None: nothing to undo)."""
        path = self.store.undo()
        self._focus = path if path in self.paths else None
        return path

    def image(self) -> np.ndarray | None:
        """The current image as read by ``read_image`` (cached while it stays current), or None when done."""
        path = self.current
        if path is None:
            return None
        if self._cache is None or self._cache[0] != path:
            file = self.root / path if self.root is not None else Path(path)
            self._cache = (path, np.asarray(self.read_image(file), dtype=np.float32))
        return self._cache[1]


def replay(session: AnnotationSession, annotator: Callable[[str], str | None], n: int | None = None) -> int:
    """Label the next ``n`` images (all if None) with a scripted ``annotator(path) -> class``; return how many.

    Each label goes through :meth:`AnnotationSession.choose`, as a button click does, so it is saved at once. An
    annotator returning None skips the image; replay stops when every image left has been skipped in a row.
    """
    if n is not None and n < 0:
        raise ValueError(f"n must be a count of images (0 or more) or None for all, got {n}.")
    labelled = skips = 0
    while not session.done and (n is None or labelled < n):
        label = annotator(session.current)
        if label is None:
            done, total = session.progress
            skips += 1
            if skips >= total - done:
                break
            session.skip()
            continue
        session.choose(label)
        labelled, skips = labelled + 1, 0
    return labelled


# --- The widgets ------------------------------------------------------------------------------------------


class AnnotationPanel:
    """ipywidgets over an :class:`AnnotationSession`: the image with window sliders (and presets), one button per
    class, Skip, Undo, a progress bar and an "n of N" count. Every click goes through the session, so it is saved
    before the next image shows; a failed save is shown in red and the image stays."""

    def __init__(self, session: AnnotationSession,
                 window_presets: dict[str, tuple[float, float]] | None = None) -> None:
        import ipywidgets as w

        self.session = session
        self.window_presets = dict(window_presets or {})
        center, width = session.window
        self.image = w.Image(format="png", layout=w.Layout(width=DISPLAY_WIDTH, height="auto"))
        self.center = w.FloatSlider(value=center, min=min(0.0, center), max=max(1.0, center), step=0.01,
                                    description="centre", continuous_update=False)
        self.width = w.FloatSlider(value=width, min=0.01, max=max(2.0, width), step=0.01, description="width",
                                   continuous_update=False)
        self.presets = w.Dropdown(options=list(self.window_presets), value=None, description="window")
        self.buttons = {c: w.Button(description=c, button_style="primary", tooltip=f"label this image {c}")
                        for c in session.classes}
        self.skip_button = w.Button(description="Skip", icon="forward", tooltip="come back to this image at the end")
        self.undo_button = w.Button(description="Undo", icon="undo", tooltip="take back the last label")
        self.bar = w.IntProgress(value=0, min=0, max=len(session.paths), description="progress")
        self.count = w.Label()
        self.caption = w.HTML()
        self.status = w.HTML()
        for name, button in self.buttons.items():
            button.on_click(lambda _b, name=name: self.choose(name))
        self.skip_button.on_click(lambda _b: self.skip())
        self.undo_button.on_click(lambda _b: self.undo())
        self.center.observe(self._window_changed, names="value")
        self.width.observe(self._window_changed, names="value")
        self.presets.observe(self._preset, names="value")
        window_row = [self.center, self.width] + ([self.presets] if self.window_presets else [])
        self.widget = w.VBox([
            self.caption, self.image, w.HBox(window_row), w.HBox(list(self.buttons.values())),
            w.HBox([self.skip_button, self.undo_button]), w.HBox([self.bar, self.count]), self.status,
        ])
        self.refresh()

    def _say(self, text: str, error: bool = False) -> None:
        """Show ``text`` (escaped) under the buttons, in red if ``error``."""
        text = html.escape(text)
        self.status.value = f"<span style='color:#c00'><b>{text}</b></span>" if error else text

    def _window_changed(self, _change: Any) -> None:
        self.session.window = (float(self.center.value), float(self.width.value))
        self.render()

    def _preset(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            center, width = self.window_presets[change["new"]]
            with self.center.hold_trait_notifications(), self.width.hold_trait_notifications():
                self.width.max = max(self.width.max, float(width))
                self.center.min, self.center.max = min(self.center.min, center), max(self.center.max, center)
                self.center.value, self.width.value = float(center), float(width)

    def render(self) -> None:
        """Draw the current image with the session's window (blank when done or unreadable)."""
        try:
            image = self.session.image()
        except (MedImgError, OSError, ValueError) as exc:
            self.image.value = b""
            self._say(f"Cannot show {self.session.current}: {exc}. Press Skip to go on.", error=True)
            return
        self.image.value = b"" if image is None else png_bytes(image, self.session.window)

    def refresh(self) -> None:
        """Update the image, caption, progress and buttons to the session's state."""
        done, total = self.session.progress
        self.bar.value, self.count.value = done, f"{done} of {total} labelled"
        path = self.session.current
        for button in [*self.buttons.values(), self.skip_button]:
            button.disabled = path is None
        if path is None:
            self.caption.value = f"<b>All {total} images are labelled.</b> Undo takes back the last label."
        else:
            earlier = self.session.store.label_of(path)
            note = f" (labelled {html.escape(earlier)}: choose again to keep or change it)" if earlier else ""
            self.caption.value = f"<b>{html.escape(path)}</b>{note}"
        self.render()

    def choose(self, label: str) -> None:
        """Save ``label`` for the current image through the session and show the next one."""
        try:
            path = self.session.choose(label)
        except (MedImgError, OSError, RuntimeError) as exc:
            self._say(f"Not saved: {exc}", error=True)
            return
        self._say(f"saved {path} = {label}")
        self.refresh()

    def skip(self) -> None:
        """Skip the current image (it comes back at the end)."""
        path = self.session.skip()
        self._say(f"skipped {path}; it comes back at the end" if path else "nothing to skip")
        self.refresh()

    def undo(self) -> None:
        """Take back the last label and show that image again."""
        try:
            path = self.session.undo()
        except (MedImgError, OSError) as exc:
            self._say(f"Undo failed: {exc}", error=True)
            return
        self._say(f"took back the label of {path}" if path else "nothing to undo")
        self.refresh()


def annotation_widget(session: AnnotationSession, window_presets: dict[str, tuple[float, float]] | None = None):
    """The annotation widgets (an ipywidgets ``VBox``; see :class:`AnnotationPanel`) in a live notebook; None headless.

    Headless (CI, ``make demo``: :func:`helpers.config.is_headless`) nothing is drawn and the notebook labels with
    :func:`replay` instead. End the cell with the call so that Jupyter shows the widget.
    """
    from helpers.config import is_headless

    if is_headless():
        return None
    return AnnotationPanel(session, window_presets).widget


__all__ = [
    "AnnotationPanel", "AnnotationSession", "EVENTS", "EVENT_KEYS", "LabelStore", "TornLineWarning", "UNIT_WINDOW",
    "annotation_widget", "check_classes", "check_label", "now_iso", "png_bytes", "replay",
    "summary",
]
