"""Whole-file RAW decoding on several threads (:meth:`evstream.io.raw.RawReader.read_all`;
:meth:`~evstream.io.raw.RawReader.read_first` decodes the words of the first events the same
way).

The file's words are cut into parts at seek-checkpoint boundaries, one per thread. Part 0 is
decoded on the calling thread from the start of the file. Part k > 0 is decoded on a thread of
its own by a fresh decoder, after a *lead-in*: the :data:`LEAD_IN_WORDS` words before the part
(more when they hold no TIME_HIGH), whose events are thrown away. A fresh decoder skips words
up to the first TIME_HIGH, and every state a decoder carries from word to word (the row, vector
base and polarity of EVT 3.0; EVT 2.x has none) is set again by later words; only the time base
depends on the words before the lead-in, through the number of time-base wraps. So after the
lead-in the part's decoder agrees with one that has decoded the whole file before the part, up
to its counters and a whole number of wraps.

That is checked, not assumed (:meth:`~evstream.io._decoder_base.WordDecoder.rebased`): once
part k - 1 is done, its end state is compared with part k's start state. When they agree, part
k's events are moved right behind part k - 1's (their times moved by the wraps, in the same
pass), and its checkpoints, counters and triggers are rebased. When they do not (a lead-in that
sets no row, or no TIME_HIGH before the part), or when a part's events overflow its output
region, the reader goes on decoding on one thread from the start of that part: the result is
the same, only slower.

Each part decodes into its own region of one output array. With the file's seek index complete
(a second read), the regions are exact and nothing moves; else they are sized from the reader's
events-per-word estimate with a margin, and the only extra pass over the events is the move (in
place, of memory already written).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numba import njit

from ._decoder_base import ST_BASE
from .dtypes import EventCD, EventExtTrigger
from .raw_stream import TRIGGER_BUFFER, RawDecodeStream, RawIndex
from .reader import assign_records, copy_records

#: threads :meth:`RawReader.read_all` decodes on: None = one per CPU this process may use, at
#: most :data:`MAX_THREADS`; 1 decodes on the calling thread only
READ_ALL_THREADS: int | None = None
MAX_THREADS = 8
#: words a part holds at least (smaller files are decoded on one thread)
MIN_PART_WORDS = 1 << 20
#: words decoded before a part to bring its decoder's state in step (events thrown away), at
#: first: four times more each time until they hold a TIME_HIGH
LEAD_IN_WORDS = 1 << 16
#: output slots of a part: the estimate of its events times this, plus :data:`REGION_SLACK`
REGION_MARGIN = 1.1
REGION_SLACK = 1 << 16
#: events of the scratch array a part's last events are decoded into
TAIL_EVENTS = 1 << 12
#: events of the scratch array a part is decoded into when its events are only counted
COUNT_EVENTS = 1 << 16


def read_all_threads() -> int:
    """Threads a whole-file read decodes on (:data:`READ_ALL_THREADS`)."""
    if READ_ALL_THREADS is not None:
        return max(1, int(READ_ALL_THREADS))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, MAX_THREADS))


@dataclass
class Part:
    """Words ``[start, stop)`` of the file, decoded into output slots ``[region, region + room)``."""
    start: int
    stop: int
    region: int = 0
    room: int = 0


def plan_parts(n_words: int, words_per_checkpoint: int, threads: int) -> list[Part]:
    """The parts a file of ``n_words`` words is decoded in, ``threads`` at most, each starting at
    a checkpoint and holding at least :data:`MIN_PART_WORDS` words; [] when fewer than two."""
    k = min(threads, n_words // MIN_PART_WORDS)
    if k < 2:
        return []
    cp = words_per_checkpoint
    starts = sorted({round(n_words * i / k / cp) * cp for i in range(k)})
    if len(starts) < 2:                  # checkpoints too far apart for two parts
        return []
    return [Part(a, b) for a, b in zip(starts, starts[1:] + [n_words])]


def _place(parts: list[Part], index: RawIndex, n_words: int, events_hint: int) -> int:
    """Give each part its output region; return the output size. With ``index`` complete, the
    regions are exact (the events before each checkpoint are known) and nothing moves after;
    else each is sized from ``events_hint`` (the file's events, estimated) with
    :data:`REGION_MARGIN` and :data:`REGION_SLACK`."""
    cp = index.words_per_checkpoint
    region = 0
    for part in parts:
        if index.complete:
            part.region = index.events_before[part.start // cp]
            stop = index.events_before[part.stop // cp] if part.stop < n_words else index.total_events
            part.room = stop - part.region
        else:
            part.region = region
            part.room = int(events_hint * (part.stop - part.start) / n_words * REGION_MARGIN) + \
                REGION_SLACK
        region = part.region + part.room
    return region


@dataclass
class _Decoded:
    """What decoding one part gave (times and counts relative to its own start state)."""
    start_state: np.ndarray
    end_state: np.ndarray
    n_events: int
    index: RawIndex
    last_raw_t: int                 # raw time of the last event, -1 if none
    triggers: list[np.ndarray]


def _decode_part(stream: RawDecodeStream, out: np.ndarray | None, t_shift: int) -> _Decoded | None:
    """Decode ``stream`` to its end into ``out`` (its region); None when the events do not fit.
    ``out`` None: into a scratch array, over and over (the events are only counted).

    The decoder stops short of a region's last few slots (a word may write up to
    ``max_events_per_word``), so the last events go through a scratch array and are copied."""
    triggers: list[np.ndarray] = []

    def keep(tr: np.ndarray) -> None:
        triggers.append(copy_records(tr))
    start_state = stream.decoder.get_state()
    n = 0
    if out is not None and len(out) >= stream.decoder.max_events_per_word:
        n = stream.decode_into(out, keep, _ignore, t_shift)
    scratch = None
    while stream.word_pos < stream.n_words:
        if scratch is None:
            scratch = np.empty(TAIL_EVENTS if out is not None else COUNT_EVENTS, dtype=EventCD)
        m = stream.decode_into(scratch, keep, _ignore, t_shift)
        if out is not None:
            if m > len(out) - n:
                return None
            assign_records(out[n:n + m], scratch[:m])
        n += m
    return _Decoded(start_state, stream.decoder.get_state(), n, stream.index, stream.last_raw_t,
                    triggers)


def _ignore(dropped: int) -> None:
    """Out-of-bounds reports of a part (the joined state's counter is reported once)."""


def _lead_in(stream: RawDecodeStream, start: int) -> None:
    """Decode the words before word ``start`` with ``stream``'s decoder, from a fresh state,
    throwing the events away: the last :data:`LEAD_IN_WORDS`, or four times more each time until
    they hold a TIME_HIGH word (or reach the start of the file)."""
    decoder = stream.decoder
    scratch = np.empty(1 << 14, dtype=EventCD)
    triggers = np.empty(TRIGGER_BUFFER, dtype=EventExtTrigger)
    lead = LEAD_IN_WORDS
    while True:
        first = max(0, start - lead)
        words = np.fromfile(stream.path, dtype=decoder.word_dtype, count=start - first,
                            offset=stream.header.data_offset + first * stream.word_size)
        decoder.reset()
        pos = 0
        while pos < len(words):
            pos += decoder.decode(words[pos:], scratch, triggers)[0]
        if decoder.first_time_base >= 0 or first == 0:
            return
        lead *= 4


@njit(cache=True, nogil=True)
def move_events(flat: np.ndarray, src: int, dst: int, n: int, dt: int) -> None:
    """Move events ``[src, src + n)`` of an EventCD output (viewed as int64, two per event) to
    ``[dst, dst + n)``, ``dst <= src``, adding ``dt`` µs to their times."""
    for k in range(n):
        flat[2 * (dst + k)] = flat[2 * (src + k)]
        flat[2 * (dst + k) + 1] = flat[2 * (src + k) + 1] + dt


def decode_parts(main: RawDecodeStream, parts: list[Part], events_hint: int, new_decoder: Callable,
                 t_shift: int, keep_triggers: Callable[[np.ndarray], None]) -> tuple[np.ndarray, int]:
    """Decode ``parts`` of ``main``'s file in parallel into one output, sized from
    ``events_hint`` (the file's events, estimated); return it and the number of events at its
    start that follow the file order.

    ``main`` (at the start of the file) ends where those events end: at the end of the file
    (its index complete), or where a part could not be joined, its decoder in the state there
    and its index holding every checkpoint before, so that decoding can go on from there. Times
    are raw minus ``t_shift`` µs; triggers go to ``keep_triggers`` in file order."""
    out = np.empty(_place(parts, main.index, main.n_words, events_hint), dtype=EventCD)
    return out, _run(main, parts, new_decoder, t_shift, keep_triggers, out)


def index_parts(main: RawDecodeStream, parts: list[Part], new_decoder: Callable) -> int:
    """Decode ``parts`` of ``main``'s file in parallel only to fill ``main``'s seek index (the
    events are counted, not kept); ``main`` ends as in :func:`decode_parts`. Returns the number
    of events before where it ends."""
    return _run(main, parts, new_decoder, 0, lambda triggers: None, None)


def _run(main: RawDecodeStream, parts: list[Part], new_decoder: Callable, t_shift: int,
         keep_triggers: Callable[[np.ndarray], None], out: np.ndarray | None) -> int:
    cp = main.index.words_per_checkpoint
    streams = []
    for part in parts:
        index = RawIndex(cp, first_checkpoint=part.start // cp)
        streams.append(RawDecodeStream(main.path, main.header, part.stop, index, new_decoder(),
                                       word_pos=part.start))

    def region(k: int) -> np.ndarray | None:
        return None if out is None else out[parts[k].region:][:parts[k].room]
    try:
        with ThreadPoolExecutor(max_workers=len(parts) - 1) as pool:
            def later(k: int) -> _Decoded | None:
                _lead_in(streams[k], parts[k].start)
                return _decode_part(streams[k], region(k), t_shift)
            futures = [pool.submit(later, k) for k in range(1, len(parts))]
            decoded = [_decode_part(streams[0], region(0), t_shift)]
            decoded += [f.result() for f in futures]
    finally:
        for s in streams:
            s.close()
    return _join(main, parts, decoded, out, keep_triggers)


def _join(main: RawDecodeStream, parts: list[Part], decoded: list[_Decoded | None],
          out: np.ndarray | None, keep_triggers: Callable[[np.ndarray], None]) -> int:
    """Put the parts' events (in ``out``, unless None) in file order behind each other, as long
    as each agrees with the one before, and bring ``main`` to where they end; return their
    number."""
    decoder = main.decoder
    cp = main.index.words_per_checkpoint
    n, last_t, pos = 0, -1, 0
    true_state = decoder.get_state()             # at the start of the file
    for k, (part, d) in enumerate(zip(parts, decoded)):
        if d is None or (k and decoder.rebased(d.start_state, d.start_state, true_state) is None):
            break

        def rebase(state, start=d.start_state, true_start=true_state, first=k == 0):
            return state if first else decoder.rebased(state, start, true_start)
        dt = int(rebase(d.start_state)[ST_BASE] - d.start_state[ST_BASE])   # whole wraps
        if out is not None and (part.region != n or dt):
            move_events(out.view(np.int64), part.region, n, d.n_events, dt)
        for c, state in enumerate(d.index.states):
            lt = d.index.last_t_before[c]
            main.index.record((d.index.first_checkpoint + c) * cp, rebase(state),
                              n + d.index.events_before[c], lt + dt if lt >= 0 else last_t)
        for tr in d.triggers:
            tr["t"] += dt
            keep_triggers(tr)
        if d.n_events:
            if main.index.first_raw_t < 0:
                main.index.first_raw_t = d.index.first_raw_t + dt
            last_t = d.last_raw_t + dt
        n += d.n_events
        true_state = rebase(d.end_state)
        pos = part.stop
    decoder.set_state(true_state)
    main.start_at(pos, n, last_t)
    return n
