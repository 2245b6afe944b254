"""``HDF5Iterator``: a precomputed tensor file as a sequence of ``[T, C, h, w]`` float32 torch tensors.

Compatible with ``metavision_ml.data.HDF5Iterator`` (``docs/compatibility.md``), with two data-losing
defects of the original fixed:

* the last complete chunk of T rows **is** returned (the original stops one chunk early);
  ``len(it)`` = number of complete chunks, a trailing incomplete chunk is not returned;
* rows stored as uint8 (``store_as_uint8``) are converted to float32 and divided by 255 *before* any
  resize, in float (the original writes the resized floats back into a uint8 buffer).

Other rules: integer dtypes written without ``store_as_uint8`` (the quantized preprocessings) are
converted to float32 unchanged; any positive ``height`` / ``width`` is reached with the one resize
rule of every loader (:func:`~evstream.preprocessing.tensor_file.resize_rows`: area when neither
axis grows, so an integer ratio ``k`` gives the mean of each ``k x k`` block; else bilinear with
``align_corners=True``); ``start_ts`` skips the rows before it (``start_ts // delta_t`` rows, or the rows
whose ``last_timestamps`` are ``< start_ts``); files compressed with gzip, hdf5plugin's Blosc
(``evstream precompute --compression blosc``) or not at all read transparently.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from evstream.errors import ArgumentError
from evstream.preprocessing.tensor_file import TensorFile, check_output_size


class HDF5Iterator:
    """Iterate over a tensor file in chunks of ``num_tbins`` rows.

    Args:
        path: the tensor file (``.h5``).
        num_tbins: rows per returned tensor (T).
        preprocess_kwargs: accepted for compatibility; a value that differs from the file's
            attribute of the same name raises (the tensors are already computed; the original ignores it).
        start_ts: first time to return (µs, relative to the file's start).
        device: torch device of the returned tensors.
        height, width: output size; default the stored size; any other positive size is reached
            with :func:`~evstream.preprocessing.tensor_file.resize_rows`.
        transforms: optional callable applied to each ``[T, C, h, w]`` tensor.
        base_seed: seed of a ``torch.Generator`` set as ``self.generator`` for random transforms.

    Attributes: ``attrs`` (:class:`~evstream.preprocessing.tensor_file.TensorFileAttrs`),
    ``tensor_file`` (the open :class:`~evstream.preprocessing.tensor_file.TensorFile`), ``mode``,
    ``delta_t``, ``n_events``, ``preprocess`` (its preprocessing name), ``height``, ``width``.
    """

    def __init__(self, path, num_tbins=1, preprocess_kwargs={}, start_ts=0,
                 device=torch.device("cpu"), height=None, width=None, transforms=None,
                 base_seed=0):
        self.path = os.fspath(path)
        self.num_tbins = int(num_tbins)
        if self.num_tbins < 1:
            raise ArgumentError(f"num_tbins must be >= 1, got {num_tbins}", self.path)
        self.tensor_file = TensorFile(self.path)
        self.attrs = attrs = self.tensor_file.attrs
        self.mode, self.delta_t, self.n_events = attrs.mode, attrs.delta_t, attrs.n_events
        self.preprocess = attrs.name
        for key, value in dict(preprocess_kwargs).items():
            if key in attrs.kwargs and _differs(attrs.kwargs[key], value):
                raise ArgumentError(f"preprocess kwarg {key}={value!r} differs from the file's "
                                    f"{attrs.kwargs[key]!r}: the tensors were computed with it; "
                                    f"precompute the file again to change it", self.path)
        self.device = torch.device(device)
        _, h0, w0 = attrs.shape
        self.height, self.width = check_output_size((h0 if height is None else height,
                                                     w0 if width is None else width), self.path)
        self.transforms = transforms
        self.generator = torch.Generator().manual_seed(int(base_seed))
        self._last_ts = self.tensor_file.last_timestamps
        self.start_ts = int(start_ts)
        if self.start_ts < 0:
            raise ArgumentError(f"start_ts must be >= 0, got {start_ts}", self.path)
        if self.mode == "delta_t":
            self._first_row = min(self.start_ts // self.delta_t, attrs.rows)
        else:
            self._first_row = int(np.searchsorted(self._last_ts, self.start_ts, side="left"))
        self._row = self._first_row

    # ------------------------------------------------------------------ original API
    def checks(self, preprocess_name, delta_t=None, mode="delta_t", n_events=0):
        """Raise :class:`~evstream.errors.ArgumentError` unless the file was made with this
        preprocessing, mode and ``delta_t`` (delta_t mode) or ``n_events`` (n_events mode)."""
        problems = []
        if preprocess_name != self.preprocess:
            problems.append(f"preprocessing {self.preprocess!r}, not {preprocess_name!r}")
        if mode != self.mode:
            problems.append(f"mode {self.mode!r}, not {mode!r}")
        elif mode == "delta_t" and delta_t is not None and int(delta_t) != self.delta_t:
            problems.append(f"delta_t {self.delta_t} µs, not {delta_t} µs")
        elif mode == "n_events" and int(n_events) != self.n_events:
            problems.append(f"n_events {self.n_events}, not {n_events}")
        if problems:
            raise ArgumentError("tensor file made with " + ", ".join(problems) +
                                " (precompute it again with the wanted settings)", self.path)

    def __len__(self) -> int:
        """Number of complete chunks of ``num_tbins`` rows from ``start_ts`` on."""
        return (self.attrs.rows - self._first_row) // self.num_tbins

    def get_time(self) -> int:
        """End time (µs, file time) of the rows returned so far: ``row · delta_t``, or the last
        returned row's timestamp in n_events mode (``start_ts`` before the first chunk)."""
        if self.mode == "delta_t":
            return max(self._row * self.delta_t, self.start_ts) if self._row > self._first_row \
                else self.start_ts
        return int(self._last_ts[self._row - 1]) if self._row > self._first_row else self.start_ts

    def __iter__(self):
        self._row = self._first_row
        return self

    def __next__(self) -> torch.Tensor:
        start, stop = self._row, self._row + self.num_tbins
        if stop > self.attrs.rows or self.tensor_file is None:
            raise StopIteration
        tensor = torch.from_numpy(self.read_rows(start, stop))
        self._row = stop
        if self.transforms is not None:
            tensor = self.transforms(tensor)
        return tensor.to(self.device) if self.device.type != "cpu" else tensor

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as a float32 numpy array ``[n, C, height, width]``
        (:meth:`~evstream.preprocessing.tensor_file.TensorFile.read`: uint8-stored / 255,
        resized when asked)."""
        rows = self.tensor_file.read(start, stop, (self.height, self.width))
        return rows if rows.dtype == np.float32 else rows.astype(np.float32)

    def close(self) -> None:
        if self.tensor_file is not None:
            self.tensor_file.close()
            self.tensor_file = None

    def __del__(self):
        tensor_file = getattr(self, "tensor_file", None)
        if tensor_file is not None:
            try:
                tensor_file.close()
            except Exception:
                pass

    # pickling (DataLoader workers): reopen the file on the other side
    def __getstate__(self):
        state = self.__dict__.copy()
        state["tensor_file"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.tensor_file = TensorFile(self.path)     # errors name the file in a worker too


def _differs(stored, given) -> bool:
    try:
        return bool(np.any(np.asarray(stored) != np.asarray(given)))
    except (TypeError, ValueError):
        return str(stored) != str(given)

