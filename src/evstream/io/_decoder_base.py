"""Pieces shared by the RAW word decoders (EVT 2.0, EVT 2.1, EVT 3.0).

Each format module defines one numba kernel (its state machine, written once) and a thin
:class:`WordDecoder` subclass that names its word dtype, its kernel and its extra state slots.
This module holds what they have in common:

* the layout of the int64 state vector (:data:`ST_*` slots shared by every format, format-specific
  slots from :data:`ST_FORMAT` on);
* the TIME_HIGH wrap rule (:func:`time_high_update`), identical in shape for EVT 2.x (34-bit time,
  28-bit TIME_HIGH) and EVT 3.0 (24-bit time base, 12-bit TIME_HIGH);
* :func:`emit_mask`, the writer of a validity-mask vector (EVT 3.0 VECT_12 / VECT_8,
  EVT 2.1 32-bit masks), and the bit-count intrinsic :func:`popcount`;
* the once-per-call boundary checks (dtypes, contiguity, buffer sizes) and the int64 views the
  kernels write through.

Output representation inside the kernels: an ``EventCD`` buffer (16 bytes per event) is viewed as
an ``int64[N, 2]`` array; column 0 holds ``x | y << 16 | p << 32`` (x, y, p in their little-endian
slots, the 2 padding bytes zero), column 1 holds ``t``. An ``EventExtTrigger`` buffer (24 bytes) is
viewed as ``int64[N, 3]``: ``p``, ``t``, ``id``. This keeps each event to two 8-byte stores
(writes through numba record or field views were not benchmarked against it).
"""

from __future__ import annotations

import numpy as np
from numba import njit

try:  # count-trailing-zeros intrinsic (LLVM cttz); internal numba module, hence the fallback
    from numba.cpython.unsafe.numbers import trailing_zeros
except ImportError:  # pragma: no cover
    @njit(cache=True)
    def trailing_zeros(m):
        n = 0
        while not (m >> n) & 1:
            n += 1
        return n

from numba.extending import intrinsic

from ..errors import EventArrayError
from .dtypes import EventCD, EventExtTrigger
from .header import check_sensor_side


