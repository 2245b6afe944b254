"""Events of one recording as RVT's preprocessing sees them, read in bounded blocks.

RVT reads ``x, y, p, t`` in file order and makes ``t`` non-decreasing by a running maximum that
starts at 0 (``r_k = max(t_k, r_{k-1})``): events are never reordered or dropped, an event only
has its time raised to the largest earlier time; ``p`` is clipped at 0 from below (a -1 polarity
becomes 0) and must then be 0 or 1. This module reproduces that on:

* DAT files: decoded here, record by record in file order (8-byte records, ``x = w & 0x3FFF``,
  ``y = (w >> 14) & 0x3FFF``, ``p = (w >> 28) & 1``) with the header parsed by
  :func:`evstream.io.dat.read_dat_layout`. evstream's ``EventDatReader`` rejects a DAT whose time
  goes backwards; RVT's rule keeps it (repaired), so it is followed here;
* RVT's HDF5 event files (group ``events`` with 1-D datasets ``x, y, p, t``);
* anything :func:`evstream.io.open_reader` opens (RAW, NPY, Prophesee HDF5 ``/CD/events``); RAW
  times are shifted to the first TIME_HIGH word, as everywhere in evstream.

:class:`RepairedEvents` reads any range of events by index with the repaired times, using a
sparse index of the running maximum (built on first use by one pass over the times) to start
the repair anywhere; sequential reading needs no index.
"""

from __future__ import annotations

import os

import h5py
import numba
import numpy as np

from evstream.errors import EventArrayError, FileFormatError, MissingFileError
from evstream.io import open_reader
from evstream.io.dat import read_dat_layout

#: Events per block of the sparse running-maximum index (and of sequential reads).
INDEX_BLOCK = 1 << 16


@numba.njit(cache=True, nogil=True)
def _decode_dat_repaired(words, carry):
    """DAT records ``(n, 2)`` uint32 -> x, y, p and the running-maximum time from ``carry``."""
    n = words.shape[0]
    x = np.empty(n, np.uint16)
    y = np.empty(n, np.uint16)
    p = np.empty(n, np.int16)
    r = np.empty(n, np.int64)
    for i in range(n):
        w = words[i, 1]
        x[i] = w & 0x3FFF
        y[i] = (w >> 14) & 0x3FFF
        p[i] = (w >> 28) & 1
        t = np.int64(words[i, 0])
        if t > carry:
            carry = t
        r[i] = carry
    return x, y, p, r


class _DatRecords:
    """Raw records of a DAT file by index (memory-mapped, decoded on demand)."""

    def __init__(self, path: str):
        fields, _, offset, count = read_dat_layout(path)
        self.count = count
        size = {k.lower(): v.split()[0] for k, v in fields.items() if v.split()}
        try:
            self.geometry = (int(size["height"]), int(size["width"]))
        except (KeyError, ValueError):
            self.geometry = None
        self._words = np.memmap(path, dtype="<u4", mode="r", offset=offset, shape=(count, 2)) \
            if count else np.zeros((0, 2), "<u4")

    #: :meth:`read` already returns repaired times (uint32 times are never negative)
    repaired = True

    def times(self, start: int, stop: int) -> np.ndarray:
        return self._words[start:stop, 0].astype(np.int64)

    def read(self, start: int, stop: int, carry: int):
        return _decode_dat_repaired(np.asarray(self._words[start:stop]), carry)

    def close(self) -> None:
        self._words = None


class _RvtH5Events:
    """RVT's HDF5 event file: datasets ``events/x, y, p, t`` of equal length."""

    def __init__(self, path: str):
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise FileFormatError(f"not a readable HDF5 file: {exc}", path) from None
        group = self._file["events"]
        missing = [k for k in ("x", "y", "p", "t") if k not in group]
        if missing:
            self._file.close()
            raise FileFormatError(f"RVT event file without events/{', events/'.join(missing)}",
                                  path)
        self._d = [group[k] for k in ("x", "y", "p", "t")]
        lengths = {len(d) for d in self._d}
        if len(lengths) != 1:
            raise FileFormatError(f"events/x, y, p, t have different lengths {sorted(lengths)}", path)
        self.count = lengths.pop()
        try:
            self.geometry = (int(group["height"][()]), int(group["width"][()]))
        except KeyError:
            self.geometry = None

    def times(self, start: int, stop: int) -> np.ndarray:
        return self._d[3][start:stop].astype(np.int64)

    def read(self, start: int, stop: int):
        x, y, p, t = (d[start:stop] for d in self._d)
        return x.astype(np.uint16), y.astype(np.uint16), p.astype(np.int16), t.astype(np.int64)

    def close(self) -> None:
        self._file.close()


