"""Read RVT's preprocessed layout: one :class:`LayoutSequence` per sequence folder.

A layout sequence and a :class:`~evstream.rvt.sequence.RecordingSequence` (frames built on the
fly from the recording) answer the same questions, so every sample, loader and batch of
:mod:`evstream.rvt` works on either:

* ``num_windows`` (N), ``repr_index`` (``objframe_idx_2_repr_idx``, M), ``frame_shape``;
* ``frames(first, last, out=None)``: uint8 ``(last - first, C, H', W')``;
* ``labels_of_frame(i)``: the boxes of label frame ``i`` (packed box dtype).

The h5 frames are read with ``read_direct`` into the caller's buffer (a shared-memory ring
buffer in a loader worker), so a read allocates nothing.
"""

from __future__ import annotations

import os

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter)
import numpy as np

from evstream.errors import FileFormatError, MissingFileError
from evstream.rvt.config import RvtDataset, dataset_preset, representation_name
from evstream.rvt.labels import FrameLabels
from evstream.rvt.windows import SequencePlan
from evstream.utils.process_local import ProcessLocal


def _load_npy(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise MissingFileError("missing file of RVT's layout", path)
    return np.load(path)


class LayoutSequence:
    """One sequence folder of RVT's layout (``<split>/<name>/``).

    Args:
        path: the sequence folder.
        dataset: ``"gen1"`` or ``"gen4"`` (which h5 name to open; gen4 uses
            ``event_representations_ds2_nearest.h5``).
        representation: the representation folder name (default ``stacked_histogram_dt=50_nbins=10``).
    """

    def __init__(self, path: str | os.PathLike, dataset: str | RvtDataset = "gen1",
                 representation: str | None = None):
        self.path = os.fspath(path)
        self.name = os.path.basename(os.path.normpath(self.path))
        self.dataset = dataset_preset(dataset)
        rep = os.path.join(self.path, "event_representations_v2",
                           representation or representation_name())
        self.h5_path = os.path.join(rep, self.dataset.h5_name)
        if not os.path.isfile(self.h5_path):
            raise MissingFileError("missing frames of RVT's layout", self.h5_path)
        label_file = os.path.join(self.path, "labels_v2", "labels.npz")
        if not os.path.isfile(label_file):
            raise MissingFileError("missing labels of RVT's layout", label_file)
        with np.load(label_file) as z:
            labels, label_index = z["labels"], z["objframe_idx_2_label_idx"]
        frames = _load_npy(os.path.join(self.path, "labels_v2", "timestamps_us.npy"))
        ends = _load_npy(os.path.join(rep, "timestamps_us.npy"))
        repr_index = _load_npy(os.path.join(rep, "objframe_idx_2_repr_idx.npy"))
        if len(np.unique(labels["t"])) != len(label_index) or len(frames) != len(repr_index):
            raise FileFormatError(f"{len(label_index)} label frames but "
                                  f"{len(np.unique(labels['t']))} unique label times / "
                                  f"{len(repr_index)} frame indices", label_file)
        self.plan = SequencePlan(FrameLabels(frames, np.zeros(0, np.int64), labels, label_index),
                                 ends, repr_index)
        self._file: ProcessLocal[h5py.File] = ProcessLocal()    # opened per process
        with h5py.File(self.h5_path, "r") as f:
            shape = f["data"].shape
            self._dtype = f["data"].dtype
        if shape[0] != len(ends):
            raise FileFormatError(f"{shape[0]} frames but {len(ends)} window end times",
                                  self.h5_path)
        self.frame_shape = tuple(int(v) for v in shape[1:])

    @property
    def num_windows(self) -> int:
        return len(self.plan.ends)

    @property
    def repr_index(self) -> np.ndarray:
        return self.plan.repr_index

    def labels_of_frame(self, i: int) -> np.ndarray:
        return self.plan.labels.boxes_of_frame(i)

    def frames(self, first: int, last: int, out: np.ndarray | None = None) -> np.ndarray:
        """Frames ``first .. last - 1`` (uint8; float32 for a non-uint8 file, as RVT)."""
        self.plan.check_range(first, last, self.h5_path)
        file = self._file.get()
        if file is None:
            file = h5py.File(self.h5_path, "r")
            self._file.set(file)
        data = file["data"]
        dtype = np.uint8 if self._dtype == np.uint8 else np.float32
        if out is None:
            out = np.empty((last - first,) + self.frame_shape, dtype)
        if last > first:
            if data.dtype != out.dtype:
                out[:last - first] = data[first:last]
            elif out.flags.c_contiguous:
                data.read_direct(out, np.s_[first:last], np.s_[0:last - first])
            else:                    # e.g. a row of a batch written in place: frame by frame
                for k in range(last - first):
                    data.read_direct(out[k], np.s_[first + k], np.s_[...])
        return out

    def close(self) -> None:
        file = self._file.pop()
        if file is not None:
            file.close()


def layout_sequences(root: str | os.PathLike, split: str, dataset: str | RvtDataset = "gen1",
                     representation: str | None = None) -> list[LayoutSequence]:
    """Every sequence folder of ``root/split`` (sorted by name)."""
    folder = os.path.join(os.fspath(root), split)
    if not os.path.isdir(folder):
        raise MissingFileError("no such split folder in RVT's layout", folder)
    return [LayoutSequence(os.path.join(folder, name), dataset, representation)
            for name in sorted(os.listdir(folder))
            if os.path.isdir(os.path.join(folder, name))]
