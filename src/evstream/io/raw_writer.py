"""RAW writer: EVT 3.0, EVT 2.0 and EVT 2.1 encoders, events and external triggers
(docs/formats.md §4-§7).

The encoders are the inverse of :mod:`evstream.io.evt3` / :mod:`evstream.io.evt2` /
:mod:`evstream.io.evt21`: decoding their words with those decoders (no time shifting) gives back
exactly the input events and triggers, in order. Triggers are merged with the events by time, a
trigger before the events of its timestamp (EVT 3.0: EXT_TRIGGER after the TIME_LOW of its time;
EVT 2.x: the trigger word carries its own time LSBs).

EVT 2.1 output groups consecutive events of one (t, y, p) with increasing x below ``x0 + 32`` in
one word (validity mask from the first one's x); the file holds the "little" or the "legacy"
layout (two 32-bit halves swapped).

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
units below the largest base for EVT 2.0 / 3.0, 0 units for EVT 2.1) reads every step correctly: a jump into a later period goes through
the last time-high value of the current period and 0 of the next one (two words per period
crossed), unless one word already reads as a single wrap. This holds for any gap and any t >= 0.

Encoding kernels are resumable (state in an int64 vector), so a word buffer of fixed size is used
whatever the gaps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..errors import EventArrayError, FileFormatError
from .dtypes import MAX_WRITABLE_SIDE, EventCD, EventExtTrigger
from .file_date import file_date
from .header import check_sensor_side

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
def next_time_high(started, base, target, nbits, shift, wrap_units):
    """One TIME_HIGH step from the decoder's ``base`` towards ``target`` (both multiples of 2^shift).

    ``nbits``: width of the TIME_HIGH payload (12 for EVT 3.0, 28 for EVT 2.x); ``shift``: its
    position in the time (12, 6); ``wrap_units``: the decoder's wrap tolerance in TIME_HIGH units
    (a step back of at least ``2^nbits - 1 - wrap_units`` units reads as a wrap: 10 for EVT 2.0
    and 3.0, 0 for EVT 2.1). Returns ``(payload, new_base)``, ``new_base`` being what the decoder
    will hold after reading the word. Call until ``new_base == target``.
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
    if lt == lb + 1 and hb - ht >= hmax - wrap_units:
        return ht, target                                    # read as one wrap
    if hb < hmax:
        return hmax, (lb << pshift) | (hmax << shift)        # to the end of this period
    return 0, (lb + 1) << pshift                             # wrap to the next period


@njit(cache=True)
def _trigger_first(i, n, ev, ti, m, tr_t):
    """True when the next item to encode is trigger ``ti`` (a trigger precedes events of its t)."""
    return ti < m and (i >= n or tr_t[ti] <= ev[i, 1])


@njit(cache=True)
def _encode_evt3(ev, start, tr_t, tr_p, tr_id, tstart, out, st):
    """Encode events ``ev[start:]`` (int64[N, 2] view of EventCD) and triggers ``tr_*[tstart:]``
    (merged by time) into ``out`` (uint16).

    Stops when fewer than 8 words of room remain. Returns ``(next_event, next_trigger, n_words)``.
    """
    n = ev.shape[0]
    m = tr_t.shape[0]
    cap = out.shape[0]
    nw = 0
    i = start
    ti = tstart
    started = st[_E_STARTED]
    base = st[_E_BASE]
    low = st[_E_LOW]
    cy = st[_E_Y]
    bx = st[_E_BX]
    pol = st[_E_POL]
    while (i < n or ti < m) and cap - nw >= 8:
        trigger = _trigger_first(i, n, ev, ti, m, tr_t)
        t = tr_t[ti] if trigger else ev[i, 1]
        thi = (t >> 12) << 12
        if started == 0 or base != thi:
            payload, base = next_time_high(started, base, thi, 12, 12, _WRAP_UNITS)
            out[nw] = 0x8000 | payload
            nw += 1
            started = 1
            low = 0
            continue
        if t - base != low:
            low = t - base
            out[nw] = 0x6000 | low
            nw += 1
        if trigger:
            out[nw] = 0xA000 | (tr_id[ti] << 8) | tr_p[ti]
            nw += 1
            ti += 1
            continue
        w0 = ev[i, 0]
        x = w0 & 0xFFFF
        y = (w0 >> 16) & 0xFFFF
        p = (w0 >> 32) & 0xFFFF
        key = (w0 >> 16) & 0xFFFFFFFF     # (y, p); the padding bytes are ignored
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
    return i, ti, nw


