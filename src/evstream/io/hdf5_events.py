"""Prophesee HDF5 event files (``docs/formats.md`` §10): ``HDF5EventsReader`` and content detection.

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
not apply. ``.h5`` is ambiguous (``docs/formats.md`` §11): :func:`hdf5_content` looks inside the file.

The second layout, **event arrays** (eTraM's and RVT's ``.h5``, DSEC's ``events.h5``), is read by
:class:`HDF5EventArraysReader`::

    /events/x, /events/y, /events/p, /events/t   1-D datasets of equal length (any int dtypes)
    /events/height, /events/width                optional scalars: the sensor size (RVT)
    /ms_to_idx or /events/ms_to_idx              optional u8: index of the first event with t >= k ms
    /t_offset or /events/t_offset                optional i8: µs to add to t for the absolute clock (DSEC)

:func:`open_hdf5_reader` picks the reader from the content. A dataset compressed with a filter
whose plugin is missing (e.g. Blosc, HDF5 filter 32001, shipped by ``hdf5plugin``) raises
:class:`~evstream.errors.UnsupportedFormatError` naming the filter and the package to install.
"""

from __future__ import annotations

import bisect
import os

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc/LZ4/Zstd filters with HDF5)
import numba
import numpy as np

from ..errors import FileFormatError, GeometryError, MissingFileError, UnsupportedFormatError
from .dtypes import EventCD, EventExtTrigger
from .reader import EventReader, OutOfBounds, RecordFileReader
from .time_order import TIME_ORDER_POLICIES  # noqa: F401  (re-exported: the reader's policies)
from .time_order import (NO_TIME, TIME_BLOCK, RunningMaxIndex, check_time_order, order_time,
                         report_late_events)

#: File name extensions of HDF5 files (event files and tensor files alike, told apart by
#: :func:`hdf5_content`).
HDF5_EXTENSIONS = (".h5", ".hdf5")
ECF_FILTER_ID = 0x8ECF
INDEX_PERIOD_US = 2000
ECF_HELP = ("its CD events are compressed with Prophesee's ECF codec (HDF5 filter 0x8ECF), whose "
            "plugin is not installed: build prophesee-ai/hdf5_ecf and set HDF5_PLUGIN_PATH to its "
            "folder (or convert the file to RAW/DAT with the Prophesee tools)")


#: The first 8 bytes of every HDF5 file (a file may also carry a user block before them).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: Filters HDF5 itself provides (deflate, shuffle, fletcher32, szip, nbit, scale-offset).
BUILTIN_FILTERS = {1, 2, 3, 4, 5, 6}

#: Plugin filters the field's files use: id -> (name, how to get it).
KNOWN_PLUGIN_FILTERS = {
    32001: ("Blosc", "pip install hdf5plugin (evstream imports it, which registers the filter)"),
    32026: ("Blosc2", "pip install hdf5plugin"),
    32004: ("LZ4", "pip install hdf5plugin"),
    32008: ("Bitshuffle", "pip install hdf5plugin"),
    32015: ("Zstandard", "pip install hdf5plugin"),
    307: ("BZip2", "pip install hdf5plugin"),
    ECF_FILTER_ID: ("Prophesee ECF", "build prophesee-ai/hdf5_ecf and set HDF5_PLUGIN_PATH to its "
                                    "folder (or convert the file to RAW/DAT with the Prophesee tools)"),
}


def is_hdf5_file(path: str | os.PathLike) -> bool:
    """True when the file starts with the HDF5 signature (content, not extension)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


def _event_arrays_group(f: h5py.File):
    """The ``events`` group of the event-arrays layout, or None."""
    group = f.get("events")
    if isinstance(group, h5py.Group) and all(isinstance(group.get(k), h5py.Dataset)
                                             for k in "xypt"):
        return group
    return None


def hdf5_content(path: str | os.PathLike) -> str:
    """What an HDF5 file holds, by content: ``"events"`` (``/CD/events``), ``"event_arrays"``
    (``/events/{x,y,p,t}``: eTraM, RVT, DSEC), ``"tensors"`` (``/data``, a precomputed tensor
    file), ``"legacy_events"`` (``event_buffers``, SDK 4.2.1 compressed events) or
    ``"unknown"``. Raises for a missing or non-HDF5 file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError("no such HDF5 file", path)
    try:
        with h5py.File(path, "r") as f:
            if "CD" in f and isinstance(f["CD"], h5py.Group) and "events" in f["CD"]:
                return "events"
            if _event_arrays_group(f) is not None:
                return "event_arrays"
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


