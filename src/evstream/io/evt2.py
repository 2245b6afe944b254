"""EVT 2.0 decoder (32-bit little-endian words; docs/formats.md §5).

Word layout (type = bits 31–28)::

    0x0 CD_OFF / 0x1 CD_ON  bits 27–22 time LSBs (6), 21–11 x (11), 10–0 y (11); p = type & 1
    0x8 EVT_TIME_HIGH       bits 27–0 = time bits 33–6
    0xA EXT_TRIGGER         bits 27–22 time LSBs, 12–8 channel id (5), bit 0 value
    0xD IMU, 0xE OTHERS, 0xF CONTINUED, other values reserved: ignored, counted in ``skipped_words``

Rules of OpenEB's standalone EVT 2.0 decoder: words before the first TIME_HIGH are skipped
(counted in ``words_before_time_high``); the first TIME_HIGH sets ``base = payload << 6``; each
later one sets ``base = loops * 2^34 + payload << 6`` and counts a wrap (``+2^34``) when that is
below the previous base by at least ``(2^34 - 64) - (10 << 6)`` µs. ``t = base + LSBs`` (µs, raw,
no time shifting). CD events outside ``width x height`` are dropped and counted in ``out_of_bounds``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._decoder_base import (ST_BASE, ST_LOOPS, ST_OOB, ST_SKIPPED, ST_STARTED, ST_WORDS_BEFORE,
                            WordDecoder, start_time_base, store_common_state, time_high_update)

PERIOD = 1 << 34                                         #: µs covered by the 34-bit time
WRAP_THRESHOLD = (((1 << 28) - 1) << 6) - (10 << 6)      #: 17,179,868,480 µs


#: words below this value are CD words (type 0x0 or 0x1)
CD_WORD_LIMIT = 0x2 << 28


@njit(cache=True)
def decode_cd_run(words, flat, base, width, height, t_stop, t_shift):
    """Fast path of :func:`evt2_machine` for a run of CD words (type 0x0 / 0x1) under one
    time base: write ``words[k]`` as event ``k`` of ``flat`` (an ``int64[N, 2]`` output
    flattened, ``2 * len(words)`` slots) and return True when every event lies inside ``width x
    height`` and, with ``t_stop`` (raw µs), before it; else return False (the slots written are then
    garbage, for the per-word path to overwrite). No branch and no loop-carried state: numba
    vectorises it."""
    stray = False
    for k in range(len(words)):
        w = np.int64(words[k])
        x = (w >> 11) & 0x7FF
        y = w & 0x7FF
        t = base + ((w >> 22) & 0x3F)
        stray |= (x >= width) | (y >= height)
        if t_stop is not None:
            stray |= t >= t_stop
        flat[2 * k] = x | (y << 16) | ((w >> 28) << 32)
        flat[2 * k + 1] = t - t_shift
    return not stray


@njit(cache=True, nogil=True)
def evt2_machine(words, ev, tr, st, width, height, t_stop, t_shift=0):
    """The EVT 2.0 state machine. ``ev`` int64[N, 2], ``tr`` int64[M, 3], ``st`` int64 state;
    ``t_shift`` µs are subtracted from the times written (the state stays in raw time).

    ``t_stop``: None, or a raw time (µs): decoding then stops before the first CD word inside
    the geometry whose time is ``>= t_stop`` (that word is not consumed: the readers' window
    rule, the first event written at or past the window end), and the next call goes on from there (one window at a time,
    :mod:`evstream.preprocessing.fused`). numba compiles the None case without the check."""
    n = words.shape[0]
    i = 0
    ne = 0
    nt = 0
    if st[ST_STARTED] == 0:
        while i < n and (words[i] >> 28) != 0x8:
            i += 1
        if i == n:
            st[ST_WORDS_BEFORE] += i
            return i, 0, 0
        base = np.int64(words[i] & 0x0FFFFFFF) << 6
        start_time_base(st, i, base)
        i += 1

    base = st[ST_BASE]
    loops = st[ST_LOOPS]
    skipped = st[ST_SKIPPED]
    oob = st[ST_OOB]
    flat = ev.reshape(-1)
    slow_until = 0      # words before it go through the per-word path (a run with a stray event)
    while i < n:
        # words decodable without capacity checks (<= 1 event, <= 1 trigger each)
        block = min(ev.shape[0] - ne, tr.shape[0] - nt, n - i)
        if block <= 0:
            break
        end = i + block
        while i < end:
            # a run of CD words (unsigned indices: no negative-index fix-up in the scan)
            if i >= slow_until and words[np.uint64(i)] < CD_WORD_LIMIT:
                j = i + 1
                while j < end and words[np.uint64(j)] < CD_WORD_LIMIT:
                    j += 1
                if decode_cd_run(words[i:j], flat[2 * ne:2 * (ne + j - i)], base, width, height,
                                 t_stop, t_shift):
                    ne += j - i
                    i = j
                    continue
                slow_until = j
            w = np.int64(words[i])
            i += 1
            typ = w >> 28
            if typ <= 1:                                     # CD_OFF / CD_ON
                x = (w >> 11) & 0x7FF
                y = w & 0x7FF
                if t_stop is not None:
                    if base + ((w >> 22) & 0x3F) >= t_stop and x < width and y < height:
                        i -= 1                               # window end: this word is next
                        n = i
                        break
                ev[ne, 0] = x | (y << 16) | (typ << 32)
                ev[ne, 1] = base + ((w >> 22) & 0x3F) - t_shift
                if x < width and y < height:
                    ne += 1
                else:
                    oob += 1
            elif typ == 0x8:                                 # EVT_TIME_HIGH
                base, loops = time_high_update(base, loops, (w & 0x0FFFFFFF) << 6, PERIOD,
                                               WRAP_THRESHOLD)
            elif typ == 0xA:                                 # EXT_TRIGGER
                tr[nt, 0] = w & 1
                tr[nt, 1] = base + ((w >> 22) & 0x3F) - t_shift
                tr[nt, 2] = (w >> 8) & 0x1F
                nt += 1
            else:                                            # IMU, OTHERS, CONTINUED, reserved
                skipped += 1

    store_common_state(st, base, loops, skipped, oob, nt)
    return i, ne, nt


class Evt2Decoder(WordDecoder):
    """Stateful EVT 2.0 word decoder; see the module docstring for the word layout and rules.

    Args:
        width, height: sensor size in pixels (1..65536); CD events outside are dropped and
            counted in ``counters['out_of_bounds']``.
    """

    word_dtype = np.dtype("<u4")
    max_events_per_word = 1
    time_period = PERIOD

    stops_at_time = True

    def _run(self, words, ev, tr, t_shift, t_stop):
        return evt2_machine(words, ev, tr, self._state, self.width, self.height, t_stop, t_shift)
