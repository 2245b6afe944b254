"""The files a loader reads, kept open: which kind each file is, and an LRU of
open handles (one per process, so each DataLoader worker has its own).

* Event recordings (``.dat``, ``.raw``, HDF5 event files): a reader per file (layer 1). A
  request that starts where the previous one on the same file ended continues reading from the
  cursor; any other request seeks (a binary search for DAT, the nearest index checkpoint for
  RAW, a binary search on the times for HDF5 event files).
* Tensor files (``.h5``, ``.hdf5``, ``docs/formats.md`` §9): an open
  :class:`~evstream.preprocessing.tensor_file.TensorFile` per file; rows are read straight into
  the caller's array.

Handles are never shared across processes: a cache created in one process and used in another
(a forked DataLoader worker) starts empty there and leaves the parent's handles alone.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from evstream.errors import ArgumentError, MissingFileError
from evstream.io import EventCD, EventNpyReader, open_reader
from evstream.preprocessing.tensor_file import TENSOR_FILE_EXTENSIONS, TensorFile, is_tensor_file
from evstream.utils.process_local import ProcessLocal

#: Extension (lower case) -> kind of file (``.h5`` / ``.hdf5``: see :func:`file_kind`).
KINDS = {".dat": "dat", ".raw": "raw", ".npy": "npy",
         **{extension: "h5" for extension in TENSOR_FILE_EXTENSIONS}}


def file_kind(path) -> str | None:
    """``"dat"``, ``"raw"``, ``"h5"`` (tensor file), ``"h5_events"`` (an HDF5 event file:
    ``/CD/events`` or ``/events/{x,y,p,t}``), ``"npy"`` or None. By extension, and for
    ``.h5``/``.hdf5`` by :func:`~evstream.preprocessing.tensor_file.is_tensor_file`."""
    kind = KINDS.get(os.path.splitext(os.fspath(path))[1].lower())
    if kind == "h5" and not is_tensor_file(path):
        return "h5_events"
    return kind


def open_event_reader(path):
    """A reader for a ``.dat``, ``.raw`` or HDF5 event recording (:func:`evstream.io.open_reader`:
    RAW times shifted, as OpenEB does; HDF5 event arrays with their defaults: times repaired,
    out-of-sensor events dropped); a tensor file or an ``.npy`` file is refused."""
    if file_kind(path) not in ("dat", "raw", "h5_events"):
        raise ArgumentError("not an event recording (.dat, .raw or an HDF5 event file)", path)
    return open_reader(path)


def last_event_time(path) -> int:
    """Timestamp of the last event of a ``.dat``/``.raw``/``.npy``/HDF5 event file (0 if it has
    none).

    DAT and NPY: read from the last record. RAW: the file is decoded once (no file is written).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError("no such recording", path)
    npy = file_kind(path) == "npy"          # an event or a box file: both have times
    with (EventNpyReader(path) if npy else open_event_reader(path)) as reader:
        if reader.event_count() == 0:
            return 0
        reader.seek_time(np.iinfo(np.int64).max // 4)
        return int(reader.current_time)


class _EventSource:
    """An open reader and where the last request on it ended."""

    def __init__(self, path):
        self.reader = open_event_reader(path)
        self.next_start = None

    def read(self, start: int, duration: int) -> np.ndarray:
        """Events with ``start <= t < start + duration``, times unchanged."""
        reader = self.reader
        sequential = (self.next_start == start
                      and (reader.is_done() or reader.current_time == start))
        if not sequential:
            reader.seek_time(start)
        self.next_start = start + duration
        if reader.is_done():
            return np.empty(0, dtype=EventCD)
        return reader.load_delta_t(duration)

    def close(self) -> None:
        self.reader.close()


class SourceCache:
    """LRU of open files for one process.

    Args:
        max_open: how many files stay open (the least recently used is closed beyond that).
    """

    def __init__(self, max_open: int = 16):
        if int(max_open) < 1:
            raise ArgumentError(f"max_open_files must be >= 1, got {max_open}")
        self.max_open = int(max_open)
        self._files: ProcessLocal[OrderedDict[str, object]] = ProcessLocal()
        #: counters (reset never): opens, sequential continuations, seeks
        self.stats = {"opens": 0, "sequential": 0, "seeks": 0}

    def __getstate__(self):
        # a pickled cache (sent to a spawned worker) travels empty
        return {"max_open": self.max_open}

    def __setstate__(self, state):
        self.__init__(state["max_open"])

    @property
    def _open(self) -> OrderedDict[str, object]:
        """This process's open files (a forked worker starts with none: the parent's are not
        its own to use or close, :mod:`evstream.utils.process_local`)."""
        files = self._files.get()
        if files is None:
            files = OrderedDict()
            self._files.set(files)
        return files

    def _handle(self, path: str, opener):
        open_files = self._open
        handle = open_files.get(path)
        if handle is None:
            handle = opener(path)
            self.stats["opens"] += 1
            open_files[path] = handle
            while len(open_files) > self.max_open:
                _, old = open_files.popitem(last=False)
                old.close()
        else:
            open_files.move_to_end(path)
        return handle

    def read_events(self, path: str, start: int, duration: int) -> np.ndarray:
        """Events of a ``.dat``/``.raw`` file with ``start <= t < start + duration``."""
        source = self._handle(path, _EventSource)
        if source.next_start == start:
            self.stats["sequential"] += 1
        else:
            self.stats["seeks"] += 1
        return source.read(start, duration)

    def read_rows(self, path: str, row_start: int, row_stop: int, out: np.ndarray,
                  slot: int | None = None) -> int:
        """Reads rows ``[row_start, row_stop)`` of a tensor file's ``data`` into ``out[:n]``, or
        into ``out[:n, slot]`` when ``out`` is a ``[T, N, C, H, W]`` batch; rows past the end
        of the file are left as they are. Returns n."""
        return self.tensor_file(path).read_into(row_start, row_stop, out, slot)

    def tensor_file(self, path: str) -> TensorFile:
        """The open :class:`~evstream.preprocessing.tensor_file.TensorFile` of ``path``."""
        return self._handle(path, TensorFile)

    def close(self) -> None:
        """Closes every file this process opened."""
        for handle in (self._files.pop() or {}).values():
            handle.close()

    def __len__(self) -> int:
        return len(self._open)
