"""The decoders' fast paths (DAT clean blocks, EVT 2.0 CD runs, EVT 3.0 vectors written four
slots at a time, the time shift applied by the kernels, windows decoded up to their end) give
exactly what a plain per-word / per-record reference written here from the format rules gives,
including the dropped-event counts, on streams built to switch between the fast and the general
paths (events outside the sensor inside runs, vectors at the right edge, rows outside the
sensor, EM rows, time words, triggers, ignored words)."""

from __future__ import annotations

import numpy as np
import pytest

from evstream.io import DatWriter, EventCD, EventExtTrigger, EventsIterator, RawReader
from evstream.io import dat as dat_module
from evstream.io.evt2 import PERIOD as EVT2_PERIOD
from evstream.io.evt2 import WRAP_THRESHOLD as EVT2_WRAP
from evstream.io.evt2 import Evt2Decoder
from evstream.io.evt3 import PERIOD as EVT3_PERIOD
from evstream.io.evt3 import WRAP_THRESHOLD as EVT3_WRAP
from evstream.io.evt3 import Evt3Decoder

from raw_files import row_run_events, triggers_every, write_raw

WIDTH, HEIGHT = 100, 60


# ---- references (one word at a time, from the module docstrings' rules) ----------------------
def ref_evt2(words, width, height, t_shift=0):
    """(events [(x, y, p, t)], triggers [(p, t, id)], out_of_bounds)."""
    started, base, loops, oob, ev, tr = False, 0, 0, 0, [], []
    for w in (int(v) for v in words):
        typ = w >> 28
        if not started:
            if typ == 0x8:
                started, base = True, (w & 0x0FFFFFFF) << 6
            continue
        if typ <= 1:
            x, y, t = (w >> 11) & 0x7FF, w & 0x7FF, base + ((w >> 22) & 0x3F)
            if x < width and y < height:
                ev.append((x, y, typ, t - t_shift))
            else:
                oob += 1
        elif typ == 0x8:
            new = ((w & 0x0FFFFFFF) << 6) + loops * EVT2_PERIOD
            if base > new and base - new >= EVT2_WRAP:
                new, loops = new + EVT2_PERIOD, loops + 1
            base = new
        elif typ == 0xA:
            tr.append((w & 1, base + ((w >> 22) & 0x3F) - t_shift, (w >> 8) & 0x1F))
    return ev, tr, oob


def ref_evt3(words, width, height, t_shift=0):
    """(events [(x, y, p, t)], triggers [(p, t, id)], out_of_bounds, em_events)."""
    started, base, loops, t, y, em, bx, pol = False, 0, 0, 0, 0, False, 0, 0
    oob = em_events = 0
    ev, tr = [], []

    def cd(x, p):
        nonlocal oob, em_events
        if em:
            em_events += 1
        elif x < width and y < height:
            ev.append((x, y, p, t - t_shift))
        else:
            oob += 1

    for w in (int(v) for v in words):
        typ = w >> 12
        if not started:
            if typ == 0x8:
                started, base = True, (w & 0xFFF) << 12
                t = base
            continue
        if typ == 0x0:
            y, em = w & 0x7FF, False
        elif typ == 0x1:
            y, em = w & 0x7FF, True
        elif typ == 0x2:
            cd(w & 0x7FF, (w >> 11) & 1)
        elif typ == 0x3:
            bx, pol = w & 0x7FF, (w >> 11) & 1
        elif typ in (0x4, 0x5):
            nbits = 12 if typ == 0x4 else 8
            for i in range(nbits):
                if (w >> i) & 1:
                    cd(bx + i, pol)
            bx += nbits
        elif typ == 0x6:
            t = base + (w & 0xFFF)
        elif typ == 0x8:
            new = ((w & 0xFFF) << 12) + loops * EVT3_PERIOD
            if base > new and base - new >= EVT3_WRAP:
                new, loops = new + EVT3_PERIOD, loops + 1
            base = t = new
        elif typ == 0xA:
            tr.append((w & 1, t - t_shift, (w >> 8) & 0xF))
    return ev, tr, oob, em_events