@njit(cache=True)
def _encode_evt2x(ev, start, tr_t, tr_p, tr_id, tstart, out, st, wide):
    """The EVT 2.0 (``wide=False``, 32-bit words) and EVT 2.1 (``wide=True``, 64-bit words in the
    "little" layout of :mod:`evstream.io.evt21`) encoder: events ``ev[start:]`` (int64[N, 2] view
    of EventCD) and triggers ``tr_*[tstart:]``, merged by time, into ``out``.

    EVT 2.1 groups consecutive events with the same (t, y, p) and strictly increasing x below
    ``x0 + 32`` in one word (a validity mask from ``x0``, the first one's x). Stops when fewer
    than 2 words of room remain. Returns ``(next_event, next_trigger, n_words)``.
    """
    n = ev.shape[0]
    m = tr_t.shape[0]
    cap = out.shape[0]
    # type and field positions: EVT 2.1's upper 32 bits hold EVT 2.0's word
    hi = 32 if wide else 0
    nw = 0
    i = start
    ti = tstart
    started = st[_E_STARTED]
    base = st[_E_BASE]
    while (i < n or ti < m) and cap - nw >= 2:
        trigger = _trigger_first(i, n, ev, ti, m, tr_t)
        t = tr_t[ti] if trigger else ev[i, 1]
        thi = (t >> 6) << 6
        if started == 0 or base != thi:
            payload, base = next_time_high(started, base, thi, 28, 6, 0 if wide else _WRAP_UNITS)
            out[nw] = (np.int64(0x8) << (28 + hi)) | (payload << hi)
            nw += 1
            started = 1
            continue
        lsb = (t - base) << (22 + hi)
        if trigger:
            out[nw] = (np.int64(0xA) << (28 + hi)) | lsb | (tr_id[ti] << (8 + hi)) | (tr_p[ti] << hi)
            ti += 1
        else:
            w0 = ev[i, 0]
            x0 = w0 & 0xFFFF
            key = (w0 >> 16) & 0xFFFFFFFF     # (y, p); the padding bytes are ignored
            i += 1
            mask = np.int64(1)
            if wide:
                px = x0
                while i < n and ev[i, 1] == t and ((ev[i, 0] >> 16) & 0xFFFFFFFF) == key:
                    xi = ev[i, 0] & 0xFFFF
                    if xi <= px or xi >= x0 + 32:
                        break
                    mask |= np.int64(1) << (xi - x0)
                    px = xi
                    i += 1
            y = key & 0xFFFF
            p = (key >> 16) & 0xFFFF
            word = (p << (28 + hi)) | lsb | (x0 << (11 + hi)) | (y << hi)
            out[nw] = (word | mask) if wide else word
        nw += 1
    st[_E_STARTED] = started
    st[_E_BASE] = base
    return i, ti, nw


@njit(cache=True)
def _encode_evt2(ev, start, tr_t, tr_p, tr_id, tstart, out, st):
    """EVT 2.0 words into ``out`` (uint32); see :func:`_encode_evt2x`."""
    return _encode_evt2x(ev, start, tr_t, tr_p, tr_id, tstart, out, st, False)


@njit(cache=True)
def _encode_evt21(ev, start, tr_t, tr_p, tr_id, tstart, out, st):
    """EVT 2.1 words ("little" layout) into ``out`` (int64); see :func:`_encode_evt2x`."""
    return _encode_evt2x(ev, start, tr_t, tr_p, tr_id, tstart, out, st, True)


