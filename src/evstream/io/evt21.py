"""EVT 2.1 decoder (64-bit words; docs/formats.md §6).

Word layout, "little" layout (the 64-bit word read as a little-endian uint64; type = bits 63–60)::

    0x0 EVT_NEG / 0x1 EVT_POS  bits 59–54 time LSBs (6), 53–43 x (11), 42–32 y (11),
                               31–0 validity mask: bit i set -> OFF / ON event at (x + i, y)
    0x8 EVT_TIME_HIGH          bits 59–32 = time bits 33–6 (28 bits)
    0xA EXT_TRIGGER            bits 59–54 time LSBs, 44–40 channel id (5), bit 32 value
    0xE OTHERS, 0xF CONTINUED, reserved types: ignored, counted in ``skipped_words``

The "legacy" layout (IMX636 cameras: the word goes out as two little-endian 32-bit halves, the
half holding the type first) is the same word with its 32-bit halves swapped; the decoder swaps
them back (``legacy_word_order=True``). Which layout a file holds is chosen from its header by
:func:`evstream.io.header.evt21_layout`.

Rules (OpenEB): words before the first TIME_HIGH are skipped and counted in
``words_before_time_high``; ``t = (time_high << 6) + LSBs`` (raw µs); a TIME_HIGH loop
(+2^34 µs) is counted only when the previous time base minus the new one is at least
``((1 << 28) - 1) << 6`` µs (:data:`WRAP_THRESHOLD`, 10 TIME_HIGH periods larger than EVT 2.0's);
a smaller backwards step is a discrepancy: time goes backwards, no loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._decoder_base import (ST_BASE, ST_LOOPS, ST_OOB, ST_SKIPPED, ST_STARTED, ST_WORDS_BEFORE,
                            WordDecoder, emit_mask, start_time_base, store_common_state,
                            time_high_update)
from .evt2 import PERIOD

WRAP_THRESHOLD = ((1 << 28) - 1) << 6      #: 17,179,869,120 µs (EVT 2.0's + 10 << 6)


@njit(cache=True)
def _word(raw, legacy):
    """The 64-bit word (as a non-negative-safe int64 bit pattern) in its documented bit order."""
    w = np.int64(raw)
    if legacy:
        w = ((w & 0xFFFFFFFF) << 32) | ((w >> 32) & 0xFFFFFFFF)
    return w


@njit(cache=True, nogil=True)
def _decode_evt21(words, ev, tr, st, width, height, legacy, t_shift):
    """The EVT 2.1 state machine. ``ev`` int64[N, 2], ``tr`` int64[M, 3], ``st`` int64 state;
    ``t_shift`` µs are subtracted from the times written."""
    n = words.shape[0]
    i = 0
    ne = 0
    nt = 0
    if st[ST_STARTED] == 0:
        while i < n and ((_word(words[i], legacy) >> 60) & 0xF) != 0x8:
            i += 1
        if i == n:
            st[ST_WORDS_BEFORE] += i
            return i, 0, 0
        base = ((_word(words[i], legacy) >> 32) & 0x0FFFFFFF) << 6
        start_time_base(st, i, base)
        i += 1

    base = st[ST_BASE]
    loops = st[ST_LOOPS]
    skipped = st[ST_SKIPPED]
    oob = st[ST_OOB]
    while i < n:
        block = min((ev.shape[0] - ne) // 32, tr.shape[0] - nt, n - i)
        if block <= 0:
            break
        end = i + block
        while i < end:
            w = _word(words[i], legacy)
            i += 1
            typ = (w >> 60) & 0xF    # the arithmetic shift of a negative int64 is masked here
            if typ <= 1:                                     # EVT_NEG / EVT_POS
                x = (w >> 43) & 0x7FF
                y = (w >> 32) & 0x7FF
                mask = w & 0xFFFFFFFF
                t = base + ((w >> 54) & 0x3F) - t_shift
                if y < height:
                    ne, o = emit_mask(ev, ne, mask, 32, x, (y << 16) | (typ << 32), t, width)
                    oob += o
                else:
                    m = mask
                    while m:
                        m &= m - 1
                        oob += 1
            elif typ == 0x8:                                 # EVT_TIME_HIGH
                base, loops = time_high_update(base, loops, ((w >> 32) & 0x0FFFFFFF) << 6,
                                               PERIOD, WRAP_THRESHOLD)
            elif typ == 0xA:                                 # EXT_TRIGGER
                tr[nt, 0] = (w >> 32) & 1
                tr[nt, 1] = base + ((w >> 54) & 0x3F) - t_shift
                tr[nt, 2] = (w >> 40) & 0x1F
                nt += 1
            else:                                            # OTHERS, reserved
                skipped += 1

    store_common_state(st, base, loops, skipped, oob, nt)
    return i, ne, nt


class Evt21Decoder(WordDecoder):
    """Stateful EVT 2.1 word decoder; see the module docstring for the word layout and rules.

    Args:
        width, height: sensor size in pixels (1..65536); CD events outside are dropped and
            counted in ``counters['out_of_bounds']``.
        legacy_word_order: False: the "little" layout; True: the "legacy" layout (32-bit halves
            swapped), see the module docstring.
    """

    word_dtype = np.dtype("<u8")
    max_events_per_word = 32
    time_period = PERIOD

    def __init__(self, width: int, height: int, legacy_word_order: bool = False) -> None:
        super().__init__(width, height)
        self.legacy_word_order = bool(legacy_word_order)

    def _run(self, words, ev, tr, t_shift, t_stop):
        return _decode_evt21(words, ev, tr, self._state, self.width, self.height,
                             self.legacy_word_order, t_shift)