def check_filters_available(dataset: h5py.Dataset, path: str) -> None:
    """Raise :class:`~evstream.errors.UnsupportedFormatError` naming the filter and its plugin
    when ``dataset`` is compressed with a filter HDF5 cannot load here."""
    for filter_id in dataset_filters(dataset):
        if filter_id in BUILTIN_FILTERS or h5py.h5z.filter_avail(filter_id):
            continue
        if filter_id == ECF_FILTER_ID:
            raise UnsupportedFormatError(ECF_HELP, path)
        name, fix = KNOWN_PLUGIN_FILTERS.get(filter_id, (f"HDF5 filter {filter_id}",
                                                         "install the plugin that provides it "
                                                         "and set HDF5_PLUGIN_PATH"))
        raise UnsupportedFormatError(f"{dataset.name} is compressed with {name} (HDF5 filter "
                                     f"{filter_id}), whose plugin is not available: {fix}", path)


def drop_out_of_sensor(reader: EventReader, chunk: np.ndarray, start_row: int,
                       furthest_row: int, height: int | None, width: int | None) -> int:
    """Drop (in place, keeping order) the events of ``chunk`` outside ``width x height`` and
    report them to ``reader`` (warn / raise per its ``out_of_bounds`` policy). ``chunk`` holds
    the file's rows from ``start_row``; rows before ``furthest_row`` were reported by an earlier
    pass and are not counted again. Returns how many events are left at the front of ``chunk``."""
    if reader.out_of_bounds == "keep" or height is None:
        return len(chunk)
    bad = (chunk["x"] >= width) | (chunk["y"] >= height)
    if not bad.any():
        return len(chunk)
    new = int(bad[max(furthest_row - start_row, 0):].sum())
    kept = chunk[~bad]
    chunk[:len(kept)] = kept
    reader._report_out_of_bounds(new, height, width)
    return len(kept)


def _read_rows(dataset: h5py.Dataset, start: int, stop: int, out: np.ndarray, path: str) -> None:
    try:
        dataset.read_direct(out, source_sel=np.s_[start:stop], dest_sel=np.s_[0:stop - start])
    except (OSError, ValueError, TypeError) as exc:
        raise FileFormatError(f"cannot read events {start}..{stop} of {dataset.name}: {exc}",
                              path) from None


class HDF5EventsReader(RecordFileReader):
    """Reader of a Prophesee HDF5 event file (see :class:`EventReader` for the cursor).

    Args:
        path: the ``.hdf5`` / ``.h5`` event file.
        out_of_bounds: events outside the ``geometry`` attribute: ``"warn"`` drops them with one
            warning, ``"raise"`` raises, ``"keep"`` keeps them.
        height, width: geometry when the file has no ``geometry`` attribute.
    """

    format_name = "HDF5 (Prophesee /CD/events)"

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
        if kind == "event_arrays":
            raise FileFormatError("this HDF5 file holds /events/{x,y,p,t} arrays, not /CD/events: "
                                  "read it with HDF5EventArraysReader (open_reader picks it)", path)
        if kind != "events":
            raise FileFormatError("HDF5 file without /CD/events or /events/{x,y,p,t}: not an "
                                  "event file", path)
        self._file = h5py.File(path, "r")
        self._events = self._file["CD/events"]
        names = self._events.dtype.names or ()
        if self._events.ndim != 1 or not {"x", "y", "p", "t"} <= set(names):
            self._file.close()
            raise FileFormatError(f"/CD/events must be a 1-D compound dataset with x, y, p, t; "
                                  f"got shape {self._events.shape} dtype {self._events.dtype}", path)
        try:
            check_filters_available(self._events, path)
        except UnsupportedFormatError:
            self._file.close()
            raise
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
        n = drop_out_of_sensor(self, out[:n], start, self._furthest_row, self._height, self._width)
        self._furthest_row = max(self._furthest_row, self._row)
        return n

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

    # metavision_core API
    def get_size(self) -> tuple[int, int] | None:
        """``(height, width)`` from the ``geometry`` attribute (or the given size), else None."""
        return None if self._height is None else (self._height, self._width)

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