class _ReaderEvents:
    """Any evstream reader, by index (``seek_event`` only when the cursor is elsewhere)."""

    def __init__(self, path: str, reader_kwargs: dict):
        self._reader = open_reader(path, **reader_kwargs)
        self.count = int(self._reader.event_count())
        size = self._reader.get_size()
        self.geometry = None if size is None or None in tuple(size) else \
            (int(size[0]), int(size[1]))

    def read(self, start: int, stop: int):
        if self._reader.current_event_index() != start:
            self._reader.seek_event(start)
        ev = self._reader.load_n_events(stop - start)
        return ev["x"], ev["y"], ev["p"], ev["t"].astype(np.int64)

    def times(self, start: int, stop: int) -> np.ndarray:
        return self.read(start, stop)[3]

    def close(self) -> None:
        close = getattr(self._reader, "close", None)
        if close is not None:
            close()


def is_rvt_h5(path: str) -> bool:
    """True when ``path`` is an HDF5 file with RVT's ``events/x`` layout."""
    try:
        with h5py.File(path, "r") as f:
            return "events" in f and isinstance(f["events"], h5py.Group) and "t" in f["events"]
    except OSError:
        return False


class RepairedEvents:
    """The events of one recording with RVT's repaired times (module docstring).

    Args:
        path: DAT, RAW, NPY, Prophesee HDF5 (``/CD/events``) or RVT HDF5 (``events/x...``) file.
        reader_kwargs: forwarded to :func:`evstream.io.open_reader` for RAW/NPY/Prophesee HDF5.

    :meth:`read` returns ``(x uint16, y uint16, p int16 in {0, 1}, r int64)`` for events
    ``[start, stop)`` in file order; ``r`` is the running-maximum time.
    """

    def __init__(self, path: str | os.PathLike, **reader_kwargs):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise MissingFileError("no such event file", self.path)
        ext = os.path.splitext(self.path)[1].lower()
        if ext == ".dat":
            self._src = _DatRecords(self.path)
        elif ext in (".h5", ".hdf5") and is_rvt_h5(self.path):
            self._src = _RvtH5Events(self.path)
        else:
            self._src = _ReaderEvents(self.path, reader_kwargs)
        self._decodes_repaired = getattr(self._src, "repaired", False)
        self.count = self._src.count
        #: ``(height, width)`` the file states (header, ``events/height``...), or None.
        self.geometry: tuple[int, int] | None = self._src.geometry
        self._block_max: np.ndarray | None = None   # running max at the end of each block

    def _repair(self, x, y, p, t, carry: int):
        if t.size and carry < 0 and t[0] < 0:
            raise EventArrayError(f"the first event has a negative time {int(t[0])} µs (RVT "
                                  f"asserts t[0] >= 0)", self.path)
        r = np.maximum.accumulate(t)
        np.maximum(r, carry, out=r)
        if p.size and p.max() > 1:
            raise EventArrayError(f"polarity {int(p.max())} outside {{0, 1}} (RVT asserts "
                                  f"0 <= p <= 1)", self.path)
        p = np.maximum(p, 0).astype(np.int16, copy=False)
        return x, y, p, r

    def running_max_index(self) -> np.ndarray:
        """Running maximum of the times at the end of every :data:`INDEX_BLOCK` events (built
        once, by one pass over the times)."""
        if self._block_max is None:
            n_blocks = -(-self.count // INDEX_BLOCK)
            out = np.empty(n_blocks, dtype=np.int64)
            carry = 0
            for b in range(n_blocks):
                t = self._src.times(b * INDEX_BLOCK, min((b + 1) * INDEX_BLOCK, self.count))
                if b == 0 and t.size and t[0] < 0:
                    raise EventArrayError(f"the first event has a negative time {int(t[0])} µs",
                                          self.path)
                carry = max(carry, int(t.max()))
                out[b] = carry
            self._block_max = out
        return self._block_max

    def read(self, start: int, stop: int, carry: int | None = None):
        """Events ``[start, stop)``; ``carry`` is the running maximum before ``start`` (looked
        up in the index, or by reading from the block start, when None)."""
        start, stop = max(int(start), 0), min(int(stop), self.count)
        if stop <= start:
            z = np.zeros(0, np.int64)
            return z.astype(np.uint16), z.astype(np.uint16), z.astype(np.int16), z
        if carry is None:
            if start == 0:
                carry = -1
            else:
                block = start // INDEX_BLOCK
                first = block * INDEX_BLOCK
                carry = int(self.running_max_index()[block - 1]) if block else -1
                if first < start:
                    x, y, p, r = self.read(first, stop, carry)
                    k = start - first
                    return x[k:], y[k:], p[k:], r[k:]
        if self._decodes_repaired:
            return self._src.read(start, stop, carry)
        return self._repair(*self._src.read(start, stop), carry)

    def first_at_or_after(self, tau: int, right: bool = False) -> int:
        """Index of the first event with ``r >= tau`` (``r > tau`` with ``right``)."""
        index = self.running_max_index()
        side = "right" if right else "left"
        block = int(np.searchsorted(index, tau, side=side))
        if block >= len(index):
            return self.count
        first = block * INDEX_BLOCK
        r = self.read(first, min(first + INDEX_BLOCK, self.count))[3]
        return first + int(np.searchsorted(r, tau, side=side))

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> "RepairedEvents":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
