"""``.npy`` event and box files: ``EventNpyReader`` (metavision_core compatible).

A ``.npy`` file holds a 1-D structured array with a time field, in chronological order. Legacy
box files name their fields ``ts`` and ``confidence``; both are renamed on read (``t``,
``class_confidence``), as metavision_core does. Arrays whose fields are exactly x, y, p, t come
back as :data:`EventCD`; arrays with box fields (w, h) come back as :data:`EventBbox` (fields
matched by name, missing fields 0); anything else keeps its (renamed) dtype.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import FileFormatError, MissingFileError
from .dtypes import EventBbox, EventCD
from .reader import RecordFileReader

LEGACY_FIELD_NAMES = {"ts": "t", "confidence": "class_confidence"}


def _output_dtype(stored: np.dtype) -> np.dtype:
    names = [LEGACY_FIELD_NAMES.get(n, n) for n in stored.names]
    if set(names) == set(EventCD.names):
        return EventCD
    if is_box_dtype(stored):
        return EventBbox
    return np.dtype({"names": names, "formats": [stored.fields[n][0] for n in stored.names],
                     "offsets": [stored.fields[n][1] for n in stored.names],
                     "itemsize": stored.itemsize})


def is_box_dtype(dtype: np.dtype) -> bool:
    """True for a structured dtype of bounding boxes (``EventBbox`` fields, legacy names too):
    it has box sizes ``w``, ``h`` and a time field."""
    names = {LEGACY_FIELD_NAMES.get(n, n) for n in (dtype.names or ())}
    return {"t", "w", "h"} <= names


def npy_dtype(path: str) -> np.dtype:
    """The dtype of the array in a ``.npy`` file (memory-mapped: no row is read)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).dtype
    except Exception as exc:   # noqa: BLE001 - a damaged header raises SyntaxError, TokenError, ...
        raise FileFormatError(f"not a readable .npy array ({exc})", path) from None


def convert_fields(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Copy ``array`` into a new array of ``dtype``, matching fields by (legacy-renamed) name;
    fields of ``dtype`` absent from ``array`` are 0."""
    out = np.zeros(len(array), dtype=dtype)
    for name in array.dtype.names:
        target = LEGACY_FIELD_NAMES.get(name, name)
        if target in dtype.names:
            out[target] = array[name]
    return out


class EventNpyReader(RecordFileReader):
    """Reader of a structured ``.npy`` array of events or boxes (see :class:`EventReader`).

    The file is memory-mapped; each load copies only the requested rows.
    """

    format_name = "NPY"

    def __init__(self, path: str | os.PathLike, buffer_events: int = 1 << 19):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise MissingFileError("no such .npy file", path)
        try:
            self._array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:   # noqa: BLE001 - a damaged header raises SyntaxError, TokenError, ...
            raise FileFormatError(f"not a readable .npy array ({exc})", path) from None
        stored = self._array.dtype
        if self._array.ndim != 1 or stored.names is None:
            raise FileFormatError(f"expected a 1-D structured array, got shape "
                                  f"{self._array.shape} dtype {stored}", path)
        self.dtype = _output_dtype(stored)
        if "t" not in self.dtype.names:
            raise FileFormatError(f"no time field ('t' or 'ts') in dtype {stored}", path)
        self._time_field = next(n for n in stored.names if LEGACY_FIELD_NAMES.get(n, n) == "t")
        self._row, self._count = 0, len(self._array)
        super().__init__(path, buffer_events, out_of_bounds="keep")
        self.done = self._count == 0

    def _decode_into(self, out: np.ndarray) -> int:
        n = min(len(out), self._count - self._row)
        if n <= 0:
            return 0
        rows = self._array[self._row:self._row + n]
        if rows.dtype == self.dtype:
            out[:n] = rows
        elif self.dtype in (EventCD, EventBbox):
            out[:n] = convert_fields(rows, self.dtype)
        else:
            out[:n] = rows.view(self.dtype)
        self._row += n
        return n

    def _time_at(self, i: int) -> int:
        return int(self._array[self._time_field][i])

    def close(self) -> None:
        """Release the memory map (the reader holds no rows afterwards)."""
        self._array = np.empty(0, dtype=self._array.dtype)
        self._count = 0

    def get_size(self) -> None:
        """A ``.npy`` file carries no sensor geometry: always None."""
        return None