def _as_event_cd(events: np.ndarray, who: str, path: str | None) -> np.ndarray:
    """Contiguous EventCD array. Also accepts the same fields in another layout (e.g. the packed
    14-byte dtype that ``np.concatenate`` makes of EventCD arrays), converted by field name."""
    return _as_dtype(events, EventCD, "EventCD (x <u2, y <u2, p <i2, t <i8)", who, path)


def _as_dtype(array: np.ndarray, dtype: np.dtype, described: str, who: str,
              path: str | None) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype.names is None:
        raise EventArrayError(f"{who} expects a 1-D {described} array, got "
                              f"{getattr(array, 'dtype', type(array))}", path)
    if array.dtype == dtype:
        return np.ascontiguousarray(array)
    fields = {k: array.dtype.fields[k][0] for k in array.dtype.names}
    if fields != {k: dtype.fields[k][0] for k in dtype.names}:
        raise EventArrayError(f"{who} expects a 1-D {described} array, got {array.dtype}", path)
    return array.astype(dtype)


def new_encoder_state() -> np.ndarray:
    """Fresh encoder state (int64 vector) for :func:`encode_words`, start of a file."""
    st = np.zeros(_E_N, dtype=np.int64)
    st[_E_Y] = -1
    st[_E_POL] = -1
    st[_E_LAST_T] = -1
    return st


@dataclass(frozen=True)
class _Format:
    """How the writer produces one encoding."""

    version: str            #: ``% evt`` value
    name: str               #: first field of ``% format``
    word_dtype: np.dtype    #: dtype of the words in the file
    kernel_dtype: np.dtype  #: dtype of the kernel's output buffer
    kernel: object
    max_trigger_id: int     #: largest channel id the trigger word holds


_FORMATS = {
    "evt3": _Format("3.0", "EVT3", np.dtype("<u2"), np.dtype("<u2"), _encode_evt3, 0xF),
    "evt2": _Format("2.0", "EVT2", np.dtype("<u4"), np.dtype("<u4"), _encode_evt2, 0x1F),
    "evt21": _Format("2.1", "EVT21", np.dtype("<u8"), np.dtype("<i8"), _encode_evt21, 0x1F),
}
#: EVT 2.1 word layouts (see :mod:`evstream.io.evt21`).
EVT21_LAYOUTS = ("little", "legacy")
_NO_TRIGGERS = np.empty(0, dtype=EventExtTrigger)


def _file_words(words: np.ndarray, fmt: _Format, evt21_layout: str) -> np.ndarray:
    """Kernel output -> the words as stored (EVT 2.1 legacy: 32-bit halves swapped)."""
    words = words.view(fmt.word_dtype)
    if evt21_layout == "legacy":
        words = (words << np.uint64(32)) | (words >> np.uint64(32))
    return words


def _trigger_columns(triggers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(triggers["t"], dtype=np.int64),
            triggers["p"].astype(np.int64), triggers["id"].astype(np.int64))


def _check_format(format: str, evt21_layout: str, path: str | None) -> _Format:
    if format not in _FORMATS:
        raise FileFormatError(f"unknown RAW format {format!r} (use one of {', '.join(_FORMATS)})",
                              path)
    if evt21_layout not in EVT21_LAYOUTS:
        raise FileFormatError(f"unknown EVT 2.1 layout {evt21_layout!r} (use one of "
                              f"{', '.join(EVT21_LAYOUTS)})", path)
    return _FORMATS[format]


