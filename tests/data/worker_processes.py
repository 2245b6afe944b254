"""Whether worker processes are alive, for the tests of kept workers."""

from __future__ import annotations

import os
import time


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux ``/proc``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def wait_dead(pids, limit_s: float = 10.0) -> bool:
    """Wait up to ``limit_s`` seconds for every process of ``pids`` to end; whether they did."""
    end = time.monotonic() + limit_s
    while any(alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.05)
    return not any(alive(p) for p in pids)