# ---- word streams that switch between the fast and the general paths ------------------------
def evt2_words(rng, n):
    words = [0x8 << 28 | 5]
    th = 5
    while len(words) < n:
        run = int(rng.integers(1, 40))
        for _ in range(run):
            x = int(rng.integers(0, WIDTH + (3 if rng.random() < 0.05 else 0)))
            y = int(rng.integers(0, HEIGHT + (3 if rng.random() < 0.05 else 0)))
            words.append(int(rng.integers(0, 2)) << 28 | int(rng.integers(0, 64)) << 22
                         | x << 11 | y)
        r = rng.random()
        if r < 0.6:
            th += int(rng.integers(0, 3))
            words.append(0x8 << 28 | th)
        elif r < 0.7:
            words.append(0xA << 28 | int(rng.integers(0, 64)) << 22 | int(rng.integers(0, 32)) << 8
                         | int(rng.integers(0, 2)))
        elif r < 0.8:
            words.append(int(rng.choice([0xD, 0xE, 0xF, 0x3])) << 28 | int(rng.integers(0, 1 << 20)))
    return np.array(words, dtype="<u4")


def evt3_words(rng, n):
    words = [0x8000 | 3]
    th = 3
    while len(words) < n:
        r = rng.random()
        if r < 0.25:       # a row: inside, outside the sensor, or an EM row
            y = int(rng.integers(0, HEIGHT + (4 if rng.random() < 0.1 else 0)))
            words.append((0x1000 if rng.random() < 0.05 else 0x0000) | y)
        elif r < 0.45:     # single events, some past the right edge
            words.append(0x2000 | int(rng.integers(0, 2)) << 11 | int(rng.integers(0, WIDTH + 6)))
        elif r < 0.75:     # a base x then vectors, often reaching the right edge
            words.append(0x3000 | int(rng.integers(0, 2)) << 11 | int(rng.integers(0, WIDTH + 4)))
            for _ in range(int(rng.integers(1, 4))):
                bits = int(rng.choice([0, 1, 2, 4, 5, 8, 11, 12]))
                mask = sum(1 << int(b) for b in rng.choice(12, size=bits, replace=False))
                words.append((0x4000 if rng.random() < 0.6 else 0x5000) | mask)
        elif r < 0.88:
            words.append(0x6000 | int(rng.integers(0, 4096)))
        elif r < 0.94:
            th += int(rng.integers(0, 2))
            words.append(0x8000 | th)
        elif r < 0.97:
            words.append(0xA000 | int(rng.integers(0, 16)) << 8 | int(rng.integers(0, 2)))
        else:
            words.append(int(rng.choice([0x7, 0x9, 0xB, 0xF])) << 12 | int(rng.integers(0, 4096)))
    return np.array(words, dtype="<u2")


def decode(decoder, words, ev_cap, t_shift=0, t_stop=None):
    """All of ``words`` through ``decoder`` with an output of ``ev_cap`` events per call (or
    until ``t_stop``): (events as tuples, triggers as tuples, words consumed)."""
    ev = np.zeros(ev_cap, EventCD)
    tr = np.zeros(7, EventExtTrigger)
    events, triggers, pos = [], [], 0
    while pos < len(words):
        nw, ne, nt = decoder.decode(words[pos:], ev, tr, t_shift, t_stop)
        events += [tuple(int(v) for v in e) for e in ev[:ne]]
        triggers += [tuple(int(v) for v in e) for e in tr[:nt]]
        pos += nw
        if nw == 0 or (t_stop is not None and ne < ev_cap - decoder.max_events_per_word
                       and nt < len(tr) and pos < len(words)):
            break
    return events, triggers, pos


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ev_cap", [12, 50, 1 << 14])
def test_evt2_matches_the_reference(seed, ev_cap):
    words = evt2_words(np.random.default_rng(seed), 3000)
    ev, tr, oob = ref_evt2(words, WIDTH, HEIGHT, t_shift=300)
    assert oob > 0 and len(ev) > 1000 and tr          # the stream exercises both paths
    d = Evt2Decoder(WIDTH, HEIGHT)
    got, gtr, _ = decode(d, words, ev_cap, t_shift=300)
    assert got == ev and gtr == tr and d.counters["out_of_bounds"] == oob


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ev_cap", [12, 50, 1 << 14])
def test_evt3_matches_the_reference(seed, ev_cap):
    words = evt3_words(np.random.default_rng(seed), 3000)
    ev, tr, oob, em = ref_evt3(words, WIDTH, HEIGHT, t_shift=-4096)
    assert oob > 0 and em > 0 and len(ev) > 1000 and tr
    d = Evt3Decoder(WIDTH, HEIGHT)
    got, gtr, _ = decode(d, words, ev_cap, t_shift=-4096)
    assert got == ev and gtr == tr
    assert d.counters["out_of_bounds"] == oob and d.counters["em_events"] == em


