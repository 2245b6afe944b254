"""Prophesee DAT files: ``EventDatReader`` and ``DatWriter``.

Layout (``docs/formats.md`` §1): ASCII header lines ``% key value``; then one byte event type and one
byte event size (absent when there is no header at all: type 0, size 8); then packed 8-byte
little-endian records::

    bytes 0-3  uint32 t (µs)
    bytes 4-7  uint32: bits 0-13 x, bits 14-27 y, bit 28 polarity (bits 29-31 ignored)

Only CD record types are read: 0x00 (Event2d) and 0x0C (EventCD). Timestamps are 32-bit: a
DAT file cannot hold times beyond 2^32 µs (about 71.6 minutes) and the writer refuses them.
Records are chronological; a time that goes backwards raises by default (it usually means a
corrupted or non-DAT file), or is repaired with a running maximum or kept
(``time_order``, :mod:`evstream.io.time_order`).
"""

from __future__ import annotations

import datetime
import os

import numba
import numpy as np

from ..errors import EventArrayError, FileFormatError, MissingFileError, UnsupportedFormatError
from .dtypes import EventCD
from .file_date import file_date
from .header import parse_sensor_side, read_header
from .reader import OutOfBounds, RecordFileReader, prefix_before
from .time_order import RunningMaxIndex, check_time_order, order_time, report_late_events

RECORD_BYTES = 8
CD_TYPES = {0x00: "Event2d", 0x0C: "EventCD"}
MAX_COORDINATE = (1 << 14) - 1
NO_LIMIT = 1 << 16
#: records read and decoded per block (512 KiB of words, which stay in the L2 cache)
READ_RECORDS = 1 << 16


@numba.njit(cache=True, nogil=True)
def _decode_clean_block(words: np.ndarray, out: np.ndarray, width: int, height: int,
                        running: int) -> bool:
    """The fast path of :func:`_decode_records` for a block with nothing to drop or repair:
    when every record lies inside ``width x height`` and the stored times never go below
    ``running`` nor step back, decode all ``len(words) // 2`` records into ``out`` and return
    True; else return False (``out`` may then hold partial results, to be overwritten).

    Both passes are free of branches and loop-carried state, so numba vectorises them: the
    records are read as little-endian uint64 (``t`` in the low half, the data word above)."""
    n = len(words) // 2
    rec = words[:2 * n].view(np.uint64)
    flat = out[:n].reshape(-1)
    low = np.uint64(0xFFFFFFFF)
    late = np.int64(rec[0] & low) < running
    for i in range(1, n):
        late |= (rec[i] & low) < (rec[i - 1] & low)
    if late:
        return False
    outside = False
    w, h = np.uint64(width), np.uint64(height)
    for i in range(n):
        r = rec[i]
        x = (r >> np.uint64(32)) & np.uint64(0x3FFF)
        y = (r >> np.uint64(46)) & np.uint64(0x3FFF)
        outside |= (x >= w) | (y >= h)
        flat[2 * i] = np.int64(x | (y << np.uint64(16)) | (((r >> np.uint64(60)) & np.uint64(1))
                                                         << np.uint64(32)))
        flat[2 * i + 1] = np.int64(r & low)
    return not outside


@numba.njit(cache=True, nogil=True)
def _decode_records(words: np.ndarray, out: np.ndarray, width: int, height: int, running: int,
                    count_from: int, repair: bool, stop_at_late: bool):
    """Decode ``len(words) // 2`` records into ``out``; drop events outside width x height.

    ``out`` is an EventCD buffer viewed as ``int64[N, 2]`` (column 0 ``x | y << 16 | p << 32``,
    column 1 ``t``: two 8-byte stores per event instead of four field stores).
    ``running`` is the running maximum of the stored times before ``words`` (-1 at the start of
    the file); times follow :func:`evstream.io.time_order.order_time` (``repair``: late times
    raised to it), and ``stop_at_late`` stops at the first late record.
    Returns (events written, events dropped among records ``>= count_from``, late records
    among records ``>= count_from``, index of the first late record or -1, running maximum
    after the last record decoded). ``out`` must hold ``len(words) // 2`` events.
    """
    n_records = len(words) // 2
    if n_records and _decode_clean_block(words, out, width, height, running):
        return n_records, 0, 0, -1, np.int64(words[2 * n_records - 2])
    n = 0
    dropped = 0
    late = 0
    first_late = -1
    for i in range(n_records):
        t, running, is_late = order_time(np.int64(words[2 * i]), running, repair)
        if is_late:
            if first_late < 0:
                first_late = i
                if stop_at_late:
                    break
            late += i >= count_from
        data = np.int64(words[2 * i + 1])
        x = data & 0x3FFF
        y = (data >> 14) & 0x3FFF
        if x >= width or y >= height:
            dropped += i >= count_from
            continue
        out[n, 0] = x | (y << 16) | (((data >> 28) & 1) << 32)
        out[n, 1] = t
        n += 1
    return n, dropped, late, first_late, running


