"""Writing precomputed tensor files (``docs/formats.md`` §9); the compatibility module
``metavision_ml.preprocessing.hdf5``.

:func:`write_to_hdf5` turns one recording (RAW of any EVT version, DAT, Prophesee HDF5 event
file) into one or more tensor files; :func:`generate_hdf5` does it for many recordings, in parallel
processes (:func:`~evstream.utils.parallel.run_parallel`), with progress reports;
:func:`~evstream.preprocessing.label_split.split_label` copies a ``_bbox.npy`` alongside. The
format itself (layout, attributes, reading, resizing) is :mod:`evstream.preprocessing.tensor_file`,
the output names :mod:`evstream.preprocessing.output_names`; this module re-exports the public
names it always had (``__all__``).

Decisions (the original's where it does not lose data):

* **Rows** (delta_t mode): row ``i`` holds the events with ``start_ts + i·dt <= t < start_ts +
  (i+1)·dt``, with times relative to ``start_ts``, as ``CDProcessor(H, W, num_tbins=1)`` makes them
  (``events.t`` relative to the row start, window length ``dt``). Row count = ``last_ts // dt + 1``,
  ``last_ts`` = time of the last event relative to ``start_ts``: the rows up to the one holding the
  last event (file duration = rows·dt). This equals the original's ``ceil(last_ts / dt)`` except
  when the last event lies exactly on a row boundary, where the original drops that event (and a
  recording whose only events are at ``start_ts`` gets no row at all); here it is kept. Empty rows
  inside the recording are written (zeros), so row ``i`` is always the window ``i``.
* **Rows** (n_events mode): row ``i`` holds events ``[i·n, (i+1)·n)`` from ``start_ts`` on; the last
  row is dropped if it has fewer than ``n`` events. Each row is computed with the row's events
  relative to the previous row's last event and a window length of its last relative ``t`` + 1 µs
  (so no event is outside the window). ``/last_timestamps[i]`` = time of the last event of row ``i``,
  relative to ``start_ts``; ``delta_t`` attr = 0. ``max_duration`` is refused in this mode.
* **Row dtype** = the ``CDProcessor``'s dtype (``registry.get_output_dtype``), or uint8 with
  ``store_as_uint8`` (stored ``round(255·x)``, read back as ``x / 255``); ``store_as_uint8`` is refused
  for ``diff`` and ``*_quantized`` (values outside ``[0, 1]``), like the original.
* **Naming**: basename up to its first ``'.'``, minus a trailing ``_td`` / ``_cd``, + ``.h5``; with
  ``max_duration`` (a multiple of ``delta_t``), one file per ``max_duration`` µs: ``name_{i}.h5``, ``i``
  from 0, each file's rows (and ``last_ts``) relative to its own start ``start_ts + i·max_duration``.
* **Atomic output**: every file is written under ``<final name>.partial-<pid>`` and renamed when
  the whole input is done (the ``_0`` / unsplit name last). An interrupted or failed run leaves at
  most ``*.partial-*`` files, never a file with the final name; a failure deletes its partial files.
* **Skip existing**: an input is skipped without being read when its outputs are those of the
  same request: every tensor file carries the request that made it in its root attribute
  ``evstream_request`` (input name, size and modification time, box file, every option; see
  :func:`request_fingerprint`), its split index (``evstream_split``) and, in the first one, the
  number of splits (``evstream_split_count``). Outputs of another request, an incomplete split
  set (an interrupted ``overwrite``) or missing label files are written again, with a warning.
  ``overwrite=True`` rewrites them whatever they are. A run with fewer splits than the previous
  one removes the stale ``name_{i}.h5``.
* **Labels** (``box_labels``) are written before the tensor files are renamed: a failed label
  file fails the input and leaves nothing under a final name.
* **Write errors** (full disk, no permission, an ``output_folder`` that cannot be created) are
  :class:`~evstream.errors.OutputWriteError` naming the final file or the folder.
* **Compression**: ``"gzip"`` (default, what the original writes), ``"blosc"`` (opt-in fast codec,
  Blosc2 + Zstd level 1 + bit shuffle: 3-4x faster to read and 4-8x faster to write than gzip, at
  about gzip's size; see :mod:`evstream.utils.h5_writer`), ``"none"``. Readers handle all three.

This module never imports torch.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import h5py
import numpy as np

from evstream.errors import ArgumentError, EvstreamError, GeometryError, OutputWriteError
from evstream.io import EventsIterator, RawReader
from evstream.preprocessing import registry
from evstream.preprocessing.label_split import label_outputs, split_label
from evstream.preprocessing.output_names import (output_basename, output_path, partial_name,
                                                 remove_quietly)
from evstream.preprocessing.processor import CDProcessor
from evstream.preprocessing.tensor_file import (MODES, TENSOR_DATASET,
                                                TensorFileAttrs, get_tensor_file_duration,
                                                open_tensor_file, read_tensor_attrs)
from evstream.utils.h5_writer import COMPRESSIONS, HDF5Writer, write_error
from evstream.utils.parallel import WORKER_SILENCE_S, run_parallel
from evstream.utils.run_ahead import run_ahead

#: Seconds between two progress reports of one input.
PROGRESS_PERIOD_S = 0.2
#: Default limit on the rows (time bins) one recording may produce in delta_t mode: 2^20 rows
#: (14.6 h at 50 ms). A recording whose events span more (a time base that loops or jumps)
#: is refused before any row is computed; pass ``max_rows`` to allow more.
MAX_ROWS = 1 << 20

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- writing
@dataclass
class WriteResult:
    """Outcome of one input: ``status`` is ``"written"``, ``"skipped"`` (outputs existed) or
    ``"failed"`` (``error`` says why)."""

    path: str
    status: str
    outputs: list[str] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    events: int = 0
    seconds: float = 0.0
    error: str | None = None


def check_options(preprocess, delta_t, mode, n_events, max_duration, store_as_uint8,
                  compression="gzip") -> tuple[int, int]:
    """Validate the writing options once; returns ``(delta_t, n_events)`` normalised like the
    original (``delta_t = 0`` in n_events mode, ``n_events = 0`` in delta_t mode)."""
    registry.get_preprocess_dict(preprocess)      # unknown name -> PreprocessingNameError
    if mode not in MODES:
        raise ArgumentError(f"mode must be one of {MODES}, got {mode!r}")
    if compression not in COMPRESSIONS:
        raise ArgumentError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    if store_as_uint8 and (preprocess == "diff" or "quantized" in preprocess):
        raise ArgumentError(f"store_as_uint8 cannot store {preprocess!r} (values outside [0, 1])")
    if mode == "n_events":
        if int(n_events) < 1:
            raise ArgumentError(f"n_events mode needs n_events >= 1, got {n_events}")
        if max_duration is not None:
            raise ArgumentError("max_duration splitting is only available in delta_t mode")
        return 0, int(n_events)
    if int(delta_t) < 1:
        raise ArgumentError(f"delta_t must be >= 1 µs, got {delta_t}")
    if max_duration is not None and (int(max_duration) < 1 or int(max_duration) % int(delta_t)):
        raise ArgumentError(f"max_duration ({max_duration} µs) must be a positive multiple of "
                            f"delta_t ({delta_t} µs)")
    return int(delta_t), 0


def downsampling_factor(sensor_hw, out_hw, path: str) -> int:
    """``k`` with ``sensor = out << k`` on both sides (power-of-two downscale only)."""
    (h0, w0), (h, w) = sensor_hw, out_hw
    if h < 1 or w < 1 or h0 % h or w0 % w or h0 // h != w0 // w or (h0 // h) & (h0 // h - 1):
        raise GeometryError(f"output size {h}x{w} (HxW) is not the sensor size {h0}x{w0} divided "
                            f"by a power of two", path)
    return int(math.log2(h0 // h))


def estimate_event_count(reader) -> int:
    """The event count of a recording without decoding it (exact except for RAW, where it is the
    number of data words, a slight over-estimate for EVT 3.0)."""
    if isinstance(reader, RawReader):
        header = reader.header
        word = 8 if header.encoding == "evt21" else (2 if header.encoding == "evt3" else 4)
        words = max(os.path.getsize(reader.path) - header.data_offset, 0) // word
        return words * (8 if header.encoding == "evt21" else 1)
    return int(reader.event_count())


def _check_row_count(reader, start_ts: int, delta_t: int, max_rows: int, path: str) -> None:
    """Refuse a recording whose last event needs more than ``max_rows`` rows of ``delta_t``."""
    last = reader.last_event_time()
    if last is None or last < start_ts:
        return
    rows = (last - start_ts) // delta_t + 1
    if rows > max_rows:
        raise ArgumentError(f"the events span {start_ts}..{last} us, {rows:,} rows of {delta_t} us: "
                            f"more than max_rows={max_rows:,} (a time base that loops or jumps?); "
                            f"pass a larger max_rows (--max-rows) to write it anyway", path)


def write_to_hdf5(path, start_ts=0, output_folder=".", delta_t=50000, preprocess="histo",
                  height=None, width=None, max_duration=None, store_as_uint8=False,
                  mode="delta_t", n_events=0, preprocess_kwargs={}, *, compression="gzip",
                  overwrite=False, box_labels=None, progress: Callable | None = None,
                  reader_kwargs: dict | None = None, max_rows: int = MAX_ROWS) -> WriteResult:
    """Write the tensor file(s) of one recording (see the module docstring for the rules).

    Args:
        path: RAW, DAT or HDF5 event file.
        start_ts: first time (µs, reader time: RAW times are time-shifted).
        output_folder: created if needed.
        delta_t, mode, n_events, max_duration: rows (``max_duration``: split every N µs).
        preprocess, preprocess_kwargs: registry name and kwargs (as ``CDProcessor``).
        height, width: output size; a power-of-two downscale of the sensor (default: sensor size).
        store_as_uint8: store ``round(255·x)`` (not for diff / quantized).
        compression: ``"gzip"``, ``"blosc"`` or ``"none"``.
        overwrite: rewrite existing outputs (default: skip the input, see module docstring).
        box_labels: a ``_bbox.npy`` file to copy alongside with :func:`split_label`.
        progress: ``progress(kind, payload)`` called with ``("start", {"path", "total_events"})``
            then ``("advance", {"events", "rows"})`` (increments) about every 0.2 s.
        reader_kwargs: forwarded to the event reader (e.g. sensor ``height``/``width`` for a RAW
            file whose header has none).
        max_rows: delta_t mode: refuse (ArgumentError naming the file and the span) a recording
            whose last event lies beyond ``max_rows`` rows (:data:`MAX_ROWS` by default).
    """
    t_start = time.perf_counter()
    path, output_folder = os.fspath(path), os.fspath(output_folder)
    delta_t, n_events = check_options(preprocess, delta_t, mode, n_events, max_duration,
                                      store_as_uint8, compression)
    request = request_fingerprint(path, start_ts=start_ts, delta_t=delta_t, preprocess=preprocess,
                                  height=height, width=width, max_duration=max_duration,
                                  store_as_uint8=store_as_uint8, mode=mode, n_events=n_events,
                                  preprocess_kwargs=preprocess_kwargs, compression=compression,
                                  box_labels=box_labels, reader_kwargs=reader_kwargs)
    if not overwrite:
        done = _outputs_of_request(path, output_folder, request, max_duration is not None,
                                   box_labels)
        if done is not None:
            return WriteResult(path, "skipped", outputs=done,
                               seconds=time.perf_counter() - t_start)
    make_output_folder(output_folder)

    iterator, sensor, out_hw, k = _open_recording(path, start_ts, mode, delta_t, n_events, height,
                                                  width, reader_kwargs, max_rows)
    try:
        proc = CDProcessor(out_hw[0], out_hw[1], num_tbins=1, preprocessing=preprocess,
                           downsampling_factor=k, preprocess_kwargs=preprocess_kwargs)
        row_shape = proc.array.shape[1:]
        outputs = _Outputs(path, output_folder,
                           None if max_duration is None else int(max_duration) // delta_t,
                           row_shape=row_shape, dtype=proc.dtype,
                           attrs=_row_attrs(preprocess, preprocess_kwargs, delta_t, mode,
                                            n_events, sensor, row_shape),
                           store_as_uint8=store_as_uint8, compression=compression,
                           request=request)
        report = _Progress(progress)
        try:
            if progress is not None:
                progress("start", {"path": path,
                                   "total_events": estimate_event_count(iterator.reader)})
            total_events, rows = _write_rows(iterator, proc, outputs, mode, delta_t, n_events,
                                             int(start_ts), report)
            outputs.publish(box_labels, start_ts, max_duration)
        except BaseException as exc:
            outputs.discard()
            if isinstance(exc, OutputWriteError) and exc.path in outputs.partials:
                raise OutputWriteError(exc.problem, outputs.final_of(exc.path)) from None
            if isinstance(exc, OSError) and not isinstance(exc, EvstreamError):
                raise write_error(exc, exc.filename or output_folder) from None
            raise
    finally:
        iterator.reader.close()
    report.advance(total_events, rows, final=True)
    finals = outputs.finals
    return WriteResult(path, "written", outputs=finals, rows=rows,
                       bytes=sum(os.path.getsize(f) for f in finals), events=total_events,
                       seconds=time.perf_counter() - t_start)


def _open_recording(path, start_ts, mode, delta_t, n_events, height, width, reader_kwargs,
                    max_rows):
    """The recording's rows as an :class:`~evstream.io.EventsIterator` (times relative to each
    row), its sensor ``(height, width)``, the output size and its downsampling exponent ``k``
    (the reader is closed again when the size is refused)."""
    iterator = EventsIterator(path, start_ts=int(start_ts), mode=mode,
                              delta_t=max(delta_t, 1), n_events=max(n_events, 1),
                              relative_timestamps=True, **(reader_kwargs or {}))
    try:
        if mode == "delta_t":
            _check_row_count(iterator.reader, int(start_ts), delta_t, int(max_rows), path)
        sensor = iterator.get_size()
        if sensor is None or None in tuple(sensor):
            if height is None or width is None:
                raise GeometryError("the file does not give the sensor size: pass height and "
                                    "width", path)
            sensor = (height, width)
        sensor = (int(sensor[0]), int(sensor[1]))
        out_hw = (int(height) if height is not None else sensor[0],
                  int(width) if width is not None else sensor[1])
        return iterator, sensor, out_hw, downsampling_factor(sensor, out_hw, path)
    except BaseException:
        iterator.reader.close()
        raise


def _row_attrs(preprocess, preprocess_kwargs, delta_t, mode, n_events, sensor, row_shape) -> dict:
    """The ``/data`` attributes of a tensor file (``docs/formats.md`` §9)."""
    kwargs = dict(registry.get_preprocess_dict(preprocess)["kwargs"])
    kwargs.update(preprocess_kwargs)
    kwargs.pop("preprocess_dtype", None)
    return {"events_to_tensor": np.bytes_(preprocess.encode("utf-8")),
            "delta_t": np.uint32(delta_t), "event_input_height": sensor[0],
            "event_input_width": sensor[1], "shape": row_shape, "mode": mode,
            "n_events": n_events, **kwargs}


class _Progress:
    """``progress("advance", {"events", "rows"})`` with the increments since the last report,
    at most every :data:`PROGRESS_PERIOD_S` (and once more with ``final``)."""

    def __init__(self, progress: Callable | None):
        self.progress = progress
        self.events = self.rows = 0
        self.last = time.perf_counter()

    def advance(self, events: int, rows: int, final: bool = False) -> None:
        if self.progress is None:
            return
        now = time.perf_counter()
        if final or now - self.last >= PROGRESS_PERIOD_S:
            self.progress("advance", {"events": events - self.events, "rows": rows - self.rows})
            self.events, self.rows, self.last = events, rows, now


#: rows computed ahead of the HDF5 write, in a background thread (decoding and the numba kernels
#: release the GIL, so the next rows are computed while one is compressed and written)
ROWS_AHEAD = 2


def _computed_rows(iterator, proc, mode, delta_t, n_events):
    """Per window of ``iterator``: ``(events, time of its last event relative to its start or
    None, its [C, H, W] row, iterator.current_time)``; in ``n_events`` mode a short last window
    comes with row None and ends the rows."""
    for events in iterator:
        n = len(events)
        if mode == "delta_t":
            yield n, int(events["t"][-1]) if n else None, proc(events, delta_t, copy=True)[0], None
        elif n < n_events:
            yield n, None, None, None
            return
        else:
            yield n, None, proc(events, int(events["t"][-1]) + 1, copy=True)[0], iterator.current_time


def _write_rows(iterator, proc, outputs: "_Outputs", mode, delta_t, n_events, start_ts,
                report: _Progress) -> tuple[int, int]:
    """Compute and write every row of the recording (the rules of the module docstring), the
    rows computed up to ROWS_AHEAD ahead of the writes; returns ``(events read, rows kept)``."""
    total_events = 0
    rows_per_split = outputs.rows_per_split
    outputs.writer(0)
    row = 0
    last_ts = None          # last event time relative to start_ts
    for n, last_t, tensor, current_time in run_ahead(
            _computed_rows(iterator, proc, mode, delta_t, n_events), ROWS_AHEAD):
        total_events += n
        if tensor is None:
            break
        if mode == "delta_t":
            if n:
                last_ts = row * delta_t + last_t
            split = 0 if rows_per_split is None else row // rows_per_split
            outputs.writer(split).write(tensor)
        else:
            # current_time = absolute time of the slice's last event in n_events mode
            outputs.writer(0).write(tensor, last_timestamps=[current_time - start_ts])
        row += 1
        report.advance(total_events, row)
    if mode == "delta_t":
        outputs.keep_rows(0 if last_ts is None else last_ts // delta_t + 1)   # up to the last event
    return total_events, outputs.finish()


class _Outputs:
    """The tensor files of one input while they are written: one :class:`HDF5Writer` per split
    (``rows_per_split`` rows each, or one file when None) under its partial name, renamed to the
    final names by :meth:`publish`, or removed by :meth:`discard`."""

    def __init__(self, path, output_folder, rows_per_split, *, row_shape, dtype, attrs,
                 store_as_uint8, compression, request):
        self.path, self.output_folder = path, output_folder
        self.rows_per_split = rows_per_split
        self._writer_args = dict(dtype=dtype, attrs=attrs, store_as_uint8=store_as_uint8,
                                 compression=compression)
        self.row_shape, self.request = row_shape, request
        self.writers: list[HDF5Writer] = []
        self.partials: list[str] = []
        self.finals: list[str] = []
        self.renamed: list[str] = []     # finals in place (removed again if a later step fails)
        self.labels: list[str] = []

    def writer(self, split: int) -> HDF5Writer:
        """The writer of split ``split`` (the splits before it are opened on the way)."""
        writers = self.writers
        while len(writers) <= split:
            index = len(writers)
            if len(writers) > 1:        # the first split stays open: it gets the split count
                writers[-1].close()
            final = output_path(self.path, self.output_folder,
                                None if self.rows_per_split is None else index)
            partial = partial_name(final)
            self.finals.append(final)
            self.partials.append(partial)
            writers.append(HDF5Writer(partial, TENSOR_DATASET, self.row_shape,
                                      file_attrs={REQUEST_ATTR: self.request, SPLIT_ATTR: index},
                                      **self._writer_args))
        return writers[split]

    def final_of(self, partial: str) -> str:
        return self.finals[self.partials.index(partial)]

    def keep_rows(self, keep: int) -> None:
        """Keep the first ``keep`` rows written (delta_t mode: the rows up to the last event);
        a split made only of dropped rows is removed."""
        writers, per_split = self.writers, self.rows_per_split
        if per_split is None:
            writers[0].rows_written = min(writers[0].rows_written, keep)
            return
        n_files = max(1, -(-keep // per_split))
        for i in range(n_files, len(writers)):
            writers[i].close()
            remove_quietly(self.partials[i])
        del writers[n_files:], self.partials[n_files:], self.finals[n_files:]
        last = writers[-1]
        last.rows_written = min(last.rows_written, keep - (len(writers) - 1) * per_split)

    def finish(self) -> int:
        """Write the split count into the first file and close every file; the row count."""
        rows = sum(w.rows_written for w in self.writers)
        self.writers[0].file.attrs[SPLIT_COUNT_ATTR] = len(self.writers)
        for w in self.writers:
            w.close()
        return rows

    def publish(self, box_labels, start_ts, max_duration) -> None:
        """The labels first, then the tensor files, the last split first: the first output
        exists only when every other output of the input does."""
        split = self.rows_per_split is not None
        if box_labels:
            self.labels = split_label(box_labels, self.output_folder, start_ts,
                                      max_duration if split else None,
                                      n_splits=len(self.finals) if split else None)
        for partial, final in reversed(list(zip(self.partials, self.finals))):
            os.replace(partial, final)
            self.renamed.append(final)
        if split:
            _remove_stale_splits(self.path, self.output_folder, len(self.finals))

    def discard(self) -> None:
        """After a failure: close every file and remove the partial files, the labels and (once
        a file is renamed, the older outputs of the input being a mixed set) the final files."""
        for w in self.writers:
            try:
                w.close()
            except Exception:       # noqa: BLE001  (the first error is the one reported)
                pass
        for p in self.partials + (self.finals if self.renamed else []) + self.labels:
            remove_quietly(p)


# --------------------------------------------------------------------------- reruns
def _text(value) -> str:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    return str(value)


#: Root attribute of every written tensor file: the request that made it (JSON, see
#: :func:`request_fingerprint`).
REQUEST_ATTR = "evstream_request"
#: Root attributes: the file's split index and the number of splits of its input.
SPLIT_ATTR, SPLIT_COUNT_ATTR = "evstream_split", "evstream_split_count"


def _file_identity(path) -> dict:
    st = os.stat(path)
    return {"name": os.path.basename(os.fspath(path)), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns}


def request_fingerprint(path, *, box_labels=None, **options) -> str:
    """What a tensor file was made from, as a JSON string stored in its :data:`REQUEST_ATTR`:
    the input (name, size, modification time), the box file (same), and every option of
    :func:`write_to_hdf5` that changes the output. A rerun without ``overwrite`` keeps an output
    only when its fingerprint is the current request's."""
    import json
    request = {"input": _file_identity(path),
               "box_labels": None if not box_labels else _file_identity(box_labels),
               **{k: v for k, v in sorted(options.items())}}
    return json.dumps(request, sort_keys=True, default=repr)


