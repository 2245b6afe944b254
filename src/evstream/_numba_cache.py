"""Where numba keeps evstream's compiled kernels (every kernel is ``@njit(cache=True)``).

numba writes its cache beside the source (``__pycache__``), else in the user's cache folder
(``~/.cache/numba``). When neither is writable (the installed package and ``$HOME`` both
read-only: containers, shared clusters), decorating a ``cache=True`` function raises
``RuntimeError: cannot cache function ...: no locator available``, so importing evstream
would fail. :func:`ensure_cache_location` runs once, when ``evstream`` is imported, before any
kernel is defined:

1. it asks numba's own lookup for a cache folder (a probe function decorated here); found:
   nothing changes;
2. none: the cache goes to ``<temporary directory>/evstream-numba-cache-<user id>``
   (``numba.config.CACHE_DIR``, as ``NUMBA_CACHE_DIR`` would set it), one warning;
3. that is not writable either: caching is skipped for evstream's kernels (they are compiled
   at every start, a few seconds), one warning.

Set ``NUMBA_CACHE_DIR`` to a writable folder to choose the place yourself.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import numba
from numba.core import caching, config
from numba.core.dispatcher import Dispatcher

#: what :func:`ensure_cache_location` decided: "numba" (numba's own place), "temporary" or "off"
decision: str | None = None


def _probe() -> None:
    """A function that is decorated, never called: its decoration runs numba's cache lookup."""


def _numba_can_cache() -> bool:
    try:
        numba.njit(cache=True)(_probe)
    except RuntimeError as exc:
        if "no locator available" not in str(exc):
            raise
        return False
    return True


def _temporary_cache_dir() -> str:
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"evstream-numba-cache-{uid}")


def _skip_caching_for_evstream() -> None:
    """Make ``cache=True`` a no-op (compile in memory) for evstream's functions only."""
    enable_caching = Dispatcher.enable_caching

    def enable_caching_or_skip(self):
        try:
            enable_caching(self)
        except RuntimeError:
            if not getattr(self.py_func, "__module__", "").startswith("evstream"):
                raise
            self._cache = caching.NullCache()

    Dispatcher.enable_caching = enable_caching_or_skip


def ensure_cache_location() -> str:
    """Choose where evstream's kernels are cached (see the module docstring); returns the
    decision (``"numba"``, ``"temporary"`` or ``"off"``). Runs once per process."""
    global decision
    if decision is not None:
        return decision
    if _numba_can_cache():
        decision = "numba"
        return decision
    previous = config.CACHE_DIR
    config.CACHE_DIR = _temporary_cache_dir()
    if _numba_can_cache():
        decision = "temporary"
        warnings.warn(f"evstream: numba cannot write its cache beside the package or in the user's "
                      f"cache folder; compiled kernels are cached in {config.CACHE_DIR} (set "
                      f"NUMBA_CACHE_DIR to choose another folder)", RuntimeWarning, stacklevel=2)
        return decision
    config.CACHE_DIR = previous
    _skip_caching_for_evstream()
    decision = "off"
    warnings.warn("evstream: no writable folder for numba's cache (package, user cache folder, "
                  f"{tempfile.gettempdir()}); kernels are compiled at every start (set "
                  "NUMBA_CACHE_DIR to a writable folder to cache them)", RuntimeWarning,
                  stacklevel=2)
    return decision
