"""The tensor-file format (``docs/formats.md`` §9) in one module: layout, attributes, reading
rows, and the one resize rule of every loader.

* **Layout**: a 4-D dataset ``/data`` of rows ``[C, H, W]`` (:data:`TENSOR_DATASET`), its
  attributes (:data:`RESERVED_ATTRS` have a meaning of their own, every other one is a preprocess
  kwarg), and in n_events files a ``/last_timestamps`` dataset (:data:`LAST_TIMESTAMPS`: the time
  of each row's last event, µs, relative to the file's start). :data:`MODES` are the two ways the
  rows (and the loaders' bins) are cut: ``"delta_t"`` and ``"n_events"``.
* **Detection**: :func:`is_tensor_file` is the one rule telling a tensor file from an event
  recording (by extension, and by content for ``.h5`` / ``.hdf5`` files that exist).
* **Validation**: :func:`open_tensor_file` opens, :func:`read_tensor_attrs` checks every attribute
  with a meaning and returns a :class:`TensorFileAttrs` (accepting the original's bytes-typed
  ``events_to_tensor`` and the legacy ``shift`` / ``downsampling_factor`` attributes);
  :func:`get_tensor_file_duration` is the file's duration (µs).
* **Values read** (:func:`tensor_output_dtype`): rows stored as uint8 with ``store_as_uint8`` are
  float32 ``x / 255``; other rows keep their stored dtype at their stored size; a resized row is
  float32 (the mean of integers is not an integer).
* **Reading rows**: :class:`TensorFile`, an open file whose rows are read straight into a
  caller's array (one low-level hyperslab per row) or as the values above
  (:meth:`TensorFile.read`), with ``last_timestamps`` read once at open.
* **The resize rule** (:func:`resize_method`, :func:`resize_rows`, :func:`check_output_size`):
  rows ``[n, C, h, w]`` reach any positive size ``(H, W)``: unchanged when equal; else in float32
  the mean over the covered cells when neither axis grows (for integer ratios ``kh x kw`` the
  mean of each block, summed and divided in float64 then rounded to float32, by a numba kernel
  as fast as OpenCV's INTER_AREA; other shrinks with ``mode="area"`` of ``torch.nn.functional.interpolate``), else
  ``mode="bilinear", align_corners=True`` (torch; the original ``CDProcessorDataLoader``'s
  resize).
  ``HDF5Iterator``, ``SequentialDataset``, ``CDProcessorDataLoader`` (tensor files, and event
  files built at another size) all resize with it, so one tensor file gives the same tensors
  through every loader.

This module does not import torch at import time (:func:`resize_rows` imports it when it
resizes).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter for readers)
import numpy as np
from numba import njit

from evstream.errors import FileFormatError, GeometryError, MissingFileError
from evstream.io.hdf5_events import HDF5_EXTENSIONS, hdf5_content
from evstream.io.iterator import BIN_MODES

#: The row dataset: ``(N, C, H, W)``.
TENSOR_DATASET = "data"
#: n_events files: time (µs, relative to the file's start) of the last event of each row.
LAST_TIMESTAMPS = "last_timestamps"
#: How rows (and the loaders' time bins) are cut: fixed durations or fixed event counts
#: (:data:`evstream.io.iterator.BIN_MODES`).
MODES = BIN_MODES
#: Attributes with a meaning of their own; every other attribute of ``/data`` is a preprocess kwarg.
RESERVED_ATTRS = ("events_to_tensor", "delta_t", "event_input_height", "event_input_width",
                  "shape", "mode", "n_events", "store_as_uint8", "downsampling_factor", "shift")
#: File name extensions of tensor files (HDF5 event files share them: see :func:`is_tensor_file`).
TENSOR_FILE_EXTENSIONS = HDF5_EXTENSIONS


def is_tensor_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is read as a tensor file: a ``.h5`` / ``.hdf5`` name (any case) that is
    not an HDF5 event file (``/CD/events`` or ``/events/{x,y,p,t}``, :func:`~evstream.io.hdf5_events
    .hdf5_content`). A missing ``.h5`` is a tensor file, so that the tensor-file path reports it;
    any other ``.h5`` content (no ``/data``, old compressed event buffers) is too, and
    :func:`open_tensor_file` says what it holds instead. Raises FileFormatError for an existing
    ``.h5`` that is not HDF5."""
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() not in TENSOR_FILE_EXTENSIONS:
        return False
    return not os.path.isfile(path) or hdf5_content(path) not in ("events", "event_arrays")