def read_dat_layout(path: str) -> tuple[dict[str, str], int, int, int]:
    """Parse a DAT file's header: (header fields, event type, data offset, event count)."""
    if not os.path.isfile(path):
        raise MissingFileError("no such DAT file", path)
    size = os.path.getsize(path)
    if size == 0:
        raise FileFormatError("empty file (0 bytes): not a DAT recording", path)
    with open(path, "rb") as f:
        fields, offset = read_header(f)
        if fields:
            f.seek(offset)
            type_size = f.read(2)
            if len(type_size) < 2:
                raise FileFormatError("header with no event-type/size bytes after it "
                                      "(file cut after the header)", path)
            ev_type, ev_size = type_size[0], type_size[1]
            offset += 2
        else:
            ev_type, ev_size = 0, RECORD_BYTES
    if ev_type not in CD_TYPES:
        raise UnsupportedFormatError(f"event type byte 0x{ev_type:02X} is not a CD event type "
                                     f"(0x00 Event2d or 0x0C EventCD)", path)
    if ev_size != RECORD_BYTES:
        raise FileFormatError(f"event size byte is {ev_size}, CD records are 8 bytes", path)
    data_bytes = size - offset
    if data_bytes % RECORD_BYTES:
        raise FileFormatError(f"{data_bytes} data bytes is not a multiple of the 8-byte record "
                              f"size ({data_bytes % RECORD_BYTES} trailing bytes: truncated file?)",
                              path)
    return fields, ev_type, offset, data_bytes // RECORD_BYTES


def _header_side(fields: dict[str, str], key: str, path: str) -> int | None:
    """``% Height`` / ``% Width`` by the geometry rule of every header (1..MAX_SENSOR_SIDE)."""
    for k, v in fields.items():
        if k.lower() == key:
            return parse_sensor_side(v.split()[0] if v.split() else v, f"'% {k} {v}'", path)
    return None


