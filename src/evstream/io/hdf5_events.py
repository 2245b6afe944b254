"""Prophesee HDF5 event files (``formats.md`` §10): ``HDF5EventsReader`` and content detection.

Layout written by the SDK's C++ HDF5 event writer::

    /CD/events            compound EventCD (x u16, y u16, p i16, t i64), chunks of 16384 events
    /CD/indexes           compound (id u64, ts i64), one entry every 2000 µs, attr offset = -t0
    /EXT_TRIGGER/events   compound (p i16, t i64, id i16)
    root attrs            version, format, geometry "WxH", camera metadata (strings)

The SDK compresses the CD chunks with its ECF codec (HDF5 filter 0x8ECF), whose plugin is not part
of h5py or hdf5plugin: such a file raises :class:`~evstream.errors.UnsupportedFormatError` naming the
file and the fix (install prophesee-ai/hdf5_ecf and point ``HDF5_PLUGIN_PATH`` at it). Files
stored uncompressed, with gzip or with any hdf5plugin codec read normally.

Times are read as stored (the C++ writer stores them already shifted); ``do_time_shifting`` does
not apply. ``.h5`` is ambiguous (reference quirk 26): :func:`hdf5_content` looks inside the file.
"""

from __future__ import annotations

import bisect
import os

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc/LZ4/Zstd filters with HDF5)
import numpy as np

from ..errors import FileFormatError, MissingFileError, UnsupportedFormatError
from .dtypes import EventCD, EventExtTrigger
from .reader import EventReader, OutOfBounds

ECF_FILTER_ID = 0x8ECF
INDEX_PERIOD_US = 2000
ECF_HELP = ("its CD events are compressed with Prophesee's ECF codec (HDF5 filter 0x8ECF), whose "
            "plugin is not installed: build prophesee-ai/hdf5_ecf and set HDF5_PLUGIN_PATH to its "
            "folder (or convert the file to RAW/DAT with the Prophesee tools)")


def hdf5_content(path: str | os.PathLike) -> str:
    """What an HDF5 file holds, by content: ``"events"`` (``/CD/events``), ``"tensors"``
    (``/data``, a precomputed tensor file), ``"legacy_events"`` (``event_buffers``, SDK 4.2.1
    compressed events) or ``"unknown"``. Raises for a missing or non-HDF5 file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError("no such HDF5 file", path)
    try:
        with h5py.File(path, "r") as f:
            if "CD" in f and isinstance(f["CD"], h5py.Group) and "events" in f["CD"]:
                return "events"
            if "data" in f and isinstance(f["data"], h5py.Dataset):
                return "tensors"
            if "event_buffers" in f:
                return "legacy_events"
            return "unknown"
    except OSError as exc:
        raise FileFormatError(f"not a readable HDF5 file (truncated or corrupt?): {exc}",
                              path) from None


def dataset_filters(dataset: h5py.Dataset) -> list[int]:
    """HDF5 filter ids in a dataset's pipeline."""
    plist = dataset.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def _read_rows(dataset: h5py.Dataset, start: int, stop: int, out: np.ndarray, path: str) -> None:
    try:
        dataset.read_direct(out, source_sel=np.s_[start:stop], dest_sel=np.s_[0:stop - start])
    except (OSError, ValueError, TypeError) as exc:
        raise FileFormatError(f"cannot read events {start}..{stop} of {dataset.name}: {exc}",
                              path) from None


