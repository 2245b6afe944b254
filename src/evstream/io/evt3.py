"""EVT 3.0 decoder (16-bit words, stateful; docs/formats.md §7).

Word layout (type = bits 15–12)::

    0x0 EVT_ADDR_Y    bits 10–0 y (bit 11 system type, ignored); selects CD
    0x1 EM_ADDR_Y     y of exposure-measurement events; selects EM (X / vector words emit nothing)
    0x2 EVT_ADDR_X    bits 10–0 x, bit 11 polarity -> one CD event (x, y, p, t)
    0x3 VECT_BASE_X   bits 10–0 base x, bit 11 polarity of the following vectors
    0x4 VECT_12       bits 11–0 validity: event at base_x + i per set bit; base_x += 12
    0x5 VECT_8        bits 7–0 validity; base_x += 8
    0x6 EVT_TIME_LOW  bits 11–0 = time bits 11–0:  t = base + payload (never infers a wrap)
    0x8 EVT_TIME_HIGH bits 11–0 = time bits 23–12: base = loops*2^24 + payload << 12, with wrap
                      detection (threshold 10 << 12); t = base (time low reset to 0)
    0xA EXT_TRIGGER   bit 0 value, bits 11–8 channel id -> trigger (value, t, id)
    0x7, 0x9 (0x9999 padding), 0xB–0xF   ignored, counted in ``skipped_words``

Rules of OpenEB's standalone EVT 3.0 decoder: every word before the first TIME_HIGH is skipped
(counted in ``words_before_time_high``); after it the state starts at y = 0, class CD, base_x = 0,
vector polarity 0 (interpretation: the rules only say no state is taken from earlier words).
Time ``t = loops * 2^24 + (TIME_HIGH << 12) + TIME_LOW`` in µs, raw (no time shifting).
CD events outside ``width x height`` are dropped and counted in ``out_of_bounds``; X / vector
events while the class is EM are counted in ``em_events``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._decoder_base import (ST_BASE, ST_FORMAT, ST_LOOPS, ST_OOB, ST_SKIPPED, ST_STARTED,
                            ST_WORDS_BEFORE, WordDecoder, emit_mask, popcount, start_time_base,
                            store_common_state, time_high_update, trailing_zeros)

PERIOD = 1 << 24                          #: µs covered by the 24-bit time base
WRAP_THRESHOLD = (4095 << 12) - (10 << 12)  #: 16,732,160 µs

# format-specific state slots
_T = ST_FORMAT          # current time (µs)
_Y = ST_FORMAT + 1      # current y
_EM = ST_FORMAT + 2     # 1 while the class is EM (after EM_ADDR_Y)
_BX = ST_FORMAT + 3     # vector base x
_POL = ST_FORMAT + 4    # vector polarity
_EM_EVENTS = ST_FORMAT + 5
_N_STATE = ST_FORMAT + 6


@njit(cache=True, inline="always")
def emit_mask_branch_free(flat, ne, mask, first, t):
    """Write one event per set bit ``i`` of the 12-bit ``mask``, lowest first, as events
    ``ne, ne + 1, ...`` of ``flat`` (the ``int64[N, 2]`` output flattened):
    column 0 ``first + i`` (``first`` = base x already packed with ``y << 16 | p << 32``),
    column 1 ``t``; return the new ``ne``. Slots are written four at a time whatever the bit
    count, which only decides whether the other eight follow (so a vector with up to
    four bits, the common case, costs no data-dependent branch); slots up to ``ne + 11`` may be
    written, the ones past the returned ``ne`` with garbage."""
    count = popcount(mask)
    m = mask | 0x1000                      # bit 12 stops trailing_zeros past the last bit
    for k in range(4):
        flat[np.uint64(2 * (ne + k))] = first + trailing_zeros(m)
        flat[np.uint64(2 * (ne + k) + 1)] = t
        m &= m - 1
    if count > 4:
        for k in range(4, 12):
            flat[np.uint64(2 * (ne + k))] = first + trailing_zeros(m)
            flat[np.uint64(2 * (ne + k) + 1)] = t
            m &= m - 1
    return ne + count


@njit(cache=True, nogil=True)
def evt3_machine(words, ev, tr, st, width, height, t_stop, t_shift=0):
    """The EVT 3.0 state machine. ``ev`` int64[N, 2], ``tr`` int64[M, 3], ``st`` int64 state;
    ``t_shift`` µs are subtracted from the times written (``ts``; the state stays in raw time).

    ``t_stop``: None, or a raw time (µs): decoding then stops before the first word that would
    write an event with ``t >= t_stop`` (that word is not consumed), the rule by which the
    readers end a window (the first event, in file order, at or past its end; time words may
    step back, as real files' TIME_LOW words do), so the next call goes on from there (one
    window at a time, :mod:`evstream.preprocessing.fused`). numba compiles the None case
    without the checks."""
    n = words.shape[0]
    ev_cap = ev.shape[0]
    tr_cap = tr.shape[0]
    i = 0
    ne = 0
    nt = 0
    # ---- words before the first TIME_HIGH: skipped, no state taken from them
    if st[ST_STARTED] == 0:
        while i < n and (words[i] >> 12) != 0x8:
            i += 1
        if i == n:
            st[ST_WORDS_BEFORE] += i
            return i, 0, 0
        base = np.int64(words[i] & 0xFFF) << 12
        start_time_base(st, i, base)
        st[_T] = base
        i += 1

    base = st[ST_BASE]
    loops = st[ST_LOOPS]
    bx = st[_BX]
    skipped = st[ST_SKIPPED]
    oob = st[ST_OOB]
    em_events = st[_EM_EVENTS]
    # x_limit: an ADDR_X event is kept iff x < x_limit; it also stands for the class and the
    # row (fewer live variables, fewer register spills): width (CD, y in bounds), 0 (CD, y out
    # of bounds), -1 (EM); y and the vector polarity are kept only in their packed places
    x_limit = -1 if st[_EM] != 0 else (width if st[_Y] < height else 0)
    hi_y = st[_Y] << 16
    hi_pol = st[_POL] << 32
    ts = st[_T] - t_shift            # current time, shifted
    base_s = base - t_shift
    ts_stop = 0 if t_stop is None else t_stop - t_shift
    # hot stores go through the flat view with unsigned indices (event k in slots 2k, 2k + 1):
    # numba then emits neither the stride multiply nor the negative-index fix-up
    flat = ev.reshape(-1)
    # x_limit of each 11-bit row (width inside the sensor, 0 outside), which ADDR_Y loads: one
    # load in place of a compare with the height, which numba kept on the stack (by hand, the
    # kernel alone on an AMD EPYC, 6 alternated runs of best of 7: tiled median 292 -> 311 Mev/s,
    # synthetic row runs 331 -> 336); building it costs about 0.3 µs a call
    row_limit = np.zeros(2048, np.int64)
    row_limit[:min(height, 2048)] = width
    while i < n:
        # words that can be decoded without any capacity check (<= 12 events, <= 1 trigger each)
        block = min((ev_cap - ne) // 12, tr_cap - nt, n - i)
        if block <= 0:
            break
        end = i + block
        while i < end:
            # hot loop, the words of nearly every stream: ADDR_X and ADDR_Y (one branch-free
            # path: the X / Y alternation of real recordings costs no misprediction),
            # TIME_LOW, VECT_BASE_X and vectors wholly inside the sensor's row; it uses few
            # variables, so they stay in registers. Any other word (or one at t_stop) leaves it
            while i < end:
                w = np.int64(words[np.uint64(i)])
                typ = w >> 12
                if (typ & 0xD) == 0:                      # EVT_ADDR_X / EVT_ADDR_Y
                    is_x = typ >> 1
                    v = w & 0x7FF
                    if t_stop is not None:
                        if ts >= ts_stop and is_x and x_limit > 0 and v < width:
                            break
                    flat[np.uint64(2 * ne)] = v | hi_y | (((w >> 11) & 1) << 32)
                    flat[np.uint64(2 * ne + 1)] = ts
                    kept = is_x & (v < x_limit)
                    ne += kept
                    if is_x != kept:
                        if x_limit < 0:
                            em_events += 1
                        else:
                            oob += 1
                    # ADDR_Y sets the row; masks, not conditionals, which numba would compile
                    # into a branch the X / Y alternation mispredicts
                    on_y = is_x - 1                             # all ones on ADDR_Y, else 0
                    x_limit = (x_limit & ~on_y) | (row_limit[np.uint64(v)] & on_y)
                    hi_y = (hi_y & ~on_y) | ((v << 16) & on_y)
                elif typ == 0x6:                          # EVT_TIME_LOW
                    ts = base_s + (w & 0xFFF)
                elif typ == 0x3:                          # VECT_BASE_X
                    bx = w & 0x7FF
                    hi_pol = ((w >> 11) & 1) << 32
                elif (typ == 0x4 or typ == 0x5) and x_limit > 0 and bx + 12 <= width:  # in-row
                    nbits = 12 - ((typ & 1) << 2)
                    mask = w & ((1 << nbits) - 1)
                    if t_stop is not None:
                        if ts >= ts_stop and mask:
                            break
                    ne = emit_mask_branch_free(flat, ne, mask, bx | hi_y | hi_pol, ts)
                    bx += nbits
                else:
                    break
                i += 1
            if i >= end:
                break
            w = np.int64(words[np.uint64(i)])           # the word that left the hot loop
            typ = w >> 12
            if typ == 0x4 or typ == 0x5:                # VECT_12 / VECT_8 at the row's edge,
                nbits = 12 if typ == 0x4 else 8         # outside the sensor, EM, or at t_stop
                mask = w & ((1 << nbits) - 1)
                if t_stop is not None:
                    if ts >= ts_stop and x_limit > 0 and bx < width and \
                            mask & ((1 << min(nbits, width - bx)) - 1):
                        n = i                           # window end: this word is next
                        break
                if x_limit > 0:
                    ne, o = emit_mask(ev, ne, mask, nbits, bx, hi_y | hi_pol, ts, width)
                    oob += o
                else:
                    c = popcount(mask)
                    if x_limit == 0:
                        oob += c
                    else:
                        em_events += c
                bx += nbits
            elif typ == 0x2:                            # only at t_stop: the window ends
                n = i                                   # before this word
                break
            elif typ == 0x8:                            # EVT_TIME_HIGH
                base, loops = time_high_update(base, loops, (w & 0xFFF) << 12, PERIOD, WRAP_THRESHOLD)
                base_s = base - t_shift
                ts = base_s
            elif typ == 0x1:                            # EM_ADDR_Y
                x_limit = -1
                hi_y = (w & 0x7FF) << 16
            elif typ == 0xA:                            # EXT_TRIGGER
                tr[nt, 0] = w & 1
                tr[nt, 1] = ts
                tr[nt, 2] = (w >> 8) & 0xF
                nt += 1
            else:                                       # 0x7, 0x9, 0xB-0xF: ignored
                skipped += 1
            i += 1

    st[_T] = ts + t_shift
    st[_Y] = hi_y >> 16
    st[_EM] = 1 if x_limit < 0 else 0
    st[_BX] = bx
    st[_POL] = hi_pol >> 32
    st[_EM_EVENTS] = em_events
    store_common_state(st, base, loops, skipped, oob, nt)
    return i, ne, nt


class Evt3Decoder(WordDecoder):
    """Stateful EVT 3.0 word decoder; see the module docstring for the word layout and rules.

    Args:
        width, height: sensor size in pixels (1..65536); CD events outside are dropped and
            counted in ``counters['out_of_bounds']``.
    """

    word_dtype = np.dtype("<u2")
    max_events_per_word = 12
    _n_state = _N_STATE
    _extra_counters = {"em_events": _EM_EVENTS}
    _shift_offset = 4096
    time_period = PERIOD
    _time_slots = (ST_BASE, _T)

    stops_at_time = True

    def _run(self, words, ev, tr, t_shift, t_stop):
        return evt3_machine(words, ev, tr, self._state, self.width, self.height, t_stop, t_shift)
