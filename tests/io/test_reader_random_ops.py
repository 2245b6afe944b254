"""Random sequences of loads and seeks on every reader give exactly the events a plain cursor
over the whole array gives: short and long count reads (below and above the read-ahead), short
and long time windows, both limits at once, seeks by event and by time, on files long enough for the buffers to
grow, compact and be bypassed."""

import numpy as np
import pytest

from evstream.io import DatWriter, EventCD, RawWriter, open_reader

N_EVENTS = 150_000
COUNTS = (1, 700, 8191, 8192, 30_000)              # around the 8 K-event read-ahead
WINDOWS_US = (1, 2_000, 50_000, 600_000)


def _events() -> np.ndarray:
    rng = np.random.default_rng(17)
    events = np.zeros(N_EVENTS, EventCD)
    events["t"] = 5_000 + np.cumsum(rng.integers(0, 25, N_EVENTS))    # about 1.8 s
    events["x"] = rng.integers(0, 320, N_EVENTS)
    events["y"] = rng.integers(0, 240, N_EVENTS)
    events["p"] = rng.integers(0, 2, N_EVENTS)
    return events


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("random_ops")
    events = _events()
    paths = {"npy": folder / "e.npy", "dat": folder / "e.dat"}
    np.save(paths["npy"], events)
    with DatWriter(paths["dat"], height=240, width=320) as writer:
        writer.write(events)
    for fmt in ("evt2", "evt3", "evt21"):
        paths[fmt] = folder / f"e_{fmt}.raw"
        with RawWriter(paths[fmt], height=240, width=320, format=fmt) as writer:
            writer.write(events)
    return events, paths


@pytest.mark.parametrize("fmt", ["npy", "dat", "evt2", "evt3", "evt21"])
@pytest.mark.parametrize("buffer", [None, 4096])     # default, or well below the windows
@pytest.mark.parametrize("seed", [0, 1])
def test_random_loads_and_seeks_match_a_plain_cursor(files, fmt, buffer, seed):
    events, paths = files
    times = events["t"]
    kwargs = {"do_time_shifting": False} if fmt.startswith("evt") else {}
    if buffer:
        kwargs["max_events" if fmt.startswith("evt") else "buffer_events"] = buffer
    reader = open_reader(paths[fmt], **kwargs)
    rng = np.random.default_rng(seed)
    cursor = 0
    for step in range(120):
        op = rng.integers(0, 5)
        if op == 4:
            k, dt = int(rng.choice(COUNTS)), int(rng.choice(WINDOWS_US))
            t_end = reader.current_time + dt
            got = reader.load_mixed(k, dt)
            stop = cursor + int(np.searchsorted(times[cursor:], t_end, side="left"))
            expected = events[cursor:min(stop, cursor + k)]
        elif op == 0:
            k = int(rng.choice(COUNTS))
            got = reader.load_n_events(k)
            expected = events[cursor:cursor + k]
        elif op == 1:
            t_end = reader.current_time + int(rng.choice(WINDOWS_US))
            got = reader.load_delta_t(t_end - reader.current_time)
            stop = cursor + int(np.searchsorted(times[cursor:], t_end, side="left"))
            expected = events[cursor:stop]
        elif op == 2:
            cursor = int(rng.integers(0, N_EVENTS + 10))
            reader.seek_event(cursor)
            cursor = min(cursor, N_EVENTS)
            continue
        else:
            t = int(rng.integers(0, int(times[-1]) + 1000))
            reader.seek_time(t)
            cursor = int(np.searchsorted(times, t, side="left"))
            continue
        np.testing.assert_array_equal(got, expected, err_msg=f"{fmt} step {step}")
        cursor += len(got)
        assert reader.current_event_index() == cursor
        assert reader.is_done() == (cursor == N_EVENTS)


@pytest.mark.parametrize("fmt", ["npy", "dat", "evt2", "evt3", "evt21"])
def test_a_count_far_beyond_the_file_returns_the_rest(files, fmt):
    """``load_n_events`` with a count no file holds (a "read everything" idiom) sizes its array
    from the buffer and grows it, never from the count."""
    events, paths = files
    kwargs = {"do_time_shifting": False} if fmt.startswith("evt") else {}
    reader = open_reader(paths[fmt], **kwargs)
    reader.seek_event(1000)
    np.testing.assert_array_equal(reader.load_n_events(10**12), events[1000:])
    assert reader.is_done()
