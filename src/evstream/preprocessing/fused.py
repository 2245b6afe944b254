"""Fused RAW -> tensor path: EVT 3.0 words decoded straight into ``histo``, ``diff`` and
``stacked_histogram`` tensors, without materialising the EventCD window.

The EVT 3.0 state machine is the decoder's own (:func:`evstream.io.evt3.evt3_machine`), compiled
by numba a second time for a *tensor sink* (the sink protocol of :mod:`evstream.io._decoder_base`):
instead of storing an event as two int64 words, the sink computes the event's flat cell index
in the ``[T, C, H, W]`` output exactly as the unfused kernels do (same time edges, same bin
search, same polarity and downsampling rule, see :mod:`evstream.preprocessing.kernels`),
prefetches the cell and queues the index; every ``BLOCK_EVENTS`` events the queue is applied
with the kernels' own pass-2 functions (``_apply_accumulate``, ``_apply_capped``), in event
order. The tensors are therefore identical to building the window's events first and calling
the registry function on them, for files whose time does not go backwards (a backward TIME_HIGH
or TIME_LOW, only seen in corrupt files, may move an event into a neighbouring window; an event
that would land before its window's start is dropped and counted).

:class:`RawTensorChunks` plays a RAW file as consecutive windows of ``duration`` µs (the
``delta_t`` mode of :class:`evstream.data.cd_processor_iterator.CDProcessorIterator`): the
decoder stops at the first time word at or after a window end and resumes there for the next
window. It produces the same sequence of windows as :class:`evstream.io.EventsIterator`.

numba's cache note: the tensor-sink specialisations of ``evt3_machine`` are cached beside
``evt3.py``; numba checks only that file's time stamp, so clear ``__pycache__`` after editing the
sink functions of this module.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from evstream.io._decoder_base import ST_OOB, register_sink
from evstream.io.evt3 import evt3_machine
from evstream.io.raw import RawReader, TRIGGER_BUFFER, WORDS_PER_BLOCK
from evstream.io.dtypes import EventCD, EventExtTrigger
from evstream.preprocessing import kernels
from evstream.preprocessing import validation as _v
from evstream.preprocessing.kernels import (BLOCK_EVENTS, _apply_accumulate, _apply_capped,
                                            _locate, _prefetch)

#: the registry functions this path reproduces, by name
FUSED_FUNCTIONS = {"histo": kernels.histo, "diff": kernels.diff,
                   "stacked_histogram": kernels.stacked_histogram}
_MASK = BLOCK_EVENTS - 1
_ROOM = 1 << 60

# parameter slots of a tensor sink (int64 array)
_T0, _SHIFT, _W, _ON_OFF, _SBIT, _BIN, _BAD, _DROPPED, _TOTAL = range(9)
_N_PRM = 9

# sink tags: the dtype of element 0 of the sink tuple names the sink (see register_sink)
_TAG_HISTO, _TAG_DIFF, _TAG_STACKED, _TAG_COUNT = np.int8, np.int16, np.int32, np.uint8


@njit(cache=True, inline="always")
def _tensor_put(out, ne, x, hi, t):
    """Pass 1 for one (speculative) event: queue its cell index in slot ``ne % BLOCK_EVENTS``."""
    flat, idx, off_of, edges, prm, inv = out[1], out[2], out[3], out[4], out[5], out[6]
    ti = t - prm[_T0]
    if ti < 0 or ti >= prm[_TOTAL]:
        prm[_BAD] = 1                       # outside the window (time went backwards): dropped
        return
    prm[_BAD] = 0
    b = _locate(ti, edges, prm[_BIN], inv)
    prm[_BIN] = b
    shift = prm[_SHIFT]
    on = (hi >> 32) & 1
    c = off_of[b] + (((hi >> 16) & 0xFFFF) >> shift) * prm[_W] + (x >> shift) + on * prm[_ON_OFF]
    sbit = prm[_SBIT]
    e = np.uint64(c)
    _prefetch(flat, e)
    idx[ne & _MASK] = (e << np.uint64(sbit)) | np.uint64(on & sbit)


@njit(cache=True, inline="always")
def _tensor_room(out, ne):
    return _ROOM - ne


def _make_commit(apply):
    @njit(inline="always")
    def commit(out, ne):
        prm = out[5]
        if prm[_BAD]:
            prm[_DROPPED] += 1
            return ne
        ne += 1
        if (ne & _MASK) == 0:
            apply(out, BLOCK_EVENTS)
        return ne
    return commit


@njit(cache=True, inline="always")
def _apply_histo(out, n):
    _apply_accumulate(out[1], out[2], n, out[7], False)


@njit(cache=True, inline="always")
def _apply_diff(out, n):
    _apply_accumulate(out[1], out[2], n, out[7], True)


@njit(cache=True, inline="always")
def _apply_stacked(out, n):
    _apply_capped(out[1], out[2], n, out[8])


_commit_histo = _make_commit(_apply_histo)
_commit_diff = _make_commit(_apply_diff)
_commit_stacked = _make_commit(_apply_stacked)


@njit(cache=True)
def _flush_histo(out, ne):
    _apply_histo(out, ne & _MASK)


@njit(cache=True)
def _flush_diff(out, ne):
    _apply_diff(out, ne & _MASK)


@njit(cache=True)
def _flush_stacked(out, ne):
    _apply_stacked(out, ne & _MASK)


# count sink: events only counted (the skip to a start time)
@njit(cache=True, inline="always")
def _count_put(out, ne, x, hi, t):
    pass


@njit(cache=True, inline="always")
def _count_commit(out, ne):
    return ne + 1


register_sink(_TAG_HISTO, _tensor_put, _commit_histo, _tensor_room, True)
register_sink(_TAG_DIFF, _tensor_put, _commit_diff, _tensor_room, True)
register_sink(_TAG_STACKED, _tensor_put, _commit_stacked, _tensor_room, True)
register_sink(_TAG_COUNT, _count_put, _count_commit, _tensor_room, True)

_FLUSH = {"histo": _flush_histo, "diff": _flush_diff, "stacked_histogram": _flush_stacked}
_TAGS = {"histo": _TAG_HISTO, "diff": _TAG_DIFF, "stacked_histogram": _TAG_STACKED}


def tensor_sink(name: str, array: np.ndarray, total: int, downsampling_factor: int,
                kwargs: dict) -> tuple:
    """The sink tuple that accumulates ``name`` into ``array`` (C-contiguous ``[T, C, H, W]``,
    not reset) over a window of ``total`` µs, with the registry kwargs ``kwargs``; the same
    parameters as the registry function (:mod:`evstream.preprocessing.kernels`)."""
    n_t, n_c, h, w = array.shape
    k = int(downsampling_factor)
    plane = h * w
    prm = np.zeros(_N_PRM, np.int64)
    prm[_SHIFT], prm[_W], prm[_TOTAL] = k, w, total
    inc, cap = 1.0, 0
    if name == "stacked_histogram":
        nb = n_c // 2
        nbins = n_t * nb
        cap = kernels.stacked_histogram_cap(array.dtype, kwargs.get("count_cutoff", 10), name)
        m = np.arange(nbins)
        off_of = ((m // nb) * n_c + m % nb) * plane
        prm[_ON_OFF] = nb * plane
    else:
        nbins = n_t
        inc = kernels._increment(kwargs.get("max_incr_per_pixel", 5), k)
        if name == "histo":
            off_of = 2 * np.arange(nbins) * plane
            prm[_ON_OFF] = plane
        else:
            off_of = np.arange(nbins) * plane
            prm[_SBIT] = 1
    edges = _v.time_edges(total, nbins)
    return (np.empty(0, _TAGS[name]), array.reshape(-1), np.empty(BLOCK_EVENTS, np.uint64),
            off_of.astype(np.int64), edges, prm, nbins / total, float(inc), int(cap))


def fusable(name: str, function, dtype: np.dtype, kwargs: dict, downsampling_factor: int) -> bool:
    """Whether the fused path reproduces registry function ``function`` registered as ``name``
    with these settings (float outputs for histo / diff, any for stacked_histogram)."""
    if FUSED_FUNCTIONS.get(name) is not function:
        return False
    if name == "stacked_histogram":
        return True
    if np.dtype(dtype).kind != "f":
        return False
    try:
        kernels._increment(kwargs.get("max_incr_per_pixel", 5), downsampling_factor)
    except Exception:  # noqa: BLE001 - invalid kwargs: let the unfused path raise its error
        return False
    return True


class RawTensorChunks:
    """A RAW EVT 3.0 file played as consecutive windows ``[start_ts + k·duration, ...)`` (reader
    time, µs) of ``duration`` µs, each accumulated into an array by the fused path.

    Args:
        reader: an open :class:`~evstream.io.RawReader` of the file (EVT 3.0, ``out_of_bounds``
            ``"warn"``); its header, time origin and seek index are used, and dropped
            out-of-sensor events are reported through it (same warning and running count).
        duration: window length (µs, integer >= 1).
        start_ts, max_duration: as :class:`~evstream.io.EventsIterator`.

    :meth:`next_window` fills a caller's sink and returns the number of events it received, or
    None after the last window (the one that holds the file's last event, or the one reaching
    ``start_ts + max_duration``): the windows are those that ``EventsIterator(delta_t=duration)``
    yields.
    """

    def __init__(self, reader: RawReader, duration: int, start_ts: int = 0,
                 max_duration: int | None = None):
        if reader.header.encoding != "evt3" or reader.out_of_bounds != "warn":
            raise ValueError("RawTensorChunks needs an EVT 3.0 RawReader with out_of_bounds='warn'")
        self.reader = reader
        self.duration = int(duration)
        self.start_ts = int(start_ts)
        self.end = None if max_duration is None else self.start_ts + int(max_duration)
        stream = reader._stream
        self._decoder = type(stream.decoder)(stream.decoder.width, stream.decoder.height)
        self._n_words = stream.n_words
        self._index = stream.index
        self._file = open(reader.path, "rb")
        self._data_offset = reader.header.data_offset
        self._block = np.empty(min(WORDS_PER_BLOCK, max(self._n_words, 1)), np.uint16)
        self._block_start = self._block_stop = 0
        self._triggers = np.empty(TRIGGER_BUFFER, EventExtTrigger).view(np.int64).reshape(-1, 3)
        self._peek_ev = np.empty(12, EventCD).view(np.int64).reshape(-1, 2)
        self._count = (np.empty(0, _TAG_COUNT),)
        self._k = 0
        self._done = False
        self._started = False

    # ---- words -----------------------------------------------------------------------------
    def _words_at(self, pos: int) -> np.ndarray:
        if not (self._block_start <= pos < self._block_stop):
            n = min(len(self._block), self._n_words - pos)
            self._file.seek(self._data_offset + 2 * pos)
            got = self._file.readinto(self._block[:n])
            if got != 2 * n:
                from evstream.errors import FileFormatError
                raise FileFormatError(f"file shrank while reading: expected {2 * n} bytes at word "
                                      f"{pos}, got {got}", self.reader.path)
            self._block_start, self._block_stop = pos, pos + n
        return self._block[pos - self._block_start:self._block_stop - self._block_start]

    def _run(self, sink, t_stop: int, flush=None) -> int:
        """Decode from the position into ``sink`` until the time reaches ``t_stop`` (raw µs) or
        the file ends; returns the events committed. Sets ``self._eof``."""
        st = self._decoder._state
        width, height = self._decoder.width, self._decoder.height
        total = 0
        while self._pos < self._n_words:
            words = self._words_at(self._pos)
            consumed, ne, nt = evt3_machine(words, sink, self._triggers, st, width, height, t_stop)
            if flush is not None:
                flush(sink, ne)
            total += ne
            self._pos += consumed
            if consumed < len(words) and nt < len(self._triggers):
                break                                   # stopped at t_stop
        self._report_dropped()
        return total

    def _report_dropped(self) -> None:
        reader = self.reader
        reader._report_out_of_bounds(int(self._decoder._state[ST_OOB]) - reader.out_of_bounds_count,
                                     reader.header.height, reader.header.width)

    def _more_events(self) -> bool:
        """Whether any event follows the position (decodes ahead on a copy of the state)."""
        state = self._decoder.get_state()
        pos = self._pos
        found = False
        while pos < self._n_words and not found:
            words = self._words_at(pos)
            consumed, ne, _ = evt3_machine(words, self._peek_ev, self._triggers, state,
                                           self._decoder.width, self._decoder.height, 0)
            found = ne > 0
            pos += consumed
        return found

    def _start(self) -> None:
        self._started = True
        origin = self.reader.origin
        self._origin = origin
        checkpoint = self._index.last_before_time(self.start_ts + origin) if self.start_ts else 0
        if checkpoint >= len(self._index.states):
            checkpoint = 0
        if not self._index.states:
            self._decoder.reset()
        else:
            self._decoder.set_state(self._index.states[checkpoint])
        self._pos = checkpoint * self._index.words_per_checkpoint
        if self.start_ts:
            self._run(self._count, self.start_ts + origin)
        self._done = not self._more_events()

    def next_window(self, name: str, sink) -> int | None:
        """Accumulate the next window into ``sink`` (from :func:`tensor_sink`, built for this
        window's ``total`` = ``duration``; its start is set here). Returns the number of events
        accumulated (the dropped ones excluded), or None when there is no next window."""
        if not self._started:
            self._start()
        start = self.start_ts + self._k * self.duration
        if self._done or (self.end is not None and start >= self.end):
            return None
        stop = start + self.duration if self.end is None else min(start + self.duration, self.end)
        prm = sink[5]
        prm[_T0] = start + self._origin
        prm[_BIN] = 0
        prm[_DROPPED] = 0
        n = self._run(sink, stop + self._origin, _FLUSH[name])
        self._k += 1
        if self._pos >= self._n_words or not self._more_events():
            self._done = True
        return n

    @staticmethod
    def dropped(sink) -> int:
        """Events of the last window dropped because their time was outside it."""
        return int(sink[5][_DROPPED])

    def close(self) -> None:
        self._file.close()