class HDF5EventsReader(EventReader):
    """Reader of a Prophesee HDF5 event file (see :class:`EventReader` for the cursor).

    Args:
        path: the ``.hdf5`` / ``.h5`` event file.
        out_of_bounds: events outside the ``geometry`` attribute: ``"warn"`` drops them with one
            warning, ``"raise"`` raises, ``"keep"`` keeps them.
        height, width: geometry when the file has no ``geometry`` attribute.
    """

    def __init__(self, path: str | os.PathLike, out_of_bounds: OutOfBounds = "warn",
                 buffer_events: int = 1 << 19, height: int | None = None,
                 width: int | None = None):
        path = os.fspath(path)
        kind = hdf5_content(path)
        if kind == "tensors":
            raise FileFormatError("this is an HDF5 tensor file (precomputed tensors in /data), not "
                                  "an event file: read it with evstream.data.HDF5Iterator", path)
        if kind == "legacy_events":
            raise UnsupportedFormatError("legacy compressed-event .h5 (SDK 4.2.1 H5EventsWriter, "
                                         "'event_buffers') is not supported", path)
        if kind != "events":
            raise FileFormatError("HDF5 file without /CD/events: not a Prophesee event file", path)
        self._file = h5py.File(path, "r")
        self._events = self._file["CD/events"]
        names = self._events.dtype.names or ()
        if self._events.ndim != 1 or not {"x", "y", "p", "t"} <= set(names):
            self._file.close()
            raise FileFormatError(f"/CD/events must be a 1-D compound dataset with x, y, p, t; "
                                  f"got shape {self._events.shape} dtype {self._events.dtype}", path)
        if ECF_FILTER_ID in dataset_filters(self._events) and \
                not h5py.h5z.filter_avail(ECF_FILTER_ID):
            self._file.close()
            raise UnsupportedFormatError(ECF_HELP, path)
        self._count = len(self._events)
        self._height, self._width = self._geometry(height, width)
        self._row = 0
        self._furthest_row = 0
        self._t_cache: dict[int, np.ndarray] = {}
        super().__init__(path, buffer_events, out_of_bounds)
        self.done = self._count == 0

    def _geometry(self, height, width):
        attrs = self._file.attrs
        geometry = attrs.get("geometry")
        if isinstance(geometry, bytes):
            geometry = geometry.decode("utf-8", "replace")
        if isinstance(geometry, str) and "x" in geometry:
            try:
                w, h = (int(v) for v in geometry.lower().split("x")[:2])
                return h, w
            except ValueError:
                pass
        if "height" in attrs and "width" in attrs:
            return int(attrs["height"]), int(attrs["width"])
        return (None, None) if height is None or width is None else (int(height), int(width))

    # source hooks
    def _decode_into(self, out: np.ndarray) -> int:
        n = min(len(out), self._count - self._row)
        if n <= 0:
            return 0
        _read_rows(self._events, self._row, self._row + n, out, self.path)
        start = self._row
        self._row += n
        if self.out_of_bounds != "keep" and self._height is not None:
            chunk = out[:n]
            bad = (chunk["x"] >= self._width) | (chunk["y"] >= self._height)
            if bad.any():
                # count only events beyond what an earlier pass already reported
                new = int(bad[max(self._furthest_row - start, 0):].sum())
                kept = chunk[~bad]
                out[:len(kept)] = kept
                n = len(kept)
                self._report_out_of_bounds(new, self._height, self._width)
        self._furthest_row = max(self._furthest_row, self._row)
        return n

    def _rewind(self) -> None:
        self._row = 0

    def _size_hint(self) -> int:
        return self._count

    def _time_at(self, i: int) -> int:
        block = i // 16384
        times = self._t_cache.get(block)
        if times is None:
            if len(self._t_cache) > 64:
                self._t_cache.clear()
            lo = block * 16384
            buf = np.empty(min(16384, self._count - lo), dtype=EventCD)
            _read_rows(self._events, lo, lo + len(buf), buf, self.path)
            times = self._t_cache[block] = buf["t"].copy()
        return int(times[i - block * 16384])

    def _seek_hint_event(self, n: int) -> int:
        self._row = min(n, self._count)
        return self._row

    def _seek_hint_time(self, t: int) -> int:
        lo, hi = 0, self._count
        guess = self._index_guess(t)
        if guess is not None and 0 < guess <= self._count and self._time_at(guess - 1) < t:
            lo = guess      # every event before the guess is earlier than t: search after it
        self._row = bisect.bisect_left(range(hi), t, lo=lo, key=self._time_at)
        return self._row

    def _index_guess(self, t: int) -> int | None:
        """Event index from ``/CD/indexes`` (checked by the caller, never trusted blindly)."""
        indexes = self._file.get("CD/indexes")
        if not isinstance(indexes, h5py.Dataset) or not len(indexes) or \
                "id" not in (indexes.dtype.names or ()):
            return None
        offset = int(indexes.attrs.get("offset", 0))
        k = min(max((t + offset) // INDEX_PERIOD_US, 0), len(indexes) - 1)
        try:
            return int(indexes[k]["id"])
        except (OSError, ValueError):
            return None

    def _time_before_cursor(self) -> int:
        return self._time_at(self._row - 1) if self._row > 0 else 0

    def _last_time_of_file(self) -> int:
        return self._time_at(self._count - 1) if self._count else 0

    # metavision_core API
    def get_size(self) -> tuple[int, int] | None:
        """``(height, width)`` from the ``geometry`` attribute (or the given size), else None."""
        return None if self._height is None else (self._height, self._width)

    def event_count(self) -> int:
        return self._count

    @property
    def duration_s(self) -> float:
        """Span between the first and last event, in seconds."""
        if self._count == 0:
            return 0.0
        return (self._last_time_of_file() - self._time_at(0)) * 1e-6

    def get_ext_trigger_events(self) -> np.ndarray:
        """Every external trigger of the file (``/EXT_TRIGGER/events``), as EventExtTrigger."""
        dataset = self._file.get("EXT_TRIGGER/events")
        if not isinstance(dataset, h5py.Dataset) or not len(dataset):
            return np.empty(0, dtype=EventExtTrigger)
        out = np.empty(len(dataset), dtype=EventExtTrigger)
        _read_rows(dataset, 0, len(dataset), out, self.path)
        return out

    def close(self) -> None:
        """Close the HDF5 file."""
        if self._file is not None:
            self._file.close()
            self._file = None