class EventDatReader(RecordFileReader):
    """Sequential and random-access reader of a DAT file (see :class:`EventReader`).

    Args:
        path: the ``.dat`` file.
        out_of_bounds: events outside the header's Width x Height (when the header has them):
            ``"warn"`` drops them with one warning, ``"raise"`` raises, ``"keep"`` keeps them.
        time_order: a record whose time is earlier than an earlier record's
            (:mod:`evstream.io.time_order`): ``"raise"`` (default) raises
            :class:`~evstream.errors.FileFormatError`; ``"repair"`` raises its time to the
            running maximum (RVT's rule; events keep their position); ``"keep"`` reports the
            stored time. Both count such records in ``time_repaired_count`` and warn once.

    With ``"repair"``, seeks are exact on the repaired times; a seek (and ``duration_s``) reads
    the times before its target once per reader (then kept as one running maximum per block
    of :data:`~evstream.io.time_order.TIME_BLOCK` records). With ``"keep"``, ``seek_time``
    bisects the stored times (exact where they are sorted, approximate around a backward
    step; every event is still returned once, in file order). With ``"raise"``, seeks read
    no more than the records they land on.
    """

    format_name = "DAT"

    def __init__(self, path: str | os.PathLike, out_of_bounds: OutOfBounds = "warn",
                 buffer_events: int = 1 << 19, time_order: str = "raise"):
        path = os.fspath(path)
        self.time_order = check_time_order(time_order, path)
        self.header, self.ev_type, self._data_offset, self._count = read_dat_layout(path)
        self.ev_size = RECORD_BYTES
        self._height = _header_side(self.header, "height", path)
        self._width = _header_side(self.header, "width", path)
        self._file = open(path, "rb")
        self._row = 0  # index of the next record the source decodes
        self._running = -1  # running maximum of the stored times of the records before _row
        self._furthest_record = 0  # records before it have had their dropped events counted
        self._words = np.empty(0, dtype="<u4")  # reused read buffer
        #: records whose stored time is earlier than an earlier record's (repaired or kept),
        #: in the part of the file decoded so far (counted once)
        self.time_repaired_count = 0
        self._times = RunningMaxIndex(self._count, self._stored_times)
        super().__init__(path, buffer_events, out_of_bounds)
        self.done = self._count == 0

    # source hooks
    def _decode_into(self, out: np.ndarray) -> int:
        return self._decode_until(out, None)[0]

    def _decode_until(self, out: np.ndarray, t_end: int | None) -> tuple[int, bool]:
        """Decode the next records into ``out``; with ``t_end``, stop before the first event
        with ``t >= t_end`` when it lies in a block decoded one event per record in time order
        (every block of a clean recording: then it is the first such event in file order), so
        that the records after it stay in the file; a block with dropped or late records is
        decoded whole (the reader cuts it). Returns ``(events, whether it stopped at t_end)``."""
        n_records = min(len(out), self._count - self._row)
        if n_records <= 0:
            return 0, False
        block = min(n_records, READ_RECORDS)
        if len(self._words) < 2 * block:
            self._words = np.empty(2 * block, dtype="<u4")
        ev = out.view(np.int64).reshape(-1, 2)   # the reader's buffers are contiguous
        check = self.out_of_bounds != "keep" and self._width is not None and self._height is not None
        width, height = (self._width, self._height) if check else (NO_LIMIT, NO_LIMIT)
        repair, stop = self.time_order == "repair", self.time_order == "raise"
        running = self._running
        self._file.seek(self._data_offset + self._row * RECORD_BYTES)
        n = dropped = late = done = 0
        at_t_end = False
        while done < n_records:              # blocks of READ_RECORDS: the words stay in cache
            k = min(block, n_records - done)
            words = self._words[:2 * k]
            got = self._file.readinto(words)
            if got != words.nbytes:
                raise FileFormatError(f"file shrank while reading: expected {words.nbytes} bytes "
                                      f"at record {self._row + done}, got {got}", self.path)
            running_before = running
            m, d, lt, first_late, running = _decode_records(
                words, ev[n:], width, height, running, self._furthest_record - self._row - done,
                repair, stop)
            if first_late >= 0 and stop:
                report_late_events(self, 0, self._row + done + first_late,
                                   int(words[2 * first_late]), "record",
                                   ": DAT records are chronological, so the file is corrupted "
                                   "or not a DAT file")
            if t_end is not None and m == k and first_late < 0:
                cut = prefix_before(out["t"], n, n + m, t_end) - n
                if cut < m:                  # records cut..k stay in the file
                    running = np.int64(words[2 * cut - 2]) if cut else running_before
                    n += cut
                    done += cut
                    at_t_end = True
                    break
            n += m
            dropped += d
            late += lt
            done += k
        self._row += done
        self._running = int(running)
        self._furthest_record = max(self._furthest_record, self._row)
        self._report_out_of_bounds(dropped, self._height, self._width)
        report_late_events(self, late, -1, 0)
        return n, at_t_end

    def _stored_times(self, lo: int, hi: int) -> np.ndarray:
        """Stored times of records ``[lo, hi)``, read directly from the file."""
        words = np.empty(2 * (hi - lo), dtype="<u4")
        self._file.seek(self._data_offset + lo * RECORD_BYTES)
        if self._file.readinto(words) != words.nbytes:
            raise FileFormatError(f"file shrank while reading records {lo}..{hi}", self.path)
        return words[0::2]

    def _time_at(self, i: int) -> int:
        """Timestamp of record ``i`` as this reader reports it (repaired per ``time_order``)."""
        if self.time_order == "repair":
            return self._times.max_before(i + 1)
        self._file.seek(self._data_offset + i * RECORD_BYTES)
        return int.from_bytes(self._file.read(4), "little")

    def _running_before(self, row: int) -> int:
        """Running maximum of the stored times before record ``row`` (-1 for row 0)."""
        if row <= 0:
            return -1
        if self.time_order == "raise":        # a valid file is chronological up to here
            return self._time_at(row - 1)
        return self._times.max_before(row)

    def _rewind(self) -> None:
        self._row = 0
        self._running = -1

    def _seek_hint_event(self, n: int) -> int:
        self._row = min(n, self._count)
        self._running = self._running_before(self._row)
        return self._row

    def _seek_hint_time(self, t: int) -> int:
        if self.time_order == "repair":
            self._row = self._times.first_at_or_after(t)
        else:
            super()._seek_hint_time(t)
        self._running = self._running_before(self._row)
        return self._row

    # metavision_core API
    def get_size(self) -> list[int] | None:
        """``[height, width]`` from the header, or None when the header lacks them."""
        if self._height is None or self._width is None:
            return None
        return [self._height, self._width]

    def close(self) -> None:
        """Close the file handle (also done when the reader is garbage-collected)."""
        self._file.close()


