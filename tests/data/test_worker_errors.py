"""Loader workers that fail, stop or deadlock (issue 12, item 8): the workers are shut down after
an error, and a silent worker is a WorkerTimeoutError naming it and its recordings."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from functools import partial

import numpy as np
import pytest
import torch

from evstream.data import SequentialDataLoader
from evstream.data._workers import (DEFAULT_WORKER_TIMEOUT_S, Watchdog, check_timeout,
                                    stop_workers)
from evstream.data.cd_processor_dataset import CDProcessorDataLoader
from evstream.data.stream import StreamDataLoader, StreamDataset
from evstream.errors import ArgumentError, FileFormatError, WorkerTimeoutError
from seqloader_data import synthetic_events, write_dat

DT = 10_000


@pytest.fixture
def recordings(tmp_path):
    return [write_dat(tmp_path / f"{name}_td.dat", synthetic_events(200_000, seed=i))
            for i, name in enumerate(["a", "b", "c", "d"])]


def _stop_on(metadata, start, duration, tensor, name, how):
    if os.path.basename(metadata.path).startswith(name):
        if how == "sigstop":
            os.kill(os.getpid(), signal.SIGSTOP)
        elif how == "deadlock":
            import threading
            lock = threading.Lock()
            lock.acquire()
            lock.acquire()                   # never returns
        else:
            raise FileFormatError("bad labels", metadata.path)
    n = tensor.shape[0]
    return [torch.empty(0)] * n, np.zeros(n, dtype=bool)


def _alive_children():
    return [p for p in multiprocessing.active_children() if p.is_alive()]


def _wait_no_children(limit_s=10.0):
    t0 = time.monotonic()
    while _alive_children() and time.monotonic() - t0 < limit_s:
        time.sleep(0.05)
    return _alive_children()


def test_default_timeout_and_checks():
    assert DEFAULT_WORKER_TIMEOUT_S == 300.0
    assert check_timeout(None) == 0.0 and check_timeout(0) == 0.0 and check_timeout(2) == 2.0
    for bad in (-1, float("nan"), "soon", True):
        with pytest.raises(ArgumentError, match="timeout"):
            check_timeout(bad)


def test_sequential_loader_stops_its_workers_after_an_error(recordings):
    """Before: the 2 workers stayed alive until the loader was deleted."""
    loader = SequentialDataLoader(recordings, DT, "histo", [2, 2, 240, 320], batch_size=2,
                                  num_workers=2,
                                  load_labels=partial(_stop_on, name="c", how="raise"))
    with pytest.raises(FileFormatError, match="c_td.dat: bad labels"):
        for _ in loader:
            pass
    assert _wait_no_children(2.0) == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["sigstop", "deadlock"])
def test_sequential_loader_worker_timeout(recordings, how):
    loader = SequentialDataLoader(recordings, DT, "histo", [2, 2, 240, 320], batch_size=2,
                                  num_workers=2, timeout=3,
                                  load_labels=partial(_stop_on, name="c", how=how))
    t0 = time.monotonic()
    with pytest.raises(WorkerTimeoutError) as info:
        for _ in loader:
            pass
    assert time.monotonic() - t0 < 60
    message = str(info.value)
    assert "worker " in message and "3 s" in message
    assert recordings[2] in message           # c_td.dat, the recording the worker was reading
    assert _wait_no_children() == []          # stopped and deadlocked workers are killed


def _stream(name, stop_at):
    for i in range(5):
        if name == stop_at and i == 2:
            os.kill(os.getpid(), signal.SIGSTOP)
        yield torch.full((2,), float(i))


@pytest.mark.timeout(120)
def test_stream_loader_worker_timeout():
    dataset = StreamDataset(["s0", "s1", "s2", "s3"], partial(_stream, stop_at="s1"), 2, "zeros",
                            torch.zeros(2))
    loader = StreamDataLoader(dataset, 2, torch.stack, timeout=3)
    slots = loader.plan().worker_slots
    with pytest.raises(WorkerTimeoutError) as info:
        list(loader)
    message = str(info.value)
    worker = next(w for w, s in enumerate(slots)
                  if any("s1" in stream for slot in s
                         for stream in dataset.slot_stream_lists(loader.plan())[slot]))
    assert f"stream worker {worker} " in message and "s1" in message
    assert _wait_no_children() == []


@pytest.mark.timeout(120)
def test_cd_processor_loader_takes_the_timeout(recordings):
    loader = CDProcessorDataLoader(recordings, "delta_t", DT, 0, None, "histo", 2, batch_size=2,
                                   num_workers=2, height=240, width=320, timeout=3,
                                   load_labels=partial(_stop_on, name="b", how="sigstop"))
    assert loader.timeout == 3
    with pytest.raises(WorkerTimeoutError, match="b_td.dat"):
        list(loader)
    assert _wait_no_children() == []


def test_workers_killed_by_the_watchdog_are_not_raised_by_torchs_sigchld_handler():
    """Before: the death of the workers that the watchdog killed reached torch's SIGCHLD
    handler, which raised "DataLoader worker ... is killed by signal" in the main thread while
    the loader built its WorkerTimeoutError (a flaky test_sequential_loader_worker_timeout)."""
    iterator = iter(torch.utils.data.DataLoader(range(64), batch_size=4, num_workers=2,
                                                multiprocessing_context="fork"))
    next(iterator)
    Watchdog(iterator, 1.0)._fire()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:        # SIGCHLD handlers run between these bytecodes
        time.sleep(0.01)
    stop_workers(iterator)
    assert _wait_no_children() == []
