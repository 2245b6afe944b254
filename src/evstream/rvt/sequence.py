"""One RVT sequence computed from its original files: recording + ``_bbox.npy``.

:func:`find_sequences` pairs the box files of a split folder with their event files as RVT
does (``S/<stem>.npy`` -> the part of ``<stem>`` before the first ``bbox`` + an event suffix;
the sequence name is the part before the first ``_bbox``), and also accepts the original
recordings (``<prefix>td.dat``, ``<prefix>td.raw``) besides RVT's HDF5 event files.

:class:`RecordingSequence` holds a sequence's plan (labels, window ends, label frame -> window
map) and builds any range of its frames on demand, exactly as RVT's preprocessing stores them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from evstream.errors import GeometryError
from evstream.rvt.config import COUNT_CUTOFF, NBINS, RvtDataset, dataset_preset
from evstream.rvt.events import RepairedEvents
from evstream.rvt.labels import frame_labels, load_box_file
from evstream.rvt.representation import stacked_histogram_window
from evstream.rvt.window_events import iter_window_events
from evstream.rvt.windows import SequencePlan, plan_sequence
from evstream.utils.process_local import ProcessLocal

SPLITS = ("train", "val", "test")
#: Event-file suffixes tried after the box file's prefix, after the dataset's own (RVT's h5).
ORIGINAL_SUFFIXES = ("td.dat", "td.raw", "td.h5", "td.hdf5", "td.dat.h5")


@dataclass(frozen=True)
class SequenceFiles:
    """A sequence's files: ``name`` (output folder), ``split``, ``events`` and ``boxes`` paths."""

    name: str
    split: str
    events: str
    boxes: str


def find_sequences(input_dir: str | os.PathLike, dataset: str | RvtDataset,
                   splits=SPLITS) -> tuple[list[SequenceFiles], list[tuple[str, str]]]:
    """``(sequences, problems)`` of ``input_dir/<split>/``; a box file without an event file is
    a problem (RVT asserts it exists), listed as ``(box file, what is missing)``; RVT's ignored
    sequences are left out. Sorted by split then name (RVT's order is the filesystem's; it does not matter)."""
    dataset = dataset_preset(dataset)
    found, problems = [], []
    for split in splits:
        folder = os.path.join(os.fspath(input_dir), split)
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            if not entry.endswith(".npy"):
                continue
            stem = entry[:-4]
            if "bbox" not in stem:
                continue
            prefix = stem[:stem.index("bbox")]
            name = stem.split("_bbox")[0]
            if name in dataset.ignored_sequences:
                continue
            candidates = (dataset.event_suffix,) + ORIGINAL_SUFFIXES
            events = next((os.path.join(folder, prefix + s) for s in candidates
                           if os.path.isfile(os.path.join(folder, prefix + s))), None)
            if events is None:
                problems.append((os.path.join(folder, entry), f"no event file "
                                 f"{prefix}{{{','.join(candidates)}}} beside it"))
                continue
            found.append(SequenceFiles(name, split, events, os.path.join(folder, entry)))
    return found, problems


def check_geometry(events: RepairedEvents, dataset: RvtDataset) -> None:
    """RVT asserts the sensor size is the dataset's; a recording that says otherwise raises
    (a file that states no size gets the dataset's, as in RVT)."""
    size = events.geometry
    if size is not None and tuple(size) != (dataset.height, dataset.width):
        raise GeometryError(f"sensor is {size[1]}x{size[0]}, RVT's {dataset.name} needs "
                            f"{dataset.width}x{dataset.height}", events.path)