def _outputs_of_request(path, output_folder, request: str, split: bool, box_labels):
    """The complete outputs of a previous run of the same request, or None when they are
    missing, incomplete or made by another request (then they are redone)."""
    first = output_path(path, output_folder, 0 if split else None)
    if not os.path.exists(first):
        return None
    outputs, count, i = [], 1, 0
    while i < count:
        out = output_path(path, output_folder, i if split else None)
        try:
            with h5py.File(out, "r") as f:
                made_by = _text(f.attrs.get(REQUEST_ATTR, ""))
                index = int(f.attrs.get(SPLIT_ATTR, -1))
                if i == 0:      # the first split knows how many there are
                    count = int(f.attrs.get(SPLIT_COUNT_ATTR, 0))
        except (OSError, ValueError, TypeError):
            made_by = None
        if made_by != request or index != i or count < 1:
            logger.warning("%s: not the output of this request (%s): written again", out,
                           "unreadable" if made_by is None else
                           "another input, option or split" if made_by else
                           "no evstream request attribute")
            return None
        outputs.append(out)
        i += 1
    if box_labels:
        missing = [p for p in label_outputs(box_labels, output_folder, count if split else None)
                   if not os.path.isfile(p)]
        if missing:
            logger.warning("%s: label file(s) %s missing: written again", first, missing)
            return None
    return outputs


