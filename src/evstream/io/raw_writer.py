"""RAW writer: EVT 3.0 and EVT 2.0 encoders (docs/formats.md §4, §5, §7).

The encoders are the inverse of :mod:`evstream.io.evt3` / :mod:`evstream.io.evt2`: decoding their
words with those decoders (no time shifting) gives back exactly the input events, in order.

EVT 3.0 output is compact:

* EVT_TIME_HIGH only when the time base (t >> 12) changes, EVT_TIME_LOW only when t & 0xFFF
  differs from the decoder's current low part (which every TIME_HIGH resets to 0);
* EVT_ADDR_Y only when y changes;
* a run of consecutive input events with the same (t, y, p) and strictly increasing x, at least two
  of them within 12 pixels, becomes VECT_BASE_X (omitted when the decoder's base x and polarity
  already match) followed by VECT_12 words (VECT_8 when a window's events fit in 8 pixels), one per
  window, for as long as the next event of the run falls in the next window;
* any other event is one EVT_ADDR_X word.

Time gaps: TIME_HIGH words are inserted so that the decoder's wrap detection (threshold 10 time-high
units below the largest base) reads every step correctly: a jump into a later period goes through
the last time-high value of the current period and 0 of the next one (two words per period
crossed), unless one word already reads as a single wrap. This holds for any gap and any t >= 0.

Encoding kernels are resumable (state in an int64 vector), so a word buffer of fixed size is used
whatever the gaps.
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit

from ..errors import EventArrayError, FileFormatError, GeometryError
from .dtypes import EventCD
from .file_date import file_date

#: Sensors up to 2048 x 2048 (11-bit coordinates in EVT 2.0 and EVT 3.0).
MAX_SIDE = 2048
_WRAP_UNITS = 10          # decoders' wrap threshold, in time-high units
_BUFFER_WORDS = 1 << 20   # words per file write

# encoder state slots (int64)
_E_STARTED = 0   # 1 once a TIME_HIGH has been emitted
_E_BASE = 1      # decoder's time base (µs, loops included) after the words emitted so far
_E_LOW = 2       # EVT3: decoder's current low part (t - base)
_E_Y = 3         # EVT3: decoder's current y, -1 before the first EVT_ADDR_Y
_E_BX = 4        # EVT3: decoder's vector base x
_E_POL = 5       # EVT3: decoder's vector polarity, -1 before the first VECT_BASE_X
_E_LAST_T = 6    # last t written (for the ordering check across calls), -1 before
_E_N = 7


@njit(cache=True)
def next_time_high(started, base, target, nbits, shift):
    """One TIME_HIGH step from the decoder's ``base`` towards ``target`` (both multiples of 2^shift).

    ``nbits``: width of the TIME_HIGH payload (12 for EVT 3.0, 28 for EVT 2.0); ``shift``: its
    position in the time (12, 6). Returns ``(payload, new_base)``, ``new_base`` being what the
    decoder will hold after reading the word. Call until ``new_base == target``.
    """
    hmax = (1 << nbits) - 1
    pshift = nbits + shift
    ht = (target >> shift) & hmax
    lt = target >> pshift
    if started == 0:
        if lt == 0:
            return ht, target
        return hmax, hmax << shift
    lb = base >> pshift
    hb = (base >> shift) & hmax
    if lt == lb:
        return ht, target
    if lt == lb + 1 and hb - ht >= hmax - _WRAP_UNITS:
        return ht, target                                    # read as one wrap
    if hb < hmax:
        return hmax, (lb << pshift) | (hmax << shift)        # to the end of this period
    return 0, (lb + 1) << pshift                             # wrap to the next period


@njit(cache=True)
def _encode_evt3(ev, start, out, st):
    """Encode events ``ev[start:]`` (int64[N, 2] view of EventCD) into ``out`` (uint16).

    Stops when fewer than 8 words of room remain. Returns ``(next_event, n_words)``.
    """
    n = ev.shape[0]
    cap = out.shape[0]
    nw = 0
    i = start
    started = st[_E_STARTED]
    base = st[_E_BASE]
    low = st[_E_LOW]
    cy = st[_E_Y]
    bx = st[_E_BX]
    pol = st[_E_POL]
    while i < n and cap - nw >= 8:
        w0 = ev[i, 0]
        t = ev[i, 1]
        thi = (t >> 12) << 12
        if started == 0 or base != thi:
            payload, base = next_time_high(started, base, thi, 12, 12)
            out[nw] = 0x8000 | payload
            nw += 1
            started = 1
            low = 0
            continue
        x = w0 & 0xFFFF
        y = (w0 >> 16) & 0xFFFF
        p = (w0 >> 32) & 0xFFFF
        key = (w0 >> 16) & 0xFFFFFFFF     # (y, p); the padding bytes are ignored
        if t - base != low:
            low = t - base
            out[nw] = 0x6000 | low
            nw += 1
        if y != cy:
            cy = y
            out[nw] = y
            nw += 1
        # events of the same (t, y, p) with strictly increasing x within 12 pixels of x
        j = i + 1
        px = x
        while j < n and ev[j, 1] == t and ((ev[j, 0] >> 16) & 0xFFFFFFFF) == key:
            xj = ev[j, 0] & 0xFFFF
            if xj <= px or xj >= x + 12:
                break
            px = xj
            j += 1
        if j - i < 2:
            out[nw] = 0x2000 | (p << 11) | x
            nw += 1
            i += 1
            continue
        if bx != x or pol != p:
            bx = x
            pol = p
            out[nw] = 0x3000 | (p << 11) | x
            nw += 1
        # vector windows while the run continues into the next window
        px = -1
        while cap - nw >= 1:
            mask = 0
            while i < n and ev[i, 1] == t and ((ev[i, 0] >> 16) & 0xFFFFFFFF) == key:
                xi = ev[i, 0] & 0xFFFF
                if xi <= px or xi >= bx + 12:
                    break
                mask |= 1 << (xi - bx)
                px = xi
                i += 1
            if mask >> 8 == 0:
                out[nw] = 0x5000 | mask
                bx += 8
            else:
                out[nw] = 0x4000 | mask
                bx += 12
            nw += 1
            if not (i < n and ev[i, 1] == t and ((ev[i, 0] >> 16) & 0xFFFFFFFF) == key):
                break
            xi = ev[i, 0] & 0xFFFF
            if xi <= px or xi >= bx + 12:
                break
    st[_E_STARTED] = started
    st[_E_BASE] = base
    st[_E_LOW] = low
    st[_E_Y] = cy
    st[_E_BX] = bx
    st[_E_POL] = pol
    return i, nw


@njit(cache=True)
def _encode_evt2(ev, start, out, st):
    """Encode events ``ev[start:]`` (int64[N, 2] view of EventCD) into ``out`` (uint32).

    Stops when fewer than 2 words of room remain. Returns ``(next_event, n_words)``.
    """
    n = ev.shape[0]
    cap = out.shape[0]
    nw = 0
    i = start
    started = st[_E_STARTED]
    base = st[_E_BASE]
    while i < n and cap - nw >= 2:
        w0 = ev[i, 0]
        t = ev[i, 1]
        thi = (t >> 6) << 6
        if started == 0 or base != thi:
            payload, base = next_time_high(started, base, thi, 28, 6)
            out[nw] = 0x80000000 | payload
            nw += 1
            started = 1
            continue
        x = w0 & 0xFFFF
        y = (w0 >> 16) & 0xFFFF
        p = (w0 >> 32) & 0xFFFF
        out[nw] = (p << 28) | ((t - base) << 22) | (x << 11) | y
        nw += 1
        i += 1
    st[_E_STARTED] = started
    st[_E_BASE] = base
    return i, nw


def _as_event_cd(events: np.ndarray, who: str, path: str | None) -> np.ndarray:
    """Contiguous EventCD array. Also accepts the same fields in another layout (e.g. the packed
    14-byte dtype that ``np.concatenate`` makes of EventCD arrays), converted by field name."""
    if not isinstance(events, np.ndarray) or events.ndim != 1 or events.dtype.names is None:
        raise EventArrayError(f"{who} expects a 1-D EventCD array, got "
                              f"{getattr(events, 'dtype', type(events))}", path)
    if events.dtype == EventCD:
        return np.ascontiguousarray(events)
    fields = {k: events.dtype.fields[k][0] for k in events.dtype.names}
    if fields != {k: EventCD.fields[k][0] for k in EventCD.names}:
        raise EventArrayError(f"{who} expects a 1-D EventCD array (x <u2, y <u2, p <i2, t <i8), "
                              f"got {events.dtype}", path)
    return events.astype(EventCD)


def new_encoder_state() -> np.ndarray:
    """Fresh encoder state (int64 vector) for :func:`encode_words`, start of a file."""
    st = np.zeros(_E_N, dtype=np.int64)
    st[_E_Y] = -1
    st[_E_POL] = -1
    st[_E_LAST_T] = -1
    return st


_FORMATS = {
    "evt3": ("3.0", "EVT3", np.dtype("<u2"), _encode_evt3),
    "evt2": ("2.0", "EVT2", np.dtype("<u4"), _encode_evt2),
}


def encode_words(events: np.ndarray, format: str = "evt3", state: np.ndarray | None = None) -> np.ndarray:
    """Encode an EventCD array into RAW words (no header), for tests and in-memory streams.

    No validation beyond the dtype (see :class:`RawWriter`): callers pass sorted events with 0 <= x, y < 2048, p in {0, 1},
    t >= 0 (use :class:`RawWriter` for checked writing). ``state``: pass the same
    :func:`new_encoder_state` vector to successive calls to encode a stream in pieces (it is
    updated in place); None encodes a whole stream from the start of a file.
    """
    if format not in _FORMATS:
        raise FileFormatError(f"unknown RAW format {format!r} (use 'evt3' or 'evt2')")
    ev = _as_event_cd(events, "encode_words", None).view(np.int64).reshape(-1, 2)
    _, _, wdt, kernel = _FORMATS[format]
    st = new_encoder_state() if state is None else state
    parts = []
    i = 0
    size = max(64, min(_BUFFER_WORDS, 4 * len(ev) + 64))
    while True:
        out = np.empty(size, dtype=wdt)
        i, nw = kernel(ev, i, out, st)
        parts.append(out[:nw])
        if i >= len(ev):
            break
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class RawWriter:
    """Write CD events to a Prophesee RAW file in EVT 3.0 (default) or EVT 2.0.

    Header: ``% date``, ``% evt``, ``% format EVTx;height=H;width=W``, ``% geometry WxH``, the
    user's extra keys, ``% end``. Events are appended by :meth:`write` (the encoder state carries
    over between calls) and must be sorted by t across calls.

    Args:
        path: file to create (overwritten).
        height, width: sensor size, 1..2048.
        format: ``'evt3'`` or ``'evt2'``.
        header: extra header keys -> values (``date`` may be overridden, default now or
            ``$SOURCE_DATE_EPOCH``, see :mod:`evstream.io.file_date`; ``evt``, ``format``,
            ``geometry``, ``end`` may not).
    """

    def __init__(self, path: str | os.PathLike, height: int, width: int, format: str = "evt3",
                 header: dict[str, str] | None = None) -> None:
        self.path = os.fspath(path)
        if format not in _FORMATS:
            raise FileFormatError(f"unknown RAW format {format!r} (use 'evt3' or 'evt2')", self.path)
        for name, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_SIDE:
                raise GeometryError(f"{name} must be an integer in [1, {MAX_SIDE}], got {v!r}",
                                    self.path)
        self.height, self.width, self.format = int(height), int(width), format
        version, fmt_name, self._word_dtype, self._kernel = _FORMATS[format]
        lines = {"date": file_date().strftime("%Y-%m-%d %H:%M:%S")}
        extra = dict(header or {})
        for k, v in extra.items():
            k, v = str(k), str(v)
            if not k or any(c.isspace() for c in k) or "\n" in v or "\r" in v:
                raise FileFormatError(f"invalid header entry {k!r}: {v!r}", self.path)
            if k.lower() in ("evt", "format", "geometry", "end"):
                raise FileFormatError(f"header key {k!r} is set by the writer", self.path)
            if k.lower() == "date":
                lines["date"] = v
        text = [f"% date {lines['date']}", f"% evt {version}",
                f"% format {fmt_name};height={self.height};width={self.width}",
                f"% geometry {self.width}x{self.height}"]
        text += [f"% {k} {v}".rstrip() for k, v in extra.items() if str(k).lower() != "date"]
        text.append("% end")
        self._state = new_encoder_state()
        self._buf = np.empty(_BUFFER_WORDS, dtype=self._word_dtype)
        self._f = open(self.path, "wb")
        self._f.write(("\n".join(text) + "\n").encode("latin-1"))
        self.n_events = 0
        self.n_words = 0

    @property
    def closed(self) -> bool:
        return self._f is None

    def write(self, events: np.ndarray) -> None:
        """Append events (EventCD array, t non-decreasing and >= the last t written).

        An array with exactly EventCD's fields in another layout (e.g. the packed dtype that
        ``np.concatenate`` returns for EventCD arrays) is converted by field name.

        Raises:
            EventArrayError: wrong dtype or shape, t negative or decreasing, x >= width,
                y >= height, p not in {0, 1}, or the writer is closed.
        """
        if self._f is None:
            raise EventArrayError("write() on a closed RawWriter", self.path)
        ev = _as_event_cd(events, "RawWriter.write", self.path)
        if len(ev) == 0:
            return
        t = ev["t"]
        if t[0] < 0:
            raise EventArrayError(f"negative timestamp {int(t[0])}", self.path)
        if t[0] < self._state[_E_LAST_T]:
            raise EventArrayError(f"timestamps decrease across write() calls: {int(t[0])} after "
                                  f"{int(self._state[_E_LAST_T])}", self.path)
        if len(t) > 1:
            bad = np.flatnonzero(t[1:] < t[:-1])
            if len(bad):
                k = int(bad[0])
                raise EventArrayError(f"timestamps decrease at index {k + 1}: {int(t[k + 1])} after "
                                      f"{int(t[k])}", self.path)
        for name, limit in (("x", self.width), ("y", self.height)):
            m = int(ev[name].max())
            if m >= limit:
                raise EventArrayError(f"{name} = {m} outside the sensor ({name} < {limit})", self.path)
        p = ev["p"]
        if p.min() < 0 or p.max() > 1:
            raise EventArrayError("polarity p must be 0 or 1", self.path)
        view = ev.view(np.int64).reshape(-1, 2)
        i = 0
        while i < len(view):
            i, nw = self._kernel(view, i, self._buf, self._state)
            self._f.write(self._buf[:nw].tobytes())
            self.n_words += nw
        self._state[_E_LAST_T] = t[-1]
        self.n_events += len(ev)

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> "RawWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
