"""Recordings shaped like the ones cameras write, made with the project's own RawWriter: events
with external triggers, EVT 2.1 in both layouts, headers that select a layout in each way."""

from __future__ import annotations

import numpy as np

from evstream.io import EventCD, EventExtTrigger, RawWriter

#: (writer format, EVT 2.1 layout) of every RAW encoding the writer produces
RAW_KINDS = {"evt2": ("evt2", "little"), "evt3": ("evt3", "little"),
             "evt21": ("evt21", "little"), "evt21_legacy": ("evt21", "legacy")}


def row_run_events(n: int, width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    """``n`` sorted events in runs of neighbouring pixels on a row at one timestamp (what the
    vector words of EVT 3.0 / 2.1 encode), time steps of 0..3 µs."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=EventCD)
    i = 0
    t = 0
    while i < n:
        run = min(int(rng.integers(1, 9)), n - i)
        x0 = int(rng.integers(0, width - run))
        ev["x"][i:i + run] = x0 + np.arange(run)
        ev["y"][i:i + run] = rng.integers(0, height)
        ev["p"][i:i + run] = rng.integers(0, 2)
        ev["t"][i:i + run] = t
        t += int(rng.integers(0, 4))
        i += run
    return ev


def triggers_every(events: np.ndarray, every: int, max_id: int = 15) -> np.ndarray:
    """One trigger at the time of every ``every``-th event (alternating edges, ids cycling)."""
    t = events["t"][::every]
    tr = np.zeros(len(t), dtype=EventExtTrigger)
    tr["t"] = t
    tr["p"] = np.arange(len(t)) % 2
    tr["id"] = np.arange(len(t)) % (max_id + 1)
    return tr


def write_raw(path, events: np.ndarray, kind: str, triggers: np.ndarray | None = None,
              height: int = 240, width: int = 320, **writer_kwargs):
    """Write ``events`` (and ``triggers``) as RAW ``kind`` (a key of :data:`RAW_KINDS`)."""
    fmt, layout = RAW_KINDS[kind]
    with RawWriter(path, height, width, format=fmt, evt21_layout=layout, **writer_kwargs) as w:
        w.write(events, triggers)
    return path


def replace_header_lines(path, drop: tuple[str, ...] = (), add: tuple[str, ...] = (),
                         format_line: str | None = None) -> None:
    """Rewrite a RAW header: drop lines whose key is in ``drop``, replace ``% format``, insert
    ``add`` lines before ``% end`` (the data bytes are kept)."""
    data = path.read_bytes()
    end = data.index(b"% end\n") + len(b"% end\n")
    lines = data[:end].decode("latin-1").splitlines()[:-1]
    kept = []
    for line in lines:
        key = line[2:].split(" ", 1)[0]
        if key == "format" and format_line is not None:
            kept.append(format_line)
        elif key not in drop:
            kept.append(line)
    text = "\n".join(kept + list(add) + ["% end"]) + "\n"
    path.write_bytes(text.encode("latin-1") + data[end:])