def test_evt3_full_vectors_at_every_base_x():
    """All 12 / 8 bits set and single bits, at every base x up to past the right edge."""
    words = [0x8000]
    for bx in range(WIDTH + 2):
        words += [0x0000 | 7, 0x3000 | bx, 0x4FFF, 0x3000 | bx, 0x5FFF, 0x3000 | (1 << 11) | bx,
                  0x4000 | 1 << (bx % 12), 0x4000]
    words = np.array(words, dtype="<u2")
    ev, _, oob, _ = ref_evt3(words, WIDTH, HEIGHT)
    d = Evt3Decoder(WIDTH, HEIGHT)
    got, _, _ = decode(d, words, 1 << 14)
    assert got == ev and d.counters["out_of_bounds"] == oob > 0


@pytest.mark.parametrize("kind", ["evt2", "evt3"])
def test_t_stop_stops_before_the_first_event_at_or_past_it(kind):
    rng = np.random.default_rng(9)
    words = evt2_words(rng, 2000) if kind == "evt2" else evt3_words(rng, 2000)
    ref = (ref_evt2 if kind == "evt2" else ref_evt3)(words, WIDTH, HEIGHT)[0]
    times = [e[3] for e in ref]
    for t_stop in (times[0], times[len(times) // 3], times[-1] + 1):
        d = (Evt2Decoder if kind == "evt2" else Evt3Decoder)(WIDTH, HEIGHT)
        got, _, pos = decode(d, words, 1 << 14, t_stop=t_stop)
        first = next((i for i, t in enumerate(times) if t >= t_stop), len(times))
        assert got == ref[:first]
        rest, _, _ = decode(d, words[pos:], 1 << 14)       # resumes at the stop word
        assert got + rest == ref


def test_evt3_t_stop_at_every_event_time():
    """Windows ending at each distinct event time of a mixed stream (the stop word is then an
    ADDR_X, a vector inside the row, a vector at the right edge, after EM rows or rows outside
    the sensor) stop before the first event at or past the end and resume there exactly."""
    words = evt3_words(np.random.default_rng(21), 700)
    ref = ref_evt3(words, WIDTH, HEIGHT, t_shift=-4096)[0]
    times = [e[3] for e in ref]
    for t_stop in sorted(set(times)):
        d = Evt3Decoder(WIDTH, HEIGHT)
        got, _, pos = decode(d, words, 1 << 14, t_shift=-4096, t_stop=t_stop - 4096)
        first = next(i for i, t in enumerate(times) if t >= t_stop)
        assert got == ref[:first], t_stop
        rest, _, _ = decode(d, words[pos:], 1 << 14, t_shift=-4096)
        assert got + rest == ref, t_stop


# ---- DAT ---------------------------------------------------------------------------------------
def ref_dat(records, width, height, running, count_from, policy):
    """(events, dropped, late, first_late, running) by the per-record rule."""
    ev, dropped, late, first_late = [], 0, 0, -1
    for i, (t, data) in enumerate(records.tolist()):
        if t < running:
            if first_late < 0:
                first_late = i
                if policy == "raise":
                    break
            late += i >= count_from
            t = running if policy == "repair" else t
        else:
            running = t
        x, y, p = data & 0x3FFF, (data >> 14) & 0x3FFF, (data >> 28) & 1
        if x >= width or y >= height:
            dropped += i >= count_from
            continue
        ev.append((x, y, p, t))
    return ev, dropped, late, first_late, running


def dat_records(rng, n, defect):
    t = np.sort(rng.integers(0, 10_000, n)).astype(np.uint32)
    x, y = rng.integers(0, WIDTH, n), rng.integers(0, HEIGHT, n)
    data = (x | y << 14 | rng.integers(0, 2, n) << 28 | rng.integers(0, 8, n) << 29).astype(np.uint32)
    k = int(rng.integers(0, n))
    if defect == "x":
        data[k] = (data[k] & ~np.uint32(0x3FFF)) | np.uint32(WIDTH)
    elif defect == "y":
        data[k] = (data[k] & ~np.uint32(0x3FFF << 14)) | np.uint32(HEIGHT << 14)
    elif defect == "late" and k > 0:
        t[k] = t[k - 1] - 1 if t[k - 1] else 0
        t[k - 1] = max(t[k - 1], 1)
    return np.stack([t, data], axis=1)


@pytest.mark.parametrize("defect", ["none", "x", "y", "late", "before_running"])
@pytest.mark.parametrize("policy", ["raise", "repair", "keep"])
def test_dat_blocks_match_the_reference(defect, policy):
    rng = np.random.default_rng(len(defect) * 7 + len(policy))
    for n in (1, 2, 5, 64, 1000):
        records = dat_records(rng, n, defect)
        running = int(records[0, 0]) + 5 if defect == "before_running" else int(records[0, 0]) - 1
        expect = ref_dat(records, WIDTH, HEIGHT, running, 0, policy)
        out = np.zeros(n, EventCD)
        words = np.ascontiguousarray(records).reshape(-1)
        m, dropped, late, first_late, run = dat_module._decode_records(
            words, out.view(np.int64).reshape(-1, 2), WIDTH, HEIGHT, running, 0,
            policy == "repair", policy == "raise")
        got = [tuple(int(v) for v in e) for e in out[:m]]
        assert (got, dropped, late, first_late, run) == expect


# ---- windows decoded straight up to their end ---------------------------------------------------
@pytest.mark.parametrize("kind", ["evt3", "evt2", "evt21"])
def test_windows_larger_than_the_buffer_equal_the_whole_read(tmp_path, kind):
    events = row_run_events(6000, width=WIDTH, height=HEIGHT, seed=3)
    path = write_raw(tmp_path / f"a_{kind}.raw", events, kind, triggers_every(events, 500),
                     height=HEIGHT, width=WIDTH)
    whole = RawReader(path).read_all()
    t = whole["t"].astype(np.int64)
    for delta_t in (int(t[-1]) // 7 + 1, int(t[-1]) // 3 + 1):
        it = EventsIterator(path, delta_t=delta_t, max_events=64)
        windows = list(it)
        expect = [whole[(t >= k * delta_t) & (t < (k + 1) * delta_t)] for k in range(len(windows))]
        assert sum(len(x) for x in windows) == len(whole)
        for got, exp in zip(windows, expect):
            np.testing.assert_array_equal(got, exp)
        np.testing.assert_array_equal(it.get_ext_trigger_events(), _all_triggers(path))


def _all_triggers(path):
    reader = RawReader(path)
    reader.read_all()
    return reader.get_ext_trigger_events()


def test_long_windows_reuse_dropped_arrays_and_never_overwrite_held_ones(tmp_path):
    events = row_run_events(30_000, width=WIDTH, height=HEIGHT, seed=4)
    path = write_raw(tmp_path / "a.raw", events, "evt3", height=HEIGHT, width=WIDTH)
    t = RawReader(path).read_all()["t"]
    delta_t = int(t[-1] - t[0]) // 20 + 1

    def windows():                  # windows of ~1500 events, a 64-event buffer: decoded direct
        return EventsIterator(path, delta_t=delta_t, max_events=64)

    expected = [w.copy() for w in windows()]
    held = [(k, w, w[: len(w) // 2]) for k, w in enumerate(windows()) if k % 3 == 0]
    assert len(expected) >= 20 and len(held) >= 7
    for k, w, half in held:
        assert np.array_equal(w, expected[k]) and np.array_equal(half, expected[k][: len(half)])
    long = [w.__array_interface__["data"][0] for w in windows() if len(w) > 64]   # dropped
    assert len(set(long)) <= 3 and len(long) >= 15


def test_dat_windows_larger_than_the_buffer_equal_the_whole_read(tmp_path):
    events = row_run_events(6000, width=WIDTH, height=HEIGHT, seed=4)
    path = tmp_path / "a.dat"
    with DatWriter(path, HEIGHT, WIDTH) as w:
        w.write(events)
    t = events["t"].astype(np.int64)
    for delta_t in (int(t[-1]) // 7 + 1, int(t[-1]) // 3 + 1):
        windows = list(EventsIterator(path, delta_t=delta_t, buffer_events=64))
        assert len(windows) == int(t[-1]) // delta_t + 1
        for k, got in enumerate(windows):
            np.testing.assert_array_equal(got, events[(t >= k * delta_t) & (t < (k + 1) * delta_t)])


@pytest.mark.parametrize("kind", ["evt3", "evt2", "dat"])
@pytest.mark.parametrize("mode, n_events", [("delta_t", 0), ("mixed", 700), ("mixed", 5000),
                                            ("n_events", 900)])
def test_slices_and_times_do_not_depend_on_the_buffer_size(tmp_path, kind, mode, n_events):
    """A 64-event buffer (long windows decoded straight into their arrays) and the default one
    (every window inside the buffer) give the same slices and the same current times."""
    events = row_run_events(6000, width=WIDTH, height=HEIGHT, seed=5)
    if kind == "dat":
        path = tmp_path / "a.dat"
        with DatWriter(path, HEIGHT, WIDTH) as w:
            w.write(events)
        small = {"buffer_events": 64}
    else:
        path = write_raw(tmp_path / f"a_{kind}.raw", events, kind, height=HEIGHT, width=WIDTH)
        small = {"max_events": 64}
    delta_t = int(events["t"][-1]) // 6 + 1
    kwargs = {"mode": mode, "delta_t": delta_t, "n_events": n_events or 10000}

    def play(**reader_kwargs):
        it = EventsIterator(path, **kwargs, **reader_kwargs)
        return [(w.copy(), it.get_current_time()) for w in it]

    got, expect = play(**small), play()
    assert len(got) == len(expect) > 3
    for (g, gt), (e, et) in zip(got, expect):
        np.testing.assert_array_equal(g, e)
        assert gt == et


def test_long_windows_sized_by_the_last_one_are_not_regrown(tmp_path):
    """The defect: a long window grew (copying every event decoded so far into an array twice
    as long) whenever less than half the read-ahead was free, so every window of one to two
    buffer sizes (0.5 to 1 M events by default) was copied once: 42 M events copied in a
    SequentialDataLoader epoch of 80 windows of 600 k events (by hand). Now a window as long
    as the one before fits in the array its guess sized."""
    events = row_run_events(60_000, width=WIDTH, height=HEIGHT, seed=6)
    path = write_raw(tmp_path / "a.raw", events, "evt3", height=HEIGHT, width=WIDTH)
    t = RawReader(path).read_all()["t"]
    delta_t = int(t[-1] - t[0]) // 13 + 1              # ~4600 events a window
    reader = RawReader(path, max_events=4096)
    taken = []
    at_least = reader._long_windows.at_least
    reader._long_windows.at_least = lambda n, dtype: taken.append(n) or at_least(n, dtype)
    windows, arrays_per_window = [], []
    while not reader.done:
        before = len(taken)
        windows.append(reader.load_delta_t(delta_t).copy())
        arrays_per_window.append(len(taken) - before)
    assert np.array_equal(np.concatenate(windows), RawReader(path).read_all())
    sizes = [len(w) for w in windows]
    long = [k for k, n in enumerate(sizes) if n > 4096]   # decoded straight into their arrays
    steady = [k for k in long[1:] if k - 1 in long and sizes[k] <= sizes[k - 1] * 1.2]
    assert len(long) >= 9 and len(steady) >= 5
    assert [arrays_per_window[k] for k in steady] == [1] * len(steady)
