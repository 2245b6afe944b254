"""Array and object helpers without torch (layers 1 and 2 import them too).

* :func:`as_numpy`: a numpy view (or copy, for a tensor on another device) of a numpy array, a
  torch tensor or anything ``np.asarray`` takes, recognised by duck typing so that this module
  never imports torch.
* :func:`close_if_closable`: ``obj.close()`` when ``obj`` has one (readers, iterators,
  generators), nothing otherwise.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_numpy", "close_if_closable"]


def as_numpy(x) -> np.ndarray:
    """``x`` as a numpy array: a torch tensor (anything with ``detach``) is detached and brought
    to the CPU first (no copy for a CPU tensor: the array shares its memory)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def close_if_closable(obj) -> None:
    """Calls ``obj.close()`` if ``obj`` has a callable ``close`` (None and plain objects: no-op)."""
    close = getattr(obj, "close", None)
    if callable(close):
        close()