def _remove_stale_splits(path, output_folder, count: int) -> None:
    """Remove ``name_{i}.h5`` for ``i >= count`` left by a run with more splits."""
    i = count
    while os.path.exists(output_path(path, output_folder, i)):
        remove_quietly(output_path(path, output_folder, i))
        i += 1


def make_output_folder(folder) -> None:
    """Create ``folder`` (and its parents); an :class:`~evstream.errors.OutputWriteError` naming
    it when that is impossible (a file in the way, no permission)."""
    folder = os.fspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot create the output folder: "
                               f"{os.strerror(exc.errno) if exc.errno else exc}", folder) from None


# --------------------------------------------------------------------------- many files
def _write_job(job: dict, report) -> WriteResult:
    return write_to_hdf5(**job, progress=report)


def generate_hdf5(paths, output_folder, preprocess, delta_t, height=None, width=None, start_ts=0,
                  max_duration=None, n_processes=2, box_labels=[], store_as_uint8=False,
                  mode="delta_t", n_events=0, preprocess_kwargs={}, *, compression="gzip",
                  overwrite=False, progress: Callable | None = None, raise_on_error=True,
                  reader_kwargs: dict | None = None, max_rows: int = MAX_ROWS) -> list[WriteResult]:
    """Write the tensor files of many recordings (:func:`write_to_hdf5` for each).

    ``start_ts``: one int or one per path. ``box_labels``: empty or one ``_bbox.npy`` per path.
    ``n_processes > 1`` with several paths uses that many worker processes, each taking one
    input after another (:func:`~evstream.utils.parallel.run_parallel`); a failing or crashing
    input never stops the others, and a worker that reports nothing for
    :data:`~evstream.utils.parallel.WORKER_SILENCE_S` seconds (rows report every
    :data:`PROGRESS_PERIOD_S`) is stopped and its input failed. ``progress(kind, index, payload)``:
    ``"start"`` / ``"advance"`` as in :func:`write_to_hdf5`, then ``"done"`` (a
    :class:`WriteResult`) or ``"failed"`` (a message), per input ``index``. Returns one
    :class:`WriteResult` per path, in order; with ``raise_on_error`` (default), raises an
    :class:`~evstream.errors.EvstreamError` listing the failures once every input is done.
    """
    paths = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
    check_options(preprocess, delta_t, mode, n_events, max_duration, store_as_uint8, compression)
    starts = list(start_ts) if isinstance(start_ts, (list, tuple, np.ndarray)) else [start_ts] * len(paths)
    if len(starts) != len(paths):
        raise ArgumentError(f"{len(starts)} start_ts for {len(paths)} paths")
    box_labels = list(box_labels or [])
    if box_labels and len(box_labels) != len(paths):
        raise ArgumentError(f"{len(box_labels)} box label files for {len(paths)} paths")
    make_output_folder(output_folder)
    jobs = [dict(path=p, start_ts=int(s), output_folder=os.fspath(output_folder), delta_t=delta_t,
                 preprocess=preprocess, height=height, width=width, max_duration=max_duration,
                 store_as_uint8=store_as_uint8, mode=mode, n_events=n_events,
                 preprocess_kwargs=dict(preprocess_kwargs), compression=compression,
                 overwrite=overwrite, box_labels=box_labels[i] if box_labels else None,
                 reader_kwargs=reader_kwargs, max_rows=max_rows)
            for i, (p, s) in enumerate(zip(paths, starts))]
    results: list[WriteResult | None] = [None] * len(paths)

    def on_event(kind, index, payload):
        if kind == "done":
            results[index] = payload
        elif kind == "failed":
            results[index] = WriteResult(paths[index], "failed", error=str(payload))
        if progress is not None:
            progress(kind, index, payload)

    run_parallel(_write_job, jobs, int(n_processes), on_event, silence_timeout_s=WORKER_SILENCE_S)
    failures = [r for r in results if r.status == "failed"]
    if failures and raise_on_error:
        raise EvstreamError(f"{len(failures)} of {len(paths)} input(s) failed: "
                            + "; ".join(r.error for r in failures))
    return results


__all__ = ["TensorFileAttrs", "WriteResult", "generate_hdf5", "write_to_hdf5", "split_label",
           "open_tensor_file", "read_tensor_attrs", "get_tensor_file_duration", "output_basename",
           "output_path", "check_options", "run_parallel"]
