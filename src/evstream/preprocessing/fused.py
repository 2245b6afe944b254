"""Fused RAW -> tensor path: EVT 3.0 and EVT 2.0 words decoded window by window straight into
``histo``, ``diff`` and ``stacked_histogram`` tensors, without materialising the EventCD window.

The state machine is the decoder's own (:func:`evstream.io.evt3.evt3_machine`,
:func:`evstream.io.evt2.evt2_machine`, with their ``t_stop`` argument set, so that they stop at a
window end). It decodes into a small EventCD
buffer (:data:`CHUNK_EVENTS` events, 512 KiB, so it stays in the L2 cache) and each full buffer
is handed, times made relative to the window start, to the registry function itself
(``reset=False``), which accumulates it into the window's tensor. The registry kernels update
cells one event at a time in array order, so feeding a window's events in consecutive pieces
gives the same tensor, bit for bit, as one call on the whole window (tested), for files whose
time does not go backwards (a backward TIME_HIGH or TIME_LOW, only seen in corrupt files, may
move an event into a neighbouring window; an event that would land before its window's start is
dropped and counted by the kernel, as in the unfused path).

What it saves: the window's EventCD array (16 bytes per event, allocated, first-touched, written
and read back from memory), the reader's buffer copies and the per-window time shift.

:class:`RawTensorChunks` plays a RAW file as consecutive windows of ``duration`` µs (the
``delta_t`` mode of :class:`evstream.data.cd_processor_iterator.CDProcessorIterator`), the same
windows as :class:`evstream.io.EventsIterator`: the decoder stops at the window end (EVT 3.0:
after the first time word at or after it; EVT 2.0: before the first CD word at or after it) and
resumes there for the next window.
"""

from __future__ import annotations

import numpy as np

from evstream.errors import ArgumentError, FileFormatError
from evstream.io._decoder_base import ST_OOB
from evstream.io.dtypes import EventCD, EventExtTrigger
from evstream.io.evt2 import evt2_machine
from evstream.io.evt3 import evt3_machine
from evstream.io.raw import RawReader
from evstream.io.raw_stream import TRIGGER_BUFFER, WORDS_PER_BLOCK
from evstream.preprocessing import kernels

#: the registry functions this path reproduces, by name
FUSED_FUNCTIONS = {"histo": kernels.histo, "diff": kernels.diff,
                   "stacked_histogram": kernels.stacked_histogram}
#: RAW encodings with a windowed state machine (``t_stop``), by header encoding name
MACHINES = {"evt3": evt3_machine, "evt2": evt2_machine}
#: events decoded per piece handed to the registry function (16 bytes each)
CHUNK_EVENTS = 1 << 15


def fusable(name: str, function) -> bool:
    """Whether the fused path reproduces the registry function ``function`` registered as
    ``name`` (the built-in histo, diff and stacked_histogram)."""
    return FUSED_FUNCTIONS.get(name) is function