class RecordingSequence:
    """An RVT sequence straight from its recording and box file (no preprocessing step).

    Args:
        events_path, boxes_path: the recording and its ``_bbox.npy``.
        dataset: ``"gen1"``, ``"gen4"`` or an :class:`~evstream.rvt.config.RvtDataset`.
        train_split: apply the train-only "faulty box" filter.
        mode: ``"duration"`` (``dt=50``) or ``"count"`` (``ne=50000``).
        fastmode: RVT's uint8 wrap of the counts (default); False clamps instead (an option that
            departs from RVT).
        reader_kwargs: forwarded to the evstream reader (RAW/NPY/Prophesee HDF5).

    Raises :class:`~evstream.errors.RvtRuleError` where RVT's script stops; :attr:`plan` is None
    when no box survives the filters (RVT writes no output for such a sequence). Same interface
    as :class:`~evstream.rvt.layout_reader.LayoutSequence` (``num_windows``, ``repr_index``,
    ``frame_shape``, ``frames``, ``labels_of_frame``).
    """

    def __init__(self, events_path, boxes_path, dataset="gen1", train_split=False,
                 mode="duration", *, fastmode=True, nbins=NBINS, count_cutoff=COUNT_CUTOFF,
                 **reader_kwargs):
        self.dataset = dataset_preset(dataset)
        self.events_path, self.boxes_path = os.fspath(events_path), os.fspath(boxes_path)
        self.name = os.path.basename(self.boxes_path)[:-4].split("_bbox")[0]
        self.mode, self.fastmode, self.nbins, self.count_cutoff = mode, fastmode, nbins, count_cutoff
        labels = frame_labels(load_box_file(self.boxes_path), self.dataset, train_split,
                              path=self.boxes_path)
        self.plan: SequencePlan | None = None if labels is None else plan_sequence(labels)
        self._reader_kwargs = reader_kwargs
        self._events: ProcessLocal[RepairedEvents] = ProcessLocal()

    @property
    def events(self) -> RepairedEvents:
        """The recording's reader, opened by this process at first use (a forked or spawned
        worker opens its own: :mod:`evstream.utils.process_local`)."""
        events = self._events.get()
        if events is None:
            events = RepairedEvents(self.events_path, **self._reader_kwargs)
            check_geometry(events, self.dataset)
            self._events.set(events)
        return events

    @property
    def num_windows(self) -> int:
        return self.plan.num_windows

    @property
    def repr_index(self) -> np.ndarray:
        return self.plan.repr_index

    def labels_of_frame(self, i: int) -> np.ndarray:
        return self.plan.labels.boxes_of_frame(i)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (2 * self.nbins,) + self.dataset.frame_hw

    def iter_frames(self, first: int = 0, last: int | None = None, out: np.ndarray | None = None):
        """The frames of windows ``first .. last - 1`` in order, uint8 ``(C, H', W')`` each:
        the ``i``-th is written into ``out[i % len(out)]`` when ``out`` is given (all of them
        when it holds the range, else a ring), else into one reused buffer."""
        last = self.plan.check_range(first, last, self.events_path)
        buffer = np.empty(self.frame_shape, np.uint8)
        for k, window in enumerate(iter_window_events(self.events, self.plan.ends, self.mode,
                                                      first, last)):
            target = buffer if out is None else out[k % len(out)]
            yield stacked_histogram_window(
                window, self.dataset.height, self.dataset.width, nbins=self.nbins,
                count_cutoff=self.count_cutoff, fastmode=self.fastmode,
                downsample_by_2=self.dataset.downsample_by_2, out=target, path=self.events_path)

    def frames(self, first: int, last: int, out: np.ndarray | None = None) -> np.ndarray:
        """Frames ``first .. last - 1`` as one uint8 array ``(last - first, C, H', W')``."""
        self.plan.check_range(first, last, self.events_path)
        if out is None:
            out = np.empty((last - first,) + self.frame_shape, np.uint8)
        for _ in self.iter_frames(first, last, out=out):
            pass
        return out

    def close(self) -> None:
        events = self._events.pop()
        if events is not None:
            events.close()


def recording_sequences(input_dir: str | os.PathLike, split: str,
                        dataset: str | RvtDataset = "gen1", mode: str = "duration",
                        **options) -> list[RecordingSequence]:
    """Every sequence of ``input_dir/split`` computed on the fly (those whose boxes all fail
    the filters are left out, as RVT writes nothing for them). A box file without an event
    file raises :class:`~evstream.errors.MissingFileError`."""
    from evstream.errors import MissingFileError

    files, problems = find_sequences(input_dir, dataset, splits=(split,))
    if problems:
        raise MissingFileError(problems[0][1], problems[0][0])
    sequences = [RecordingSequence(f.events, f.boxes, dataset, split == "train", mode, **options)
                 for f in files]
    return [s for s in sequences if s.plan is not None]
