"""A dataset root's recordings and label files, by split: :func:`list_dataset`.

Layouts recognised in each split folder ``ROOT/train``, ``ROOT/val``, ``ROOT/test``:

* **files side by side** (Gen1, 1Mpx, eTraM, RVT's h5, precomputed tensor sets): every event or
  tensor file ``X_td.dat``, ``X_td.h5``, ``X_td.dat.h5``, ``X.dat``, ``X.h5``, ``X.hdf5``,
  ``X.raw`` paired with its ``X_bbox.npy`` (the rule of
  :func:`evstream.datasets.labels.label_file_path`, the one the loaders use). When several
  files share one label file (1Mpx ships ``X_td.dat`` and RVT's ``X_td.h5``), the first format
  of ``prefer`` is listed;
* **DSEC-Detection**: ``SEQ/events/left/events.h5`` with ``SEQ/object_detections/left/tracks.npy``.

Recordings without a label file and label files without a recording are listed apart
(``unlabelled``, ``orphan_labels``) and reported in one warning each: nothing is skipped
silently. Names are sorted, so the listing does not depend on the filesystem's order.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

from evstream.datasets.labels import BBOX_ENDINGS, DSEC_EVENTS, label_file_path
from evstream.errors import MissingFileError

SPLITS = ("train", "val", "test")
#: Default preference when several files share one label file.
DEFAULT_PREFER = ("dat", "h5", "raw")


@dataclass(frozen=True)
class Recording:
    """One labelled recording: its event (or tensor) file, its label file, its split and its
    format (``"dat"``, ``"h5"`` or ``"raw"``, by name)."""

    events: str
    labels: str
    split: str
    format: str


@dataclass
class DatasetFolder:
    """What :func:`list_dataset` found under ``root``."""

    root: str
    layout: str                                   # "side_by_side" or "dsec"
    splits: dict[str, list[Recording]] = field(default_factory=dict)
    unlabelled: dict[str, list[str]] = field(default_factory=dict)
    orphan_labels: dict[str, list[str]] = field(default_factory=dict)

    def files(self, split: str) -> list[str]:
        """The event (or tensor) files of ``split``, for a loader's ``files``."""
        if split not in self.splits:
            raise MissingFileError(f"no {split!r} split (found {sorted(self.splits)})", self.root)
        return [r.events for r in self.splits[split]]

    def label_files(self, split: str) -> list[str]:
        """The label files of ``split``, in the order of :meth:`files`."""
        return [r.labels for r in self.splits.get(split, [])]


def _format_of(name: str) -> str | None:
    for ending in BBOX_ENDINGS:
        if name.endswith(ending):
            return "h5" if ending.endswith((".h5", ".hdf5")) else ending.rsplit(".", 1)[1]
    return None


def _side_by_side(folder: str, split: str, prefer) -> tuple[list[Recording], list[str], list[str]]:
    names = sorted(os.listdir(folder))
    by_label: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        fmt = _format_of(name)
        path = os.path.join(folder, name)
        if fmt is None or not os.path.isfile(path):
            continue
        by_label.setdefault(label_file_path(path), []).append((fmt, path))
    recordings, unlabelled = [], []
    rank = {fmt: i for i, fmt in enumerate(prefer)}
    for label, candidates in sorted(by_label.items()):
        if not os.path.isfile(label):
            unlabelled += [p for _, p in candidates]
            continue
        fmt, path = min(candidates, key=lambda c: (rank.get(c[0], len(rank)), c[1]))
        recordings.append(Recording(path, label, split, fmt))
    paired = set(by_label)
    orphans = [os.path.join(folder, n) for n in names
               if n.endswith("_bbox.npy") and os.path.join(folder, n) not in paired]
    return recordings, unlabelled, orphans


def _dsec(folder: str, split: str) -> tuple[list[Recording], list[str]]:
    recordings, unlabelled = [], []
    for name in sorted(os.listdir(folder)):
        events = os.path.join(folder, name, DSEC_EVENTS)
        if not os.path.isfile(events):
            continue
        labels = label_file_path(events)
        if os.path.isfile(labels):
            recordings.append(Recording(events, labels, split, "h5"))
        else:
            unlabelled.append(events)
    return recordings, unlabelled


def list_dataset(root, prefer=DEFAULT_PREFER) -> DatasetFolder:
    """The recordings and label files of a dataset root, by split (see the module docstring).

    Args:
        root: the folder holding ``train/``, ``val/`` and / or ``test/``.
        prefer: formats in order of preference when several files share one label file.

    Raises :class:`~evstream.errors.MissingFileError` when ``root`` has no split folder.
    """
    root = os.fspath(root)
    splits = [s for s in SPLITS if os.path.isdir(os.path.join(root, s))]
    if not splits:
        raise MissingFileError(f"no split folder ({', '.join(SPLITS)}) in the dataset root", root)
    is_dsec = any(os.path.isfile(os.path.join(root, s, n, DSEC_EVENTS))
                  for s in splits for n in os.listdir(os.path.join(root, s)))
    out = DatasetFolder(root, "dsec" if is_dsec else "side_by_side")
    for split in splits:
        folder = os.path.join(root, split)
        if is_dsec:
            recordings, unlabelled = _dsec(folder, split)
            orphans = []
        else:
            recordings, unlabelled, orphans = _side_by_side(folder, split, prefer)
        out.splits[split] = recordings
        out.unlabelled[split] = unlabelled
        out.orphan_labels[split] = orphans
    n_unlabelled = sum(map(len, out.unlabelled.values()))
    n_orphans = sum(map(len, out.orphan_labels.values()))
    if n_unlabelled:
        warnings.warn(f"{root}: {n_unlabelled} recording(s) without a label file, not listed "
                      f"(see .unlabelled)", stacklevel=2)
    if n_orphans:
        warnings.warn(f"{root}: {n_orphans} label file(s) without a recording, not listed "
                      f"(see .orphan_labels)", stacklevel=2)
    return out