def _plain(value):
    """An attribute value as a plain Python value (bytes decoded, 0-d arrays unwrapped)."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return value.item() if value.shape == () else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class TensorFileAttrs:
    """What a tensor file says about itself.

    ``height`` / ``width`` are the original sensor size (``event_input_*``, or for legacy files the
    stored size shifted left by ``downsampling_factor`` / ``shift``); ``downsampling_factor`` is
    ``log2(height / stored height)``; ``kwargs`` holds every other attribute (the preprocess kwargs).
    """

    path: str
    name: str
    delta_t: int
    mode: str
    n_events: int
    shape: tuple[int, int, int]
    rows: int
    dtype: np.dtype
    height: int
    width: int
    downsampling_factor: int
    store_as_uint8: bool
    kwargs: dict = field(default_factory=dict)
    compression: tuple[int, ...] = ()

    @property
    def duration(self) -> int:
        """Covered time in µs: rows·delta_t, or the last row's timestamp (n_events)."""
        return get_tensor_file_duration(self.path) if self.mode == "n_events" \
            else self.rows * self.delta_t


def open_tensor_file(path: str | os.PathLike) -> h5py.File:
    """Open a tensor file for reading, checking that it has a 4-D numeric ``/data`` dataset."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise FileFormatError("is a directory, not a tensor file", path)
    if not os.path.isfile(path):
        raise MissingFileError("no such tensor file", path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(f"not a readable HDF5 file (truncated or corrupt?): {exc}",
                              path) from None
    try:
        data = f.get(TENSOR_DATASET)
    except (KeyError, OSError, RuntimeError) as exc:     # a broken link or object header
        f.close()
        raise FileFormatError(f"cannot open /data: {exc}", path) from None
    if not isinstance(data, h5py.Dataset) or data.ndim != 4:
        what = "an HDF5 event file (/CD/events), not a tensor file" if "CD" in f else \
            "no 4-D /data dataset: not a tensor file"
        f.close()
        raise FileFormatError(what, path)
    if data.dtype.kind not in "fiub" or data.dtype.names is not None or data.dtype.shape:
        dtype = data.dtype
        f.close()
        raise FileFormatError(f"/data has dtype {dtype}: tensor rows are numbers (float, int or "
                              f"uint8)", path)
    return f


#: Largest accepted ``delta_t`` / ``n_events`` attribute (µs / events): 2**62, so that
#: ``rows · delta_t`` stays an int64.
MAX_ATTR_VALUE = 2 ** 62
#: Largest accepted ``downsampling_factor`` / legacy ``shift`` (as the kernels' bound).
MAX_DOWNSAMPLING = 14


def _attr_text(attrs, key: str, path: str, default: str | None = None) -> str:
    """A text attribute (str or UTF-8 bytes, scalar); FileFormatError otherwise."""
    if key not in attrs:
        if default is None:
            raise FileFormatError(f"/data has no {key!r} attribute", path)
        return default
    value = attrs[key]
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise FileFormatError(f"attribute {key!r} is not UTF-8 text: {bytes(value)[:40]!r}",
                                  path) from None
    if not isinstance(value, str) or not value or not value.isprintable():
        raise FileFormatError(f"attribute {key!r} must be a non-empty text, got {value!r:.80}",
                              path)
    return value


def _attr_int(attrs, key: str, path: str, default: int, lo: int, hi: int) -> int:
    """An integer attribute in ``[lo, hi]`` (an integer, or a float with an integral value, as
    a scalar or a one-element array); FileFormatError otherwise."""
    if key not in attrs:
        return default
    value = attrs[key]
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        value = value.reshape(())[()]
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
        value, ok = int(value), True
    if not ok or not lo <= int(value) <= hi:
        raise FileFormatError(f"attribute {key}={_plain(value)!r:.80} is not an integer in "
                              f"[{lo}, {hi}]", path)
    return int(value)


def _attr_bool(attrs, key: str, path: str) -> bool:
    if key not in attrs:
        return False
    value = attrs[key]
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer))
                                               and int(value) in (0, 1)):
        return bool(value)
    raise FileFormatError(f"attribute {key}={_plain(value)!r:.80} is not a boolean", path)


def _sensor_size(attrs, shape, path: str) -> tuple[int, int, int]:
    """``(height, width, k)``: the sensor size and the downsampling exponent, checked against
    the stored row size ``shape = (C, h, w)``: ``height = h << k`` and ``width = w << k``."""
    _, h, w = shape
    if "event_input_height" in attrs or "event_input_width" in attrs:
        limit = 1 << 20
        height = _attr_int(attrs, "event_input_height", path, -1, 1, limit)
        width = _attr_int(attrs, "event_input_width", path, -1, 1, limit)
        if height < 0 or width < 0:
            raise FileFormatError("/data has one of event_input_height / event_input_width but "
                                  "not the other", path)
        for k in range(MAX_DOWNSAMPLING + 1):
            if (h << k, w << k) == (height, width):
                return height, width, k
        raise FileFormatError(f"attributes event_input_height={height}, event_input_width={width} "
                              f"are not the stored {h}x{w} (HxW) rows times a power of two", path)
    keys = [key for key in ("downsampling_factor", "shift") if key in attrs]
    k = _attr_int(attrs, keys[0], path, 0, 0, MAX_DOWNSAMPLING) if keys else 0
    return h << k, w << k, k


def read_tensor_attrs(path: str | os.PathLike, file: h5py.File | None = None) -> TensorFileAttrs:
    """Validate a tensor file and return its :class:`TensorFileAttrs` (``file``: already open).

    Every attribute with a meaning is checked against its type, its range and the ``/data``
    dataset (sensor size = stored size times ``2**k``; ``store_as_uint8`` only on uint8 rows;
    ``shape`` = the row shape; n_events files: a non-decreasing ``/last_timestamps`` of one
    int per row): a :class:`~evstream.errors.FileFormatError` names the file and the attribute.
    """
    path = os.fspath(path)
    f = open_tensor_file(path) if file is None else file
    try:
        data = f[TENSOR_DATASET]
        attrs = data.attrs
        if "events_to_tensor" not in attrs:
            raise FileFormatError("/data has no 'events_to_tensor' attribute: not a tensor file "
                                  "written by evstream or the Prophesee tools", path)
        name = _attr_text(attrs, "events_to_tensor", path)
        mode = _attr_text(attrs, "mode", path, default="delta_t")
        if mode not in MODES:
            raise FileFormatError(f"unknown mode attribute {mode!r} (expected one of {MODES})", path)
        delta_t = _attr_int(attrs, "delta_t", path, 0, 0, MAX_ATTR_VALUE)
        n_events = _attr_int(attrs, "n_events", path, 0, 0, MAX_ATTR_VALUE)
        if mode == "delta_t" and delta_t <= 0:
            raise FileFormatError(f"delta_t mode with delta_t attribute {delta_t}", path)
        rows = int(data.shape[0])
        shape = tuple(int(s) for s in data.shape[1:])
        if 0 in shape:
            raise FileFormatError(f"/data rows have an empty shape {shape}", path)
        if "shape" in attrs and not _same_shape(attrs["shape"], shape):
            raise FileFormatError(f"attribute shape={_plain(attrs['shape'])!r:.80} is not the "
                                  f"stored row shape {shape}", path)
        if mode == "n_events":
            _check_last_timestamps(f, rows, path)
        height, width, factor = _sensor_size(attrs, shape, path)
        store_as_uint8 = _attr_bool(attrs, "store_as_uint8", path)
        if store_as_uint8 and data.dtype != np.uint8:
            raise FileFormatError(f"attribute store_as_uint8 is set on rows of dtype {data.dtype} "
                                  f"(it means uint8 rows holding round(255·x))", path)
        kwargs = {k: _plain(v) for k, v in attrs.items() if k not in RESERVED_ATTRS}
        plist = data.id.get_create_plist()
        return TensorFileAttrs(path=path, name=name, delta_t=delta_t, mode=mode, n_events=n_events,
                               shape=shape, rows=rows, dtype=data.dtype, height=height,
                               width=width, downsampling_factor=factor,
                               store_as_uint8=store_as_uint8, kwargs=kwargs,
                               compression=tuple(plist.get_filter(i)[0]
                                                 for i in range(plist.get_nfilters())))
    except (OSError, RuntimeError, KeyError) as exc:     # unreadable attribute / object header
        raise FileFormatError(f"unreadable tensor file metadata: {exc}", path) from None
    finally:
        if file is None:
            f.close()


def _same_shape(value, shape) -> bool:
    value = np.asarray(value)
    return value.dtype.kind in "iu" and value.shape == (len(shape),) and \
        tuple(int(v) for v in value) == tuple(shape)


def _check_last_timestamps(f: h5py.File, rows: int, path: str) -> None:
    ts = f.get(LAST_TIMESTAMPS)
    if not isinstance(ts, h5py.Dataset) or ts.ndim != 1 or ts.dtype.kind not in "iu" \
            or len(ts) < rows:
        raise FileFormatError("n_events mode file without a /last_timestamps dataset of one "
                              "integer per row", path)
    values = np.asarray(ts[:rows], dtype=np.int64)
    if values.size and (values[0] < 0 or np.any(np.diff(values) < 0)):
        raise FileFormatError("/last_timestamps is not a non-decreasing list of times >= 0", path)


def get_tensor_file_duration(path: str | os.PathLike) -> int:
    """Duration of a tensor file in µs (``docs/formats.md`` §9): rows·delta_t in delta_t mode,
    ``last_timestamps[rows - 1]`` in n_events mode (0 for an empty file)."""
    with open_tensor_file(path) as f:
        attrs = read_tensor_attrs(path, f)
        if attrs.mode == "delta_t":
            return attrs.rows * attrs.delta_t
        return int(f[LAST_TIMESTAMPS][attrs.rows - 1]) if attrs.rows else 0




# --------------------------------------------------------------------------- values read
def tensor_output_dtype(attrs: TensorFileAttrs, out_hw=None) -> np.dtype:
    """dtype of the values a loader reads from a tensor file at size ``out_hw`` (``(H, W)``;
    None: the stored size): float32 for uint8-stored rows and for resized rows, else the stored
    dtype."""
    resized = out_hw is not None and tuple(int(s) for s in out_hw) != tuple(attrs.shape[1:])
    if attrs.store_as_uint8 or resized:
        return np.dtype(np.float32)
    return np.dtype(attrs.dtype)


# --------------------------------------------------------------------------- the resize rule
def check_output_size(out_hw, path: str | None = None) -> tuple[int, int]:
    """``(H, W)`` as ints, or a :class:`~evstream.errors.GeometryError` unless both are >= 1 (the
    resize rule reaches every positive size)."""
    try:
        h, w = (int(out_hw[0]), int(out_hw[1]))
    except (TypeError, ValueError, IndexError):
        raise GeometryError(f"tensor size must be two positive ints (H, W), got {out_hw!r}",
                            path) from None
    if h < 1 or w < 1:
        raise GeometryError(f"tensor size must be positive, got {h}x{w} (HxW)", path)
    return h, w


def resize_method(in_hw, out_hw) -> str | None:
    """How rows of size ``in_hw`` reach ``out_hw``: None (same size), ``"area"`` (neither axis
    grows) or ``"bilinear"`` (with ``align_corners=True``; at least one axis grows)."""
    (h0, w0), (h, w) = (int(in_hw[0]), int(in_hw[1])), (int(out_hw[0]), int(out_hw[1]))
    if (h0, w0) == (h, w):
        return None
    return "area" if h0 >= h and w0 >= w else "bilinear"


def resize_rows(rows: np.ndarray, out_hw, out: np.ndarray | None = None) -> np.ndarray:
    """``rows`` ``[n, C, h, w]`` (any numeric dtype) at size ``out_hw`` with the rule of
    :func:`resize_method`, in float32; written into ``out`` (``[n, C, H, W]``, any dtype) when
    given, which is returned. Rows already at ``out_hw`` are copied (cast to ``out``'s dtype)
    or returned as float32."""
    out_hw = check_output_size(out_hw)
    how = resize_method(rows.shape[-2:], out_hw)
    if how is None:
        if out is None:
            return rows if rows.dtype == np.float32 else rows.astype(np.float32)
        np.copyto(out, rows, casting="unsafe")
        return out
    (h0, w0), (h, w) = rows.shape[-2:], out_hw
    if out is None:
        out = np.empty(rows.shape[:-2] + out_hw, dtype=np.float32)
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        return out
    if how == "area" and h0 % h == 0 and w0 % w == 0:
        # an integer ratio: the mean of each block, summed in float64 (exact for the values of
        # tensor rows), rounded once to float32
        blocks = rows.reshape((-1, h0, w0))
        if out.dtype == np.float32 and out.flags.c_contiguous:
            _block_means(blocks, h0 // h, w0 // w, out.reshape((-1, h, w)))
        else:
            means = np.empty((blocks.shape[0], h, w), np.float32)
            _block_means(blocks, h0 // h, w0 // w, means)
            np.copyto(out, means.reshape(out.shape), casting="unsafe")
        return out
    import torch
    import torch.nn.functional as F
    source = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
    if how == "area":
        resized = F.interpolate(source, size=out_hw, mode="area")
    else:
        resized = F.interpolate(source, size=out_hw, mode="bilinear", align_corners=True)
    if out.dtype == np.float32:
        torch.from_numpy(out).copy_(resized)
    else:
        np.copyto(out, resized.numpy(), casting="unsafe")
    return out


@njit(cache=True)
def _block_means(planes, kh, kw, out):        # pragma: no cover  (compiled)
    """``out[p, i, j]`` = the mean of ``planes[p, i·kh:(i+1)·kh, j·kw:(j+1)·kw]``: summed and
    divided in float64, rounded once to ``out``'s float32 (the kh source rows are added into one
    row first, which the compiler vectorises)."""
    n, h, w = out.shape
    w0 = planes.shape[2]
    area = kh * kw
    acc = np.empty(w0, np.float64)
    for p in range(n):
        for i in range(h):
            first = planes[p, i * kh]
            for x in range(w0):
                acc[x] = first[x]
            for di in range(1, kh):
                row = planes[p, i * kh + di]
                for x in range(w0):
                    acc[x] += row[x]
            o = out[p, i]
            if kw == 2:
                for j in range(w):
                    o[j] = (acc[2 * j] + acc[2 * j + 1]) / area
            else:
                for j in range(w):
                    total = acc[j * kw]
                    for dj in range(1, kw):
                        total += acc[j * kw + dj]
                    o[j] = total / area


# --------------------------------------------------------------------------- an open file
class TensorFile:
    """An open, validated tensor file.

    Attributes: ``path``, ``attrs`` (:class:`TensorFileAttrs`), ``rows``, ``row_shape``
    (``(C, H, W)``), ``dtype`` (stored), ``last_timestamps`` (int64 per row, µs relative to the
    file's start; None in delta_t mode), read once when the file is opened.

    :meth:`read_into` copies stored rows straight into a caller's array with HDF5's low-level
    calls (one hyperslab per row: h5py's generic selection code costs more than the read of a
    small row, and HDF5 scatters strided memory selections slowly); :meth:`read` gives the values
    a loader returns (:func:`tensor_output_dtype`, :func:`resize_rows`). Usable as a context
    manager.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.file = open_tensor_file(self.path)
        try:
            self.attrs = read_tensor_attrs(self.path, self.file)
            self.data = self.file[TENSOR_DATASET]
            self.last_timestamps = (
                np.asarray(self.file[LAST_TIMESTAMPS][:self.attrs.rows], dtype=np.int64)
                if self.attrs.mode == "n_events" else None)
        except BaseException:
            self.file.close()
            raise
        self.rows = self.attrs.rows
        self.row_shape = tuple(self.attrs.shape)
        self.dtype = self.data.dtype
        self._fspace = self.data.id.get_space()
        self._mspace = h5py.h5s.create_simple((1,) + self.row_shape)

    def _read_error(self, start: int, stop: int, exc: Exception) -> FileFormatError:
        return FileFormatError(f"cannot read rows {start}..{stop} of /data (corrupt file or a "
                               f"compression filter that is not installed): {exc}", self.path)

    def read_into(self, start: int, stop: int, out: np.ndarray, slot: int | None = None) -> int:
        """Stored rows ``[start, stop)`` into ``out[:n]``, or into ``out[:n, slot]`` when ``out``
        is a ``[T, N, C, H, W]`` batch (cast to ``out``'s dtype); rows past the end of the file
        are left as they are. Returns n."""
        try:
            return self._read_into(start, stop, out, slot)
        except (OSError, RuntimeError) as exc:      # a corrupt chunk, a missing filter plugin
            raise self._read_error(start, stop, exc) from None

    def _read_into(self, start: int, stop: int, out: np.ndarray, slot=None) -> int:
        n = max(min(stop, self.rows) - start, 0)
        offset = (0,) * len(self.row_shape)
        for k in range(n):
            dest = out[k] if slot is None else out[k, slot]
            if dest.dtype == self.dtype and dest.flags.c_contiguous and dest.flags.writeable:
                self._fspace.select_hyperslab((start + k,) + offset, (1,) + self.row_shape)
                self.data.id.read(self._mspace, self._fspace, dest)
            else:
                dest[...] = self.data[start + k]
        return n

    def read(self, start: int, stop: int, out_hw=None) -> np.ndarray:
        """Rows ``[start, stop)`` (clipped to the file) as the values a loader returns: an
        ``[n, C, H, W]`` array of :func:`tensor_output_dtype` (uint8-stored rows / 255 in
        float32), resized to ``out_hw`` (None: stored size) with :func:`resize_rows`."""
        stop = min(stop, self.rows)
        try:
            raw = self.data[start:stop] if stop > start else \
                np.zeros((0,) + self.row_shape, self.dtype)
        except (OSError, RuntimeError) as exc:
            raise self._read_error(start, stop, exc) from None
        if self.attrs.store_as_uint8:
            raw = np.divide(raw, np.float32(255), dtype=np.float32)
        if out_hw is not None and resize_method(self.row_shape[1:], out_hw) is not None:
            raw = resize_rows(raw, out_hw)
        return raw

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "TensorFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