def encode_words(events: np.ndarray, format: str = "evt3", state: np.ndarray | None = None,
                 triggers: np.ndarray | None = None, evt21_layout: str = "little") -> np.ndarray:
    """Encode an EventCD array (and optionally EventExtTrigger triggers, merged by time, a
    trigger before the events of its timestamp) into RAW words (no header), for tests and
    in-memory streams.

    No validation beyond the dtype (see :class:`RawWriter`): callers pass sorted events with 0 <= x, y < 2048, p in {0, 1},
    t >= 0 (use :class:`RawWriter` for checked writing). ``state``: pass the same
    :func:`new_encoder_state` vector to successive calls to encode a stream in pieces (it is
    updated in place); None encodes a whole stream from the start of a file.
    """
    fmt = _check_format(format, evt21_layout, None)
    ev = _as_event_cd(events, "encode_words", None).view(np.int64).reshape(-1, 2)
    tr = _as_dtype(_NO_TRIGGERS if triggers is None else triggers, EventExtTrigger,
                   "EventExtTrigger", "encode_words", None)
    tr_t, tr_p, tr_id = _trigger_columns(tr)
    st = new_encoder_state() if state is None else state
    parts = []
    i = ti = 0
    size = max(64, min(_BUFFER_WORDS, 4 * (len(ev) + len(tr)) + 64))
    while True:
        out = np.empty(size, dtype=fmt.kernel_dtype)
        i, ti, nw = fmt.kernel(ev, i, tr_t, tr_p, tr_id, ti, out, st)
        parts.append(_file_words(out[:nw], fmt, evt21_layout))
        if i >= len(ev) and ti >= len(tr):
            break
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class RawWriter:
    """Write CD events (and external triggers) to a Prophesee RAW file in EVT 3.0 (default),
    EVT 2.0 or EVT 2.1.

    Header: ``% date``, ``% evt``, ``% format EVTx;height=H;width=W`` (EVT 2.1:
    ``;endianness=little|legacy`` too), ``% geometry WxH``, the user's extra keys, ``% end``.
    Events are appended by :meth:`write` (the encoder state carries over between calls) and must
    be sorted by t across calls.

    Args:
        path: file to create (overwritten).
        height, width: sensor size, 1..2048.
        format: ``'evt3'``, ``'evt2'`` or ``'evt21'``.
        header: extra header keys -> values (``date`` may be overridden, default now or
            ``$SOURCE_DATE_EPOCH``, see :mod:`evstream.io.file_date`; ``evt``, ``format``,
            ``geometry``, ``end`` may not).
        evt21_layout: EVT 2.1 only: ``'little'`` (each 64-bit word little-endian) or ``'legacy'``
            (the two 32-bit halves swapped, as IMX636 cameras write), see :mod:`evstream.io.evt21`.
        endianness_in_format: EVT 2.1 only: name the layout in the ``% format`` line (as OpenEB
            does). False leaves it out, so that a reader has to select the layout from the other
            header lines (``% endianness``, or the camera rule).
    """

    def __init__(self, path: str | os.PathLike, height: int, width: int, format: str = "evt3",
                 header: dict[str, str] | None = None, evt21_layout: str = "little",
                 endianness_in_format: bool = True) -> None:
        self.path = os.fspath(path)
        self._fmt = _check_format(format, evt21_layout, self.path)
        self.height = check_sensor_side(height, "height", self.path, hi=MAX_WRITABLE_SIDE)
        self.width = check_sensor_side(width, "width", self.path, hi=MAX_WRITABLE_SIDE)
        self.format = format
        self.evt21_layout = evt21_layout
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
        fmt_line = f"% format {self._fmt.name};height={self.height};width={self.width}"
        if format == "evt21" and endianness_in_format:
            fmt_line += f";endianness={evt21_layout}"
        text = [f"% date {lines['date']}", f"% evt {self._fmt.version}", fmt_line,
                f"% geometry {self.width}x{self.height}"]
        text += [f"% {k} {v}".rstrip() for k, v in extra.items() if str(k).lower() != "date"]
        text.append("% end")
        self._state = new_encoder_state()
        self._buf = np.empty(_BUFFER_WORDS, dtype=self._fmt.kernel_dtype)
        self._f = open(self.path, "wb")
        self._f.write(("\n".join(text) + "\n").encode("latin-1"))
        self.n_events = 0
        self.n_triggers = 0
        self.n_words = 0

    @property
    def closed(self) -> bool:
        return self._f is None

    def write(self, events: np.ndarray, triggers: np.ndarray | None = None) -> None:
        """Append events (EventCD array, t non-decreasing and >= the last t written) and,
        optionally, external triggers (EventExtTrigger array, t non-decreasing, p in {0, 1}, id
        within the format's channel field: 0..15 for EVT 3.0, 0..31 for EVT 2.x).

        The triggers of a call are merged with its events by time (a trigger goes before the
        events of its timestamp); everything written must be chronological across calls.
        An array with exactly EventCD's (EventExtTrigger's) fields in another layout (e.g. the
        packed dtype that ``np.concatenate`` returns) is converted by field name.

        Raises:
            EventArrayError: wrong dtype or shape, t negative or decreasing, x >= width,
                y >= height, p not in {0, 1}, a trigger id out of range, or the writer is closed.
        """
        if self._f is None:
            raise EventArrayError("write() on a closed RawWriter", self.path)
        ev = _as_event_cd(events, "RawWriter.write", self.path)
        tr = _as_dtype(_NO_TRIGGERS if triggers is None else triggers, EventExtTrigger,
                       "EventExtTrigger (p <i2, t <i8, id <i2)", "RawWriter.write", self.path)
        if len(ev) == 0 and len(tr) == 0:
            return
        self._check_times(ev["t"], "timestamps")
        self._check_times(tr["t"], "trigger timestamps")
        for name, limit in (("x", self.width), ("y", self.height)):
            m = int(ev[name].max()) if len(ev) else 0
            if m >= limit:
                raise EventArrayError(f"{name} = {m} outside the sensor ({name} < {limit})", self.path)
        for what, p in (("polarity p", ev["p"]), ("trigger polarity p", tr["p"])):
            if len(p) and (p.min() < 0 or p.max() > 1):
                raise EventArrayError(f"{what} must be 0 or 1", self.path)
        if len(tr) and (tr["id"].min() < 0 or tr["id"].max() > self._fmt.max_trigger_id):
            raise EventArrayError(f"trigger id must be within 0..{self._fmt.max_trigger_id} in "
                                  f"{self.format}, got {int(tr['id'].min())}..{int(tr['id'].max())}",
                                  self.path)
        view = ev.view(np.int64).reshape(-1, 2)
        tr_t, tr_p, tr_id = _trigger_columns(tr)
        i = ti = 0
        while i < len(view) or ti < len(tr):
            i, ti, nw = self._fmt.kernel(view, i, tr_t, tr_p, tr_id, ti, self._buf, self._state)
            self._f.write(_file_words(self._buf[:nw], self._fmt, self.evt21_layout).tobytes())
            self.n_words += nw
        self._state[_E_LAST_T] = max(int(ev["t"][-1]) if len(ev) else -1,
                                     int(tr["t"][-1]) if len(tr) else -1)
        self.n_events += len(ev)
        self.n_triggers += len(tr)

    def _check_times(self, t: np.ndarray, what: str) -> None:
        """Raise unless ``t`` is non-negative, non-decreasing and not before the last t written."""
        if len(t) == 0:
            return
        if t[0] < 0:
            raise EventArrayError(f"negative {what[:-1]} {int(t[0])}", self.path)
        if t[0] < self._state[_E_LAST_T]:
            raise EventArrayError(f"{what} decrease across write() calls: {int(t[0])} after "
                                  f"{int(self._state[_E_LAST_T])}", self.path)
        bad = np.flatnonzero(t[1:] < t[:-1])
        if len(bad):
            k = int(bad[0])
            raise EventArrayError(f"{what} decrease at index {k + 1}: {int(t[k + 1])} after "
                                  f"{int(t[k])}", self.path)

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> "RawWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