class RawTensorChunks:
    """A RAW EVT 3.0 or EVT 2.0 file played as consecutive windows
    ``[start_ts + k·duration, ...)`` (reader time, µs) of ``duration`` µs, each window's events
    handed in pieces to an accumulator.

    Args:
        reader: an open :class:`~evstream.io.RawReader` of the file (EVT 3.0 / 2.0,
            ``out_of_bounds="warn"``); its header, time origin and seek index are used, and dropped
            out-of-sensor events are reported through it (same warning and running count).
        duration: window length (µs, integer >= 1).
        start_ts, max_duration: as :class:`~evstream.io.EventsIterator`.

    :meth:`next_window` returns None after the last window (the one that holds the file's last
    event, or the one reaching ``start_ts + max_duration``): the windows are those that
    ``EventsIterator(delta_t=duration)`` yields.
    """

    def __init__(self, reader: RawReader, duration: int, start_ts: int = 0,
                 max_duration: int | None = None):
        if reader.header.encoding not in MACHINES or reader.out_of_bounds != "warn":
            raise ArgumentError("RawTensorChunks needs an EVT 3.0 or EVT 2.0 RawReader with "
                                "out_of_bounds='warn'", reader.path)
        self._machine = MACHINES[reader.header.encoding]
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
        self._word_dtype = stream.decoder.word_dtype
        self._block = np.empty(min(WORDS_PER_BLOCK, max(self._n_words, 1)), self._word_dtype)
        self._block_start = self._block_stop = 0
        self._triggers = np.empty(TRIGGER_BUFFER, EventExtTrigger).view(np.int64).reshape(-1, 3)
        self._chunk = np.empty(CHUNK_EVENTS, EventCD)
        self._chunk_i64 = self._chunk.view(np.int64).reshape(-1, 2)
        self._peek = np.empty(12, EventCD).view(np.int64).reshape(-1, 2)
        self._pos = 0
        self._origin = 0
        self._k = 0
        self._done = False
        self._started = False

    def _words_at(self, pos: int) -> np.ndarray:
        """The words from ``pos`` to the end of the read block holding it."""
        if not (self._block_start <= pos < self._block_stop):
            n = min(len(self._block), self._n_words - pos)
            size = self._word_dtype.itemsize
            self._file.seek(self._data_offset + size * pos)
            got = self._file.readinto(self._block[:n])
            if got != size * n:
                raise FileFormatError(f"file shrank while reading: expected {size * n} bytes at word "
                                      f"{pos}, got {got}", self.reader.path)
            self._block_start, self._block_stop = pos, pos + n
        return self._block[pos - self._block_start:self._block_stop - self._block_start]

    def _run(self, t_stop: int, consume) -> int:
        """Decode from the position until the time reaches ``t_stop`` (raw µs) or the file ends,
        handing each decoded piece (EventCD, raw times) to ``consume`` (None: discard). Returns
        the number of events decoded."""
        st = self._decoder._state
        width, height = self._decoder.width, self._decoder.height
        out, total = self._chunk_i64, 0
        while self._pos < self._n_words:
            words = self._words_at(self._pos)
            consumed, ne, nt = self._machine(words, out, self._triggers, st, width, height, t_stop)
            if ne and consume is not None:
                consume(self._chunk[:ne])
            total += ne
            self._pos += consumed
            if consumed < len(words) and len(out) - ne >= 12 and nt < len(self._triggers):
                break                                   # stopped at t_stop
        reader = self.reader
        reader._report_out_of_bounds(int(st[ST_OOB]) - reader.out_of_bounds_count,
                                     reader.header.height, reader.header.width)
        return total

    def _more_events(self) -> bool:
        """Whether any event follows the position (decodes ahead on a copy of the state)."""
        state = self._decoder.get_state()
        pos = self._pos
        while pos < self._n_words:
            words = self._words_at(pos)
            consumed, ne, _ = self._machine(words, self._peek, self._triggers, state,
                                            self._decoder.width, self._decoder.height, None)
            if ne:
                return True
            pos += consumed
        return False

    def _start(self) -> None:
        """Position the decoder at ``start_ts`` (from the reader's nearest seek checkpoint)."""
        self._started = True
        self._origin = self.reader.origin
        index = self._index
        checkpoint = index.last_before_time(self.start_ts + self._origin) if self.start_ts else 0
        self._decoder.set_state(index.states[checkpoint])
        self._pos = checkpoint * index.words_per_checkpoint
        if self.start_ts:
            self._run(self.start_ts + self._origin, None)
        self._done = not self._more_events()

    def next_window(self, accumulate) -> tuple[int, int] | None:
        """Hand the next window's events to ``accumulate(events)`` (EventCD pieces, in file
        order, ``t`` relative to the window start), which returns how many it dropped. Returns
        ``(events decoded, events dropped by accumulate)``, or None when there is no next
        window."""
        if not self._started:
            self._start()
        start = self.start_ts + self._k * self.duration
        if self._done or (self.end is not None and start >= self.end):
            return None
        stop = start + self.duration if self.end is None else min(start + self.duration, self.end)
        t0 = start + self._origin
        dropped = 0

        def consume(piece):
            nonlocal dropped
            piece["t"] -= t0
            dropped += int(accumulate(piece) or 0)

        n = self._run(stop + self._origin, consume)
        self._k += 1
        if self._pos >= self._n_words or not self._more_events():
            self._done = True
        return n, dropped

    def close(self) -> None:
        self._file.close()
