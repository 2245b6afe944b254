"""A deterministic synthetic event stream with the structure of real sensor output, for
benchmarks: events come in short runs of neighbouring pixels on one row at one timestamp (as a
moving edge is read out), rows and timestamps vary, time is sorted."""

import numpy as np

from evstream.io import EventCD


def synthetic_events(n_events: int, height: int = 720, width: int = 1280,
                     rate_ev_s: float = 30e6, mean_run: float = 4.0, seed: int = 0) -> np.ndarray:
    """``n_events`` EventCD events at about ``rate_ev_s`` events/s, sorted by (t, y, x)."""
    rng = np.random.default_rng(seed)
    n_runs = int(2 * n_events / mean_run) + 64           # more than enough runs
    lengths = np.minimum(rng.geometric(1.0 / mean_run, n_runs), 64)
    lengths = lengths[:np.searchsorted(np.cumsum(lengths), n_events) + 1]
    lengths[-1] -= lengths.sum() - n_events
    run_of = np.repeat(np.arange(len(lengths)), lengths)
    offset = np.arange(n_events) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    x0 = rng.integers(0, width - 2 * lengths)          # a run spans at most 2 x its length
    events = np.empty(n_events, dtype=EventCD)
    gaps = np.cumsum(rng.random(n_events) < 0.3)        # 30 % of pixels in a run are skipped
    gaps -= np.repeat(gaps[np.cumsum(lengths) - lengths], lengths)
    events["x"] = x0[run_of] + offset + gaps
    events["y"] = rng.integers(0, height, len(lengths))[run_of]
    events["p"] = rng.integers(0, 2, len(lengths))[run_of]
    duration_us = n_events / rate_ev_s * 1e6
    run_t = np.sort(rng.integers(0, int(duration_us) + 1, len(lengths)))
    events["t"] = run_t[run_of]
    order = np.lexsort((events["x"], events["y"], events["t"]))
    return events[order]