#: (height, width) of DSEC's event cameras (Prophesee Gen3.1), whose ``events.h5`` stores no
#: size: used for a file with root-level ``t_offset`` and ``ms_to_idx`` and no size given.
DSEC_SENSOR = (480, 640)


@numba.njit(cache=True, nogil=True)
def _merge_columns(ox, oy, op, ot, x, y, p, t, shift, running, repair, first_new, check,
                   width, height):
    """One pass over a block of event arrays: write the events into the output fields, apply
    the time order (running maximum ``running`` carried in; times below it are raised when
    ``repair``) and drop events outside ``width x height`` when ``check``. Events from index
    ``first_new`` on are counted (earlier ones were counted by an earlier pass). Returns
    (events written, late events counted, out-of-sensor events counted, index of the first
    late event or -1, running maximum after the block)."""
    k = 0
    late = 0
    outside = 0
    first_late = -1
    for i in range(len(t)):
        ti, running, is_late = order_time(np.int64(t[i]) + shift, running, repair)
        if is_late:
            if first_late < 0:
                first_late = i
            if i >= first_new:
                late += 1
        xi = x[i]
        yi = y[i]
        if check and (xi >= width or yi >= height):
            if i >= first_new:
                outside += 1
            continue
        pi = p[i]
        ox[k] = xi
        oy[k] = yi
        op[k] = pi if pi > 0 else 0
        ot[k] = ti
        k += 1
    return k, late, outside, first_late, running


def _scalar(f: h5py.File, group: h5py.Group, name: str):
    """A scalar dataset ``name`` from ``group`` or the file root, as a Python int, or None."""
    for where in (group, f):
        item = where.get(name)
        if isinstance(item, h5py.Dataset):
            try:
                value = item[()]
            except (OSError, ValueError):
                return None
            return int(np.asarray(value).reshape(-1)[0]) if np.size(value) else None
    return None


