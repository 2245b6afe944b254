"""``HDF5Writer``: a growable HDF5 dataset of tensor rows with the attributes of a tensor file.

Layout (``docs/formats.md`` §9): dataset ``/<dataset_name>`` of shape ``(N, *shape)``, maxshape
``(None, *shape)``, chunks ``(1, *shape)`` (one row per chunk, so a reader decompresses exactly the
rows it reads), optional dataset ``/last_timestamps`` (int64 ``(N,)``, chunks ``(1,)``) created by the
first ``write`` that passes timestamps.

Compression (``compression=``):

* ``"gzip"`` (default): deflate level 4, what the original tools write and every HDF5 reader
  (including plain h5py without plugins) can read.
* ``"blosc"``: the opt-in fast codec, hdf5plugin's Blosc2 with the Zstd compressor at level 1
  after a bit shuffle (HDF5 filter 32026). Chosen by measurement on 640x360 histo rows
  (``benchmarks/bench_hdf5.py``): 4-8x faster to write and 3-4x faster to read than gzip, at about
  gzip's size (20 % smaller on sparse rows, 5 % larger on dense ones). Blosc1+LZ4 with byte
  shuffle was 4x larger than gzip, Blosc1+Zstd reads only 2x faster, Bitshuffle+LZ4 reads a bit
  faster but is 1.5x larger. Readers need ``import hdf5plugin`` (>= 4.0; evstream's readers do).
* ``"none"``: uncompressed.

``store_as_uint8``: rows must lie in ``[0, 1]`` and are stored as ``uint8(round(255·x))``; readers
divide by 255.

Write failures (a full disk, a quota): HDF5 2.0 crashes the process (a segmentation fault in the
dataset flush of ``H5Fclose``) when it is closed after a failed write. So the HDF5 library never
sees a failure here: the file is written through h5py's file-object driver into a
:class:`_GuardedFile`, which records the first ``OSError`` of a write and discards the writes that
follow; :class:`HDF5Writer` raises :class:`~evstream.errors.OutputWriteError` (``"<file>: No space
left on device"``) at the next ``write`` or at ``close`` and the caller deletes the file. The
file-object driver costs no measurable time: ``benchmarks/bench_writer.py`` (61 rows 2x360x640
float32, best of 5, against bare h5py with the default driver, AMD EPYC shared by other jobs)
measured gzip +5 % / -18 %, blosc +18 % / -7 %, none -6 % / -20 % in two runs: within the
run-to-run noise.
"""

from __future__ import annotations

import errno
import os

import h5py
import hdf5plugin
import numpy as np

from evstream.errors import ArgumentError, EventArrayError, OutputWriteError

#: Accepted ``compression`` names.
COMPRESSIONS = ("gzip", "blosc", "none")
#: Rows added to the dataset each time it is full (it is truncated to the written rows on close).
GROW_ROWS = 100


def compression_options(compression: str) -> dict:
    """``create_dataset`` keyword arguments for a :data:`COMPRESSIONS` name."""
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4}
    if compression == "blosc":
        return dict(hdf5plugin.Blosc2(cname="zstd", clevel=1, filters=hdf5plugin.Blosc2.BITSHUFFLE))
    if compression in ("none", None):
        return {}
    raise ArgumentError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")


#: h5py file mode -> mode of the underlying Python file.
_FILE_MODES = {"w": "w+b", "w-": "x+b", "x": "x+b", "r+": "r+b"}


class _GuardedFile:
    """A binary file for h5py's file-object driver whose writes never fail.

    The first ``OSError`` of a write, truncate, flush or close is kept in :attr:`error` and every
    later write is discarded (reported as done), so that HDF5 never handles a failed write (see
    the module docstring). The owner checks :attr:`error`.
    """

    def __init__(self, path: str, mode: str):
        if mode == "a":
            mode = "r+" if os.path.exists(path) else "w"
        if mode not in _FILE_MODES:
            raise ArgumentError(f"HDF5Writer mode must be one of {sorted(_FILE_MODES) + ['a']}, "
                                f"got {mode!r}", path)
        self.h5_mode = "r+" if mode == "r+" else "w"
        try:
            self._file = open(path, _FILE_MODES[mode], buffering=0)   # no buffer to flush late
        except OSError as exc:
            raise write_error(exc, path) from None
        self.error: OSError | None = None

    def _guard(self, action, *args):
        if self.error is None:
            try:
                return action(*args)
            except OSError as exc:
                self.error = exc
        return None

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self._guard(self._write_all, view)
        return view.nbytes

    def _write_all(self, view: memoryview) -> None:
        while view.nbytes:
            view = view[self._file.write(view):]

    def truncate(self, size=None):
        self._guard(self._file.truncate, size)
        return size

    def flush(self) -> None:
        self._guard(self._file.flush)

    def read(self, size=-1):
        return self._file.read(size)

    def readinto(self, buffer):
        return self._file.readinto(buffer)

    def seek(self, offset, whence=0):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()

    def close(self) -> None:
        """Close the file, always (an unbuffered file releases its descriptor even when the
        close fails); the error is kept if it is the first one."""
        try:
            self._file.close()
        except OSError as exc:
            if self.error is None:
                self.error = exc


def write_error(exc: OSError, path: str) -> OutputWriteError:
    """The :class:`~evstream.errors.OutputWriteError` of a failed write or open of ``path``
    (``"No space left on device"`` for a full disk)."""
    if exc.errno is not None:
        return OutputWriteError(os.strerror(exc.errno) if exc.errno == errno.ENOSPC
                                else f"cannot write: {os.strerror(exc.errno)}", path)
    return OutputWriteError(f"cannot write: {exc}", path)