class DatWriter:
    """Write CD events to a DAT file (type 0x00 Event2d records, 8 bytes each).

    Args:
        path: output file (overwritten).
        height, width: sensor geometry written in the header; events must lie inside it.
        date: the header's ``% Date`` (default now, or ``$SOURCE_DATE_EPOCH``: see
            :mod:`evstream.io.file_date`).
    """

    def __init__(self, path: str | os.PathLike, height: int = 240, width: int = 320,
                 date: datetime.datetime | None = None):
        self.path = os.fspath(path)
        if not (0 < height <= MAX_COORDINATE + 1 and 0 < width <= MAX_COORDINATE + 1):
            raise EventArrayError(f"DAT geometry must be within 1..{MAX_COORDINATE + 1}, got "
                                  f"{width}x{height}", self.path)
        self.height, self.width = int(height), int(width)
        self._last_t = 0
        now = file_date(date)
        header = (f"% Data file containing Event2D events.\n% Version 2\n"
                  f"% Date {now.year}-{now.month}-{now.day} {now.hour}:{now.minute}:{now.second}\n"
                  f"% Height {self.height}\n% Width {self.width}\n")
        self._file = open(self.path, "wb")
        self._file.write(header.encode("ascii") + bytes([0x00, RECORD_BYTES]))

    def write(self, events: np.ndarray) -> None:
        """Append EventCD events (chronological, inside the geometry, t < 2^32 µs)."""
        if self._file is None:
            raise EventArrayError("write() after close()", self.path)
        if not isinstance(events, np.ndarray) or events.dtype != EventCD:
            raise EventArrayError(f"DatWriter.write needs an EventCD array, got "
                                  f"{getattr(events, 'dtype', type(events))}", self.path)
        if len(events) == 0:
            return
        t = events["t"]
        if t[0] < self._last_t or np.any(np.diff(t) < 0):
            raise EventArrayError("events are not in chronological order", self.path)
        if t[-1] >= 1 << 32 or t[0] < 0:
            raise EventArrayError("DAT timestamps must be within [0, 2^32) µs", self.path)
        if events["x"].max() >= self.width or events["y"].max() >= self.height:
            raise EventArrayError(f"event coordinates outside the {self.width}x{self.height} "
                                  f"geometry", self.path)
        records = np.empty((len(events), 2), dtype="<u4")
        records[:, 0] = t
        records[:, 1] = (events["x"].astype(np.uint32) | (events["y"].astype(np.uint32) << 14)
                         | ((events["p"] == 1).astype(np.uint32) << 28))
        self._file.write(records.tobytes())
        self._last_t = int(t[-1])

    def close(self) -> None:
        """Flush and close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "DatWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