class HDF5EventArraysReader(RecordFileReader):
    """Reader of HDF5 event files with an ``events`` group of ``x``, ``y``, ``p``, ``t`` arrays
    (eTraM, RVT, DSEC-Detection; layout in the module docstring). Cursor: :class:`EventReader`.

    Args:
        path: the ``.h5`` file.
        out_of_bounds: events outside the sensor (``events/height``/``width``, else the given
            ``height``/``width``): ``"warn"`` drops them with one warning and counts them in
            ``out_of_bounds_count`` (as the RAW readers do), ``"raise"`` raises, ``"keep"``
            keeps them.
        height, width: sensor size when the file stores none (a contradicting size raises
            :class:`~evstream.errors.GeometryError`). A DSEC file (root ``t_offset`` and
            ``ms_to_idx``) without either is 640x480 (:data:`DSEC_SENSOR`); any other file
            without a size has none (no out-of-sensor check).
        time_order: see :mod:`evstream.io.time_order` (``"repair"``, the default: RVT's rule for
            the 1Mpx h5 files, ``"keep"`` or ``"raise"``). The running maximum is over every
            stored event, before out-of-sensor events are dropped.
        add_t_offset: report ``t + t_offset`` (DSEC's absolute clock) instead of the stored
            ``t``; ``t_offset`` (0 when the file has none) is an attribute either way.

    Times are int64 µs. Polarities ``p <= 0`` are OFF (0), as RVT's reader clips them.
    With ``time_order="repair"``, a seek or :meth:`duration_s` needs the running maximum up to
    its target: the ``t`` blocks before it are read once per reader (then kept as one maximum
    per block of :data:`TIME_BLOCK` events), and seeks are exact on the repaired times. With
    ``"keep"``, seeks bisect the stored times: exact where they are sorted, approximate around
    a backward step (every event is still returned once, in file order).
    """

    format_name = "HDF5 (events/x, y, p, t)"

    def __init__(self, path: str | os.PathLike, out_of_bounds: OutOfBounds = "warn",
                 buffer_events: int = 1 << 19, height: int | None = None,
                 width: int | None = None, time_order: str = "repair",
                 add_t_offset: bool = False):
        path = os.fspath(path)
        check_time_order(time_order, path)
        if hdf5_content(path) != "event_arrays":
            raise FileFormatError("HDF5 file without an events group of x, y, p, t datasets", path)
        self._file = h5py.File(path, "r")
        try:
            group = _event_arrays_group(self._file)
            self._columns = {k: group[k] for k in "xypt"}
            lengths = {k: d.shape for k, d in self._columns.items()}
            if any(len(shape) != 1 for shape in lengths.values()) or \
                    len({shape[0] for shape in lengths.values()}) != 1:
                raise FileFormatError(f"events/x, y, p, t must be 1-D of one length, got "
                                      f"{lengths}", path)
            for name, dataset in self._columns.items():
                if dataset.dtype.kind not in "iub":
                    raise FileFormatError(f"events/{name} must hold integers, not "
                                          f"{dataset.dtype}", path)
                check_filters_available(dataset, path)
            self._count = int(self._columns["t"].shape[0])
            self.t_offset = _scalar(self._file, group, "t_offset") or 0
            ms_to_idx = group.get("ms_to_idx", self._file.get("ms_to_idx"))
            self._ms_to_idx = ms_to_idx if isinstance(ms_to_idx, h5py.Dataset) and \
                ms_to_idx.ndim == 1 and len(ms_to_idx) else None
            self._height, self._width = self._geometry(group, height, width, path)
        except BaseException:
            self._file.close()
            raise
        self.time_order = time_order
        self._shift = int(self.t_offset) if add_t_offset else 0
        #: events whose stored time is earlier than an earlier event's (repaired or not),
        #: in the part of the file read so far (counted once)
        self.time_repaired_count = 0
        self._t_cache: dict[int, np.ndarray] = {}
        self._times = RunningMaxIndex(self._count, self._stored_times, TIME_BLOCK)
        self._row = 0
        self._furthest_row = 0
        self._running_max = None
        super().__init__(path, buffer_events, out_of_bounds)
        self.done = self._count == 0

    def _geometry(self, group, height, width, path):
        stored_h = _scalar(self._file, group, "height")
        stored_w = _scalar(self._file, group, "width")
        if stored_h is not None and stored_w is not None:
            if height is not None and width is not None and (int(height), int(width)) != \
                    (stored_h, stored_w):
                raise GeometryError(f"the file stores a {stored_w}x{stored_h} sensor, "
                                    f"{int(width)}x{int(height)} was given", path)
            return stored_h, stored_w
        if height is not None and width is not None:
            return int(height), int(width)
        if isinstance(self._file.get("t_offset"), h5py.Dataset) and \
                isinstance(self._file.get("ms_to_idx"), h5py.Dataset):
            return DSEC_SENSOR           # DSEC's events.h5 stores no size
        return None, None

    # ----------------------------------------------------------------- times
    def _t_block(self, block: int) -> np.ndarray:
        """Stored times (plus the shift) of one block, int64, cached."""
        times = self._t_cache.get(block)
        if times is None:
            if len(self._t_cache) > 64:
                self._t_cache.clear()
            lo = block * TIME_BLOCK
            times = self._read_column("t", lo, min(lo + TIME_BLOCK, self._count)).astype(np.int64)
            times += self._shift
            self._t_cache[block] = times
        return times

    def _stored_times(self, lo: int, hi: int) -> np.ndarray:
        """Stored times (plus the shift) of rows ``[lo, hi)`` within one cache block."""
        block = lo // TIME_BLOCK
        return self._t_block(block)[lo - block * TIME_BLOCK:hi - block * TIME_BLOCK]

    def _max_before(self, row: int) -> int | None:
        """Largest stored time of the rows ``[0, row)`` (None for row 0)."""
        return None if row <= 0 else self._times.max_before(row)

    def _time_at(self, i: int) -> int:
        """Time of event ``i`` as this reader reports it (repaired per ``time_order``)."""
        if self.time_order == "repair":
            return self._times.max_before(i + 1)
        return int(self._t_block(i // TIME_BLOCK)[i % TIME_BLOCK])

    def _read_column(self, name: str, start: int, stop: int) -> np.ndarray:
        try:
            return self._columns[name][start:stop]
        except (OSError, ValueError, TypeError) as exc:
            raise FileFormatError(f"cannot read events/{name}[{start}:{stop}]: {exc}",
                                  self.path) from None

    # ----------------------------------------------------------------- source hooks
    def _decode_into(self, out: np.ndarray) -> int:
        n = min(len(out), self._count - self._row)
        if n <= 0:
            return 0
        start = self._row
        columns = [self._read_column(name, start, start + n) for name in "xypt"]
        check = self.out_of_bounds != "keep" and self._height is not None
        running = NO_TIME if self._running_max is None else self._running_max
        kept, late, outside, first_late, running = _merge_columns(
            out["x"], out["y"], out["p"], out["t"], *columns, self._shift, running,
            self.time_order == "repair", max(self._furthest_row - start, 0), check,
            self._width or 0, self._height or 0)
        if first_late >= 0 and self.time_order == "raise":
            report_late_events(self, 0, start + first_late,
                               int(columns[3][first_late]) + self._shift)
        report_late_events(self, late, -1, 0)
        self._running_max = int(running)
        self._row += n
        self._furthest_row = max(self._furthest_row, self._row)
        self._report_out_of_bounds(outside, self._height, self._width)
        return kept

    def _rewind(self) -> None:
        self._row = 0
        self._running_max = None

    def _seek_hint_event(self, n: int) -> int:
        self._row = min(n, self._count)
        self._running_max = self._max_before(self._row)
        return self._row

    def _seek_hint_time(self, t: int) -> int:
        if self.time_order == "repair":
            self._row = self._times.first_at_or_after(t)
        else:
            lo = 0
            guess = self._ms_index_guess(t)
            if guess is not None and 0 < guess <= self._count and self._time_at(guess - 1) < t:
                lo = guess      # every event before the guess is earlier than t
            self._row = bisect.bisect_left(range(self._count), t, lo=lo, key=self._time_at)
        self._running_max = self._max_before(self._row)
        return self._row

    def _ms_index_guess(self, t: int) -> int | None:
        """``ms_to_idx`` entry of the millisecond of ``t`` (checked by the caller)."""
        if self._ms_to_idx is None:
            return None
        k = min(max((t - self._shift) // 1000, 0), len(self._ms_to_idx) - 1)
        try:
            return int(self._ms_to_idx[k])
        except (OSError, ValueError):
            return None

    # ----------------------------------------------------------------- metavision_core API
    def get_size(self) -> tuple[int, int] | None:
        """``(height, width)`` stored in the file (or given), else None."""
        return None if self._height is None else (self._height, self._width)

    @property
    def height(self) -> int | None:
        return self._height

    @property
    def width(self) -> int | None:
        return self._width

    def close(self) -> None:
        """Close the HDF5 file."""
        if self._file is not None:
            self._file.close()
            self._file = None



def open_hdf5_reader(path: str | os.PathLike, **reader_kwargs) -> EventReader:
    """The reader of an HDF5 event file, chosen by its content: :class:`HDF5EventsReader` for
    ``/CD/events``, :class:`HDF5EventArraysReader` for ``/events/{x,y,p,t}``. A tensor file or
    an unknown layout raises :class:`~evstream.errors.FileFormatError`."""
    if hdf5_content(path) == "event_arrays":
        return HDF5EventArraysReader(path, **reader_kwargs)
    return HDF5EventsReader(path, **reader_kwargs)     # checks the content (/CD/events)


def read_t_offset(path: str | os.PathLike) -> int:
    """``t_offset`` (µs) of an event-arrays HDF5 file (``/t_offset`` or ``/events/t_offset``),
    0 when it has none."""
    path = os.fspath(path)
    if hdf5_content(path) != "event_arrays":
        return 0
    with h5py.File(path, "r") as f:
        return _scalar(f, _event_arrays_group(f), "t_offset") or 0