def _attr_value(value):
    """An attribute value h5py can store (None is skipped by the caller)."""
    if isinstance(value, (np.dtype, type)):
        return str(np.dtype(value))
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return value


class HDF5Writer:
    """Writes tensor rows to one dataset of an HDF5 file.

    Args:
        filename: the HDF5 file.
        dataset_name: name of the row dataset (``"data"`` for tensor files).
        shape: shape of one row, ``(C, H, W)``.
        dtype: dtype of the rows (ignored when ``store_as_uint8``: uint8).
        attrs: attributes of the dataset; None values are skipped.
        mode: h5py file mode (``"w"`` creates or truncates).
        store_as_uint8: store ``round(255·x)`` of rows in ``[0, 1]``; sets the attribute
            ``store_as_uint8 = True``.
        compression: one of :data:`COMPRESSIONS`.
        file_attrs: attributes of the file's root group (None values are skipped).

    Usable as a context manager; ``close()`` truncates the dataset to the rows written.
    """

    def __init__(self, filename, dataset_name, shape, dtype=np.uint8, attrs={}, mode="w",
                 store_as_uint8=False, *, compression: str = "gzip", file_attrs: dict | None = None):
        self.filename = os.fspath(filename)
        self.dataset_name = dataset_name
        self.shape = tuple(int(s) for s in shape)
        self.store_as_uint8 = bool(store_as_uint8)
        self.dtype = np.dtype(np.uint8 if self.store_as_uint8 else dtype)
        self._compression = compression_options(compression)
        self._raw = _GuardedFile(self.filename, mode)
        self.file = h5py.File(self._raw, self._raw.h5_mode)
        self.dataset = self.file.create_dataset(
            dataset_name, shape=(GROW_ROWS, *self.shape), maxshape=(None, *self.shape),
            chunks=(1, *self.shape), dtype=self.dtype, **self._compression)
        for key, value in dict(attrs).items():
            if value is not None:
                self.dataset.attrs[key] = _attr_value(value)
        if self.store_as_uint8:
            self.dataset.attrs["store_as_uint8"] = True
        for key, value in dict(file_attrs or {}).items():
            if value is not None:
                self.file.attrs[key] = _attr_value(value)
        self._check_written()
        self.last_timestamps = None
        self.index = 0          # next row written
        self.rows_written = 0   # rows holding data

    def write(self, array: np.ndarray, last_timestamps=None) -> None:
        """Append ``array`` (``[n, *shape]`` or one row ``shape``) at the cursor.

        ``last_timestamps``: one int64 per row (n_events mode); creates ``/last_timestamps``.
        """
        if self.file is None:
            raise ArgumentError("write() after close()", self.filename)
        self._check_written()
        array = np.asarray(array)
        if array.shape == self.shape:
            array = array[None]
        if array.shape[1:] != self.shape:
            raise EventArrayError(f"rows of shape {array.shape[1:]} written to a dataset of rows "
                                  f"{self.shape}", self.filename)
        n = len(array)
        if self.store_as_uint8:
            if array.size and (array.min() < 0 or array.max() > 1):
                raise EventArrayError(f"store_as_uint8 needs values in [0, 1], got "
                                      f"[{array.min()}, {array.max()}]", self.filename)
            array = np.round(array.astype(np.float32) * 255).astype(np.uint8)
        end = self.index + n
        if end > len(self.dataset):
            self.dataset.resize(max(end, len(self.dataset) + GROW_ROWS), axis=0)
        if n:
            self.dataset[self.index:end] = array
        if last_timestamps is not None:
            ts = np.asarray(last_timestamps, dtype=np.int64).reshape(-1)
            if len(ts) != n:
                raise EventArrayError(f"{len(ts)} last_timestamps for {n} rows", self.filename)
            if self.last_timestamps is None:
                self.last_timestamps = self.file.create_dataset(
                    "last_timestamps", shape=(len(self.dataset),), maxshape=(None,), chunks=(1,),
                    dtype=np.int64, **self._compression)
            if end > len(self.last_timestamps):
                self.last_timestamps.resize(len(self.dataset), axis=0)
            self.last_timestamps[self.index:end] = ts
        self.index = end
        self.rows_written = max(self.rows_written, end)
        self._check_written()

    def _check_written(self) -> None:
        """Raise the first write error of the file (OutputWriteError)."""
        if self._raw.error is not None:
            raise write_error(self._raw.error, self.filename)

    def set_cursor(self, index: int) -> None:
        """Move the write cursor to row ``index`` (``0 <= index <= rows written``)."""
        if not 0 <= index <= self.rows_written:
            raise ArgumentError(f"set_cursor({index}) outside [0, {self.rows_written}]",
                                self.filename)
        self.index = int(index)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()
            self._raw.flush()
            self._check_written()

    def close(self) -> None:
        """Truncate the datasets to the rows written and close the file; raises
        :class:`~evstream.errors.OutputWriteError` if any write of the file failed."""
        if self.file is None:
            return
        file, self.file = self.file, None
        try:
            self.dataset.resize(self.rows_written, axis=0)
            if self.last_timestamps is not None:
                self.last_timestamps.resize(self.rows_written, axis=0)
        finally:
            self.dataset = self.last_timestamps = None
            file.close()
            self._raw.close()
        self._check_written()

    def __enter__(self) -> "HDF5Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "file", None) is not None:
            try:
                self.close()
            except Exception:       # noqa: BLE001  (nobody is left to report it to)
                pass