@intrinsic
def popcount(typingctx, value):
    """Number of set bits of an integer (LLVM ctpop: one instruction)."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return value(value), codegen

# ---- state vector layout (int64), shared by every format --------------------------------------
ST_STARTED = 0        #: 1 once the first TIME_HIGH has been seen
ST_BASE = 1           #: current time base in µs, loops included
ST_LOOPS = 2          #: number of time-base wraps seen
ST_FIRST_BASE = 3     #: time base set by the first TIME_HIGH (µs, raw), -1 before it
ST_WORDS_BEFORE = 4   #: counter: words skipped before the first TIME_HIGH
ST_SKIPPED = 5        #: counter: ignored words after it (reserved, padding, IMU, CONTINUED, OTHERS)
ST_OOB = 6            #: counter: CD events dropped because x >= width or y >= height
ST_TRIGGERS = 7       #: counter: external-trigger events written
ST_FORMAT = 8         #: first slot available to a format's own state

COMMON_COUNTERS = {"words_before_time_high": ST_WORDS_BEFORE, "skipped_words": ST_SKIPPED,
                   "out_of_bounds": ST_OOB, "triggers": ST_TRIGGERS}


@njit(cache=True)
def time_high_update(base, loops, payload_shifted, period, wrap_threshold):
    """TIME_HIGH rule shared by all formats (OpenEB standalone decoders).

    ``new = payload_shifted + loops * period``; if ``base > new`` and ``base - new >= wrap_threshold``
    the time base has wrapped: ``new += period`` and ``loops += 1``. Returns ``(new_base, loops)``.
    All values in µs.
    """
    new = payload_shifted + loops * period
    if base > new and base - new >= wrap_threshold:
        new += period
        loops += 1
    return new, loops


@njit(cache=True)
def start_time_base(st, words_skipped, base):
    """Record the first TIME_HIGH (time base ``base`` µs) after ``words_skipped`` words."""
    st[ST_WORDS_BEFORE] += words_skipped
    st[ST_STARTED] = 1
    st[ST_BASE] = base
    st[ST_LOOPS] = 0
    st[ST_FIRST_BASE] = base


@njit(cache=True)
def store_common_state(st, base, loops, skipped, oob, n_triggers):
    """Write back the state slots every format shares at the end of a decode call."""
    st[ST_BASE] = base
    st[ST_LOOPS] = loops
    st[ST_SKIPPED] = skipped
    st[ST_OOB] = oob
    st[ST_TRIGGERS] += n_triggers


@njit(cache=True)
def emit_mask(ev, ne, mask, nbits, x0, hi, t, width):
    """Write one event per set bit ``i < nbits`` of ``mask`` at ``x0 + i``, lowest bit first.

    ``hi`` = ``y << 16 | p << 32`` already packed; the row must already be known to be in bounds.
    Callers guarantee ``nbits`` free slots from ``ne``. Events with ``x >= width`` are dropped.
    Returns ``(ne, n_out_of_bounds)``. Visits set bits only (real vectors are sparse).
    """
    oob = 0
    m = mask & ((1 << nbits) - 1)
    if x0 + nbits <= width:
        while m:
            ev[ne, 0] = (x0 + trailing_zeros(m)) | hi
            ev[ne, 1] = t
            ne += 1
            m &= m - 1
    else:
        while m:
            x = x0 + trailing_zeros(m)
            m &= m - 1
            if x < width:
                ev[ne, 0] = x | hi
                ev[ne, 1] = t
                ne += 1
            else:
                oob += 1
    return ne, oob


class WordDecoder:
    """Base of the format decoders: state handling and boundary checks.

    Subclasses set ``word_dtype``, ``max_events_per_word``, ``_n_state`` (total state slots),
    ``_extra_counters`` (name -> slot) and implement :meth:`_initial_state` and :meth:`_run`
    (which calls the numba kernel with the int64 views).
    """

    word_dtype: np.dtype
    max_events_per_word: int
    _n_state: int = ST_FORMAT
    _extra_counters: dict[str, int] = {}
    #: µs subtracted by OpenEB's time shifting relative to the first time base (§7.4).
    _shift_offset: int = 0
    #: whether :meth:`decode` takes ``t_stop`` (the kernel stops at a time)
    stops_at_time: bool = False
    #: µs one time-base wrap adds (the state's ``ST_LOOPS`` counts them)
    time_period: int
    #: state slots holding raw times (µs): ``ST_BASE`` and any format-specific one
    _time_slots: tuple[int, ...] = (ST_BASE,)

    def __init__(self, width: int, height: int) -> None:
        self.width = check_sensor_side(width, f"{type(self).__name__}: width")
        self.height = check_sensor_side(height, f"{type(self).__name__}: height")
        self._state = self._initial_state()

    # ---- state -------------------------------------------------------------------------------
    def _initial_state(self) -> np.ndarray:
        s = np.zeros(self._n_state, dtype=np.int64)
        s[ST_FIRST_BASE] = -1
        return s

    def reset(self) -> None:
        """Return to the state at the start of a file (counters cleared)."""
        self._state = self._initial_state()

    def get_state(self) -> np.ndarray:
        """Copy of the full decoder state (int64 1-D, counters included)."""
        return self._state.copy()

    def set_state(self, state: np.ndarray) -> None:
        """Restore a state obtained from :meth:`get_state` of a decoder of the same class."""
        s = np.asarray(state)
        if s.shape != (self._n_state,) or s.dtype != np.int64:
            raise EventArrayError(f"{type(self).__name__}.set_state: expected an int64 array of "
                                  f"shape ({self._n_state},), got {s.dtype} {s.shape}")
        self._state = s.copy()

    @property
    def first_time_base(self) -> int:
        """Time base (µs, raw) set by the first TIME_HIGH, -1 before it."""
        return int(self._state[ST_FIRST_BASE])

    def time_shift_origin(self) -> int | None:
        """Origin that OpenEB's time shifting subtracts (docs/formats.md §7.4), None before any TIME_HIGH.

        EVT 2.0 / 2.1: the first time base; EVT 3.0: the first time base minus 4096 µs, i.e.
        ``(first TIME_HIGH - 1) << 12`` (-4096 when that TIME_HIGH is 0). Shifted time = t - origin.
        """
        fb = self.first_time_base
        return None if fb < 0 else fb - self._shift_offset

    @property
    def counters(self) -> dict[str, int]:
        """Counters since the last reset: ``words_before_time_high``, ``skipped_words``,
        ``out_of_bounds``, ``triggers`` and any format-specific one."""
        out = {k: int(self._state[i]) for k, i in COMMON_COUNTERS.items()}
        out.update({k: int(self._state[i]) for k, i in self._extra_counters.items()})
        return out

    def rebased(self, state: np.ndarray, start: np.ndarray, true_start: np.ndarray) -> np.ndarray | None:
        """``state``, reached by decoding some words from the state ``start``, as it would be had
        the decoding begun from ``true_start`` instead; None when the two do not agree.

        They agree when both have seen a TIME_HIGH, every slot that steers the decoding (all but
        the counters, the first time base and the times) is equal, and every time slot differs
        by the same whole number of time-base wraps (``ST_LOOPS``' difference times
        :attr:`time_period`). The decoding from either then writes the same events, their times
        differing by those wraps (the wrap rule compares times with each other only), so the
        rebased state has ``start``'s counters replaced by ``true_start``'s and its times moved by
        the wraps: exactly the state a decoding from ``true_start`` reaches.
        """
        counters = [*COMMON_COUNTERS.values(), *self._extra_counters.values()]
        times = list(self._time_slots)
        steering = np.ones(self._n_state, dtype=bool)
        steering[[*counters, *times, ST_LOOPS, ST_FIRST_BASE]] = False
        d_loops = int(true_start[ST_LOOPS] - start[ST_LOOPS])
        d_t = d_loops * self.time_period
        if not (start[ST_STARTED] == true_start[ST_STARTED] == 1
                and np.array_equal(start[steering], true_start[steering])
                and np.all(true_start[times] - start[times] == d_t)):
            return None
        out = state.copy()
        out[counters] += true_start[counters] - start[counters]
        out[times] += d_t
        out[ST_LOOPS] += d_loops
        out[ST_FIRST_BASE] = true_start[ST_FIRST_BASE]
        return out

    # ---- decoding ----------------------------------------------------------------------------
    def decode(self, words: np.ndarray, events: np.ndarray, triggers: np.ndarray,
               t_shift: int = 0, t_stop: int | None = None) -> tuple[int, int, int]:
        """Decode ``words`` in order into ``events[0:]`` and ``triggers[0:]``.

        Stops before a word when fewer than ``max_events_per_word`` slots remain in ``events`` or
        no slot remains in ``triggers``. State carries across calls exactly. ``t_shift`` (µs) is
        subtracted from the time of every event and trigger written (the readers' time
        shifting, at no extra pass); the state stays in raw time. Slots past the returned
        event count may be overwritten (the fast paths write whole groups). ``t_stop`` (raw
        µs; decoders with ``stops_at_time`` only): also stop before the first word that would
        write an event with ``t >= t_stop`` (the readers' time-window rule).

        Returns:
            ``(n_words_consumed, n_events_written, n_triggers_written)``.
        Raises:
            EventArrayError: wrong dtype, shape or contiguity, or output buffers too small to ever
                make progress (``len(events) < max_events_per_word`` or ``len(triggers) < 1``).
        """
        name = type(self).__name__
        if t_stop is not None and not self.stops_at_time:
            raise EventArrayError(f"{name}.decode: this format's decoder takes no t_stop")
        if not isinstance(words, np.ndarray) or words.ndim != 1 or words.dtype != self.word_dtype:
            raise EventArrayError(f"{name}.decode: words must be a 1-D {self.word_dtype} array, got "
                                  f"{getattr(words, 'dtype', type(words))} "
                                  f"{getattr(words, 'shape', '')}")
        if not words.flags.c_contiguous:
            raise EventArrayError(f"{name}.decode: words must be contiguous")
        ev = _view(events, EventCD, 2, self.max_events_per_word, name, "events")
        tr = _view(triggers, EventExtTrigger, 3, 1, name, "triggers")
        nw, ne, nt = self._run(words, ev, tr, int(t_shift), None if t_stop is None else int(t_stop))
        return int(nw), int(ne), int(nt)

    def _run(self, words, ev, tr, t_shift, t_stop):  # pragma: no cover - abstract
        raise NotImplementedError


def _view(arr: np.ndarray, dtype: np.dtype, n_u64: int, min_len: int, who: str, what: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != 1:
        raise EventArrayError(f"{who}.decode: {what} must be a 1-D array of dtype {dtype}, got "
                              f"{getattr(arr, 'dtype', type(arr))} {getattr(arr, 'shape', '')}")
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        raise EventArrayError(f"{who}.decode: {what} must be contiguous and writeable")
    if len(arr) < min_len:
        raise EventArrayError(f"{who}.decode: {what} buffer holds {len(arr)} slots, at least "
                              f"{min_len} needed to decode one word")
    return arr.view(np.int64).reshape(-1, n_u64)
