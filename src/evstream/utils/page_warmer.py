"""Fault in the pages of a fresh output array on another core, ahead of the code that fills it.

Writing a fresh array of a few hundred MiB costs its writer a page fault, and the kernel's
zeroing of the page, per page it first touches. On the development machine (AMD EPYC, 2 cores)
merely allocating and writing a fresh 30 M-event EventCD array once ran at 455-573 M events/s,
and the whole-file decoders spent a large part of their time in those faults: with a warmer,
by hand, EVT 2.0 went from 281-320 to 527-565 Mev/s, DAT from 261-332 to 366-467 and EVT 3.0
from 170-182 to 216-247.

On Linux 5.14 and later, ``madvise(MADV_POPULATE_WRITE)`` faults a range in as if it had been
written, without changing what it holds. A :class:`PageWarmer` calls it from a background thread
at most ``lead_bytes`` ahead of the writer's reported progress, so the writer (a numba kernel
that releases the GIL) finds its pages mapped and the faults run on the second core.

The warmer never writes the array, so it cannot race with the writer; a range the writer reached
first is simply left as it is. Where the call is missing (another OS, an older kernel: ``EINVAL``)
or only one CPU is available to the process, the warmer does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

import numpy as np

__all__ = ["PageWarmer", "warming_available"]

#: set to False to keep the writers on one thread (no warmer starts): what the decode
#: benchmark does for its one-thread rows
ENABLED = True

#: ``MADV_POPULATE_WRITE`` from Linux's ``<asm-generic/mman-common.h>`` (kernel 5.14+)
MADV_POPULATE_WRITE = 23
#: bytes faulted in per call: a multiple of the 2 MiB transparent huge page, so that a
#: huge-page array is populated one whole huge page at a time
CHUNK_BYTES = 8 << 20
#: what the writer may still have ahead of it, warmed, by default
LEAD_BYTES = 64 << 20
_PAGE = 4096


def _libc_madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


_MADVISE = _libc_madvise()


def warming_available() -> bool:
    """Whether a warmer can help here: :data:`ENABLED`, Linux's ``madvise`` and at least two
    usable CPUs."""
    return ENABLED and _MADVISE is not None and len(os.sched_getaffinity(0)) >= 2


class PageWarmer:
    """Faults in ``array``'s pages from a background thread, ``lead_bytes`` ahead of the progress
    reported with :meth:`advance`. Use as a context manager, or call :meth:`close`, so that the
    thread has stopped before the array may be released."""

    def __init__(self, array: np.ndarray, lead_bytes: int = LEAD_BYTES):
        self._lead = int(lead_bytes)
        self._start = -(-array.ctypes.data // _PAGE) * _PAGE      # first whole page
        self._end = array.ctypes.data + array.nbytes
        self._base = array.ctypes.data
        self._target = self._start      # populate up to here (address)
        self._closed = False
        self._wake = threading.Condition()
        self._thread = None
        if warming_available() and self._end - self._start >= CHUNK_BYTES:
            self._thread = threading.Thread(target=self._run, name="evstream-page-warmer",
                                            daemon=True)
            self._thread.start()
        self.advance(0)

    def advance(self, filled_bytes: int) -> None:
        """The writer has filled the array's first ``filled_bytes`` bytes: warm up to
        ``lead_bytes`` past them."""
        target = min(self._end, self._base + int(filled_bytes) + self._lead)
        with self._wake:
            if target > self._target:
                self._target = target
                self._wake.notify()

    def _run(self) -> None:
        done = self._start
        while True:
            with self._wake:
                while not self._closed and self._target - done < _PAGE:
                    self._wake.wait()
                if self._closed:
                    return
                target = self._target
            while done < target and not self._closed:
                step = min(CHUNK_BYTES - done % CHUNK_BYTES, target - done)   # aligned
                step -= step % _PAGE
                if step <= 0:
                    break
                if _MADVISE(done, step, MADV_POPULATE_WRITE) != 0:
                    return          # not supported here (EINVAL) or out of memory: stop warming
                done += step
            if done >= self._end - _PAGE:
                return

    @property
    def active(self) -> bool:
        """Whether the background thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop the thread and wait for it (at most one chunk's call); idempotent."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> PageWarmer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
