"""PageWarmer: it faults pages in (checked with mincore), within its lead, never changes what
the array holds, and does nothing where the call is not supported."""

import ctypes
import mmap
import threading
import time

import numpy as np
import pytest

import evstream.utils.page_warmer as pw
from evstream.utils.page_warmer import PageWarmer

PAGE = 4096
MIB = 1 << 20

needs_warming = pytest.mark.skipif(not pw.warming_available(),
                                   reason="needs Linux madvise and two CPUs")


def fresh(nbytes: int) -> np.ndarray:
    """A uint8 array on a new anonymous mapping: no page of it is mapped yet (``np.empty`` may
    reuse memory that earlier tests touched)."""
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=np.uint8)


def resident_pages(a: np.ndarray) -> np.ndarray:
    """mincore's residency of every whole 4 KiB page of ``a`` (bool per page)."""
    libc = ctypes.CDLL(None, use_errno=True)
    start = -(-a.ctypes.data // PAGE) * PAGE
    n_pages = (a.ctypes.data + a.nbytes - start) // PAGE
    vec = (ctypes.c_ubyte * n_pages)()
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    assert libc.mincore(ctypes.c_void_p(start), ctypes.c_size_t(n_pages * PAGE), vec) == 0
    return np.frombuffer(vec, dtype=np.uint8) & 1 == 1


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def warmer_threads() -> int:
    return sum(t.name == "evstream-page-warmer" for t in threading.enumerate())


@needs_warming
def test_the_whole_array_is_faulted_in_and_keeps_what_it_holds():
    a = fresh(48 * MIB)
    written = 5 * MIB + 123            # a part already written, ending mid-page
    a[:written] = np.arange(written, dtype=np.uint64).astype(np.uint8)
    # fresh pages are not mapped (a transparent huge page may map up to 2 MiB past a write)
    assert resident_pages(a)[(written + 2 * MIB) // PAGE + 1:].sum() == 0
    w = PageWarmer(a, lead_bytes=64 * MIB)
    wait_until(lambda: not w.active)
    w.close()
    assert resident_pages(a).all()
    assert np.array_equal(a[:written], np.arange(written, dtype=np.uint64).astype(np.uint8))


@needs_warming
def test_warming_stays_within_its_lead_of_the_reported_progress():
    a = fresh(96 * MIB)
    lead = 16 * MIB
    with PageWarmer(a, lead_bytes=lead) as w:
        wait_until(lambda: resident_pages(a).sum() * PAGE >= lead - 2 * MIB)
        time.sleep(0.2)
        # a transparent huge page may map up to 2 MiB past the target
        assert resident_pages(a).sum() * PAGE <= lead + 2 * MIB
        w.advance(40 * MIB)
        wait_until(lambda: resident_pages(a).sum() * PAGE >= 40 * MIB + lead - 2 * MIB)
        time.sleep(0.2)
        assert resident_pages(a).sum() * PAGE <= 40 * MIB + lead + 2 * MIB
    assert warmer_threads() == 0


def test_a_disabled_warmer_starts_no_thread(monkeypatch):
    monkeypatch.setattr(pw, "ENABLED", False)
    a = fresh(32 * MIB)
    w = PageWarmer(a)
    assert not w.active and warmer_threads() == 0
    w.advance(a.nbytes)
    w.close()
    assert resident_pages(a).sum() * PAGE < 2 * MIB


def test_a_small_array_starts_no_thread():
    w = PageWarmer(fresh(pw.CHUNK_BYTES - PAGE))
    assert not w.active
    w.close()


@needs_warming
def test_an_unsupported_advice_stops_the_warmer_quietly(monkeypatch):
    monkeypatch.setattr(pw, "MADV_POPULATE_WRITE", 0x7FFF)     # EINVAL, as on a kernel < 5.14
    a = fresh(32 * MIB)
    w = PageWarmer(a)
    wait_until(lambda: not w.active)
    w.close()
    assert resident_pages(a).sum() * PAGE < 2 * MIB


@needs_warming
def test_close_stops_a_thread_that_waits_for_progress():
    a = fresh(64 * MIB)
    w = PageWarmer(a, lead_bytes=8 * MIB)
    wait_until(lambda: resident_pages(a).sum() * PAGE >= 6 * MIB)
    assert w.active                       # waiting for the writer to advance
    w.close()
    w.close()
    assert not w.active and warmer_threads() == 0
