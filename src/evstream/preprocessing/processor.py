"""``CDProcessor``: one registered preprocessing bound to a geometry, a bin count and kwargs."""

from __future__ import annotations

import inspect

import numpy as np

from evstream.errors import KernelArgumentError
from evstream.preprocessing import registry
from evstream.preprocessing.validation import OUT_OF_RANGE_POLICIES
from evstream.utils.arrays import as_numpy


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class CDProcessor:
    """Turns event arrays into ``[T, C, H, W]`` tensors with a registered preprocessing.

    Args:
        height, width: tensor size (the sensor is ``(height << k) x (width << k)``).
        num_tbins: T.
        preprocessing: registry name (unknown -> ``PreprocessingNameError`` listing the names).
        downsampling_factor: k; coordinates are shifted right by k.
        preprocess_kwargs: override the registry's default kwargs. ``preprocess_dtype`` is popped
            and gives the tensor dtype (uint8 if absent), forced to float32 when k > 0 and the name
            contains "quantized" (pooled counts are fractions), as in the original.
        on_out_of_range: policy for events outside the window or the geometry ("drop", "warn",
            "raise"; see :mod:`evstream.preprocessing.validation`), passed to functions that accept
            it. After each call ``last_dropped`` holds the count of dropped events (None if the
            function does not report it).

    ``__call__`` returns the processor's own array, reused and overwritten by the next call (as the
    original does, docs/compatibility.md); pass ``copy=True`` to get a fresh array.
    """

    def __init__(self, height, width, num_tbins=5, preprocessing="histo", downsampling_factor=0,
                 preprocess_kwargs={}, *, on_out_of_range="drop"):
        if on_out_of_range not in OUT_OF_RANGE_POLICIES:
            raise KernelArgumentError(f"CDProcessor: on_out_of_range must be one of {OUT_OF_RANGE_POLICIES}, "
                                  f"got {on_out_of_range!r}")
        entry = registry.get_preprocess_dict(preprocessing)
        self.preprocessing = preprocessing
        self.preprocess_dict = entry
        self.height, self.width, self.num_tbins = int(height), int(width), int(num_tbins)
        self.downsampling_factor = int(downsampling_factor)
        if min(self.height, self.width, self.num_tbins) < 1 or self.downsampling_factor < 0:
            raise KernelArgumentError(f"CDProcessor: need height, width, num_tbins >= 1 and downsampling_factor >= 0, "
                                  f"got {height}, {width}, {num_tbins}, {downsampling_factor}")
        kwargs = dict(entry["kwargs"])
        kwargs.update(preprocess_kwargs)
        self.dtype = registry.get_output_dtype(preprocessing, self.downsampling_factor, kwargs)
        kwargs.pop("preprocess_dtype", None)
        self.preprocess_kwargs = kwargs
        self.events_to_tensor = entry["events_to_tensor"]
        self._extra = {k: v for k, v in (("on_out_of_range", on_out_of_range), ("include_end", True))
                       if _accepts(self.events_to_tensor, k)}
        self.array = np.zeros((self.num_tbins, entry["cin"], self.height, self.width), self.dtype)
        self.last_dropped = None

    def __call__(self, events, delta_t=None, *, copy=False):
        """Fills and returns the ``[T, C, H, W]`` array for ``events`` (t relative to the window
        start).

        ``delta_t`` is the window length (``total_tbins_delta_t``, the original's parameter name).
        If None it is inferred as ``t[-1] - t[0]`` like the original (at least 1 µs), and events at
        exactly that time go into the last bin (the original does the same for the last event).
        """
        self.array[...] = 0
        extra = dict(self._extra)
        if delta_t is None:
            n = len(events)
            delta_t = max(int(events["t"][-1]) - int(events["t"][0]), 1) if n else 1
        else:
            extra.pop("include_end", None)
        result = self.events_to_tensor(events, self.array, delta_t, downsampling_factor=self.downsampling_factor,
                                       reset=False, **self.preprocess_kwargs, **extra)
        self.last_dropped = int(result) if isinstance(result, (int, np.integer)) else None
        return self.array.copy() if copy else self.array

    def get_array_dim(self):
        """``(T, C, H, W)``."""
        return tuple(self.array.shape)

    def get_preprocess_dtype(self):
        return self.dtype

    def show(self, array=None, tbin=None):
        """RGB uint8 image of ``array`` (default: the last result) with the registry's viz: one
        time bin if ``tbin`` is given, else all bins side by side (``H x (T * W) x 3``)."""
        array = self.array if array is None else array
        array = as_numpy(array)
        if array.ndim == 3:
            array = array[None]
        vis = self.preprocess_dict["viz"]
        if tbin is not None:
            return vis(array[tbin])
        return np.concatenate([vis(a) for a in array], axis=1)
