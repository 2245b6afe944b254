"""Prophesee RAW files (EVT 2.0 / 2.1 / 3.0): ``RawReader`` with bounded-memory streaming and
a sparse seek index.

The file is read in blocks of words; the format's decoder (``evt2``, ``evt21``, ``evt3``) keeps
its state across blocks, so memory does not grow with the file. Every ``WORDS_PER_CHECKPOINT``
words the decoder state is recorded in a :class:`RawIndex` (word offset, decoder state, number
of events before, last timestamp before). The index fills up as the file is read; a seek
restarts decoding at the last checkpoint before the target instead of at the start of the
file. ``cache_index=True`` saves the complete index beside the file (``<file>.evindex.npz``)
and reuses it while the file is unchanged; nothing is written otherwise. Complete indexes are
also kept in memory (:data:`COMPLETE_INDEXES`): a reader opened again on the same unchanged file
with the same settings, in this process or in one forked from it (a loader's workers, restarted
every epoch), starts with the whole index instead of decoding the file to count its events.

Time shifting (on by default, as in OpenEB): timestamps are reported relative to an origin taken
from the first TIME_HIGH word (EVT 2.x: its time; EVT 3.0: its time minus 4096 µs), so
recordings start near 0. Seeks and windows are expressed in reported (shifted) time.
"""

from __future__ import annotations

import os
import warnings
import zlib
from collections import OrderedDict

import numpy as np

from ..errors import ArgumentError, FileFormatError
from .dtypes import EventCD, EventExtTrigger
from .evt2 import Evt2Decoder
from .evt3 import Evt3Decoder
from .evt21 import Evt21Decoder
from .header import RawHeader, read_raw_header
from . import raw_parallel
from .raw_stream import TRIGGER_BUFFER, WORDS_PER_CHECKPOINT, RawDecodeStream, RawIndex
from .reader import EventReader, OutOfBounds, assign_records, copy_records

DECODERS = {"evt2": Evt2Decoder, "evt21": Evt21Decoder, "evt3": Evt3Decoder}
RAW_FORMAT_NAMES = {"evt2": "RAW EVT 2.0", "evt21": "RAW EVT 2.1", "evt3": "RAW EVT 3.0"}
SIZE_SAMPLE_WORDS = 1 << 16
#: words :meth:`RawReader.read_first` decodes on several threads, against the words its events
#: per word estimate says it needs, when the seek index is not complete
READ_FIRST_MARGIN = 1.1
NO_LIMIT = 1 << 16
INDEX_VERSION = 1
#: checkpoints the in-memory complete indexes hold in all (about 130 bytes each: some 128 GB of
#: RAW files at the default interval); the least recently opened file's index goes first
SHARED_INDEX_CHECKPOINTS = 1 << 18
#: bytes at each end of a file that :class:`CompleteIndexes` checks
FINGERPRINT_BYTES = 4096


def _make_decoder(header: RawHeader, out_of_bounds: str, evt21_legacy_word_order: bool):
    width, height = (NO_LIMIT, NO_LIMIT) if out_of_bounds == "keep" else (header.width,
                                                                           header.height)
    if header.encoding == "evt21":
        return Evt21Decoder(width, height, legacy_word_order=evt21_legacy_word_order)
    return DECODERS[header.encoding](width, height)


class CompleteIndexes:
    """Complete :class:`RawIndex` es of the files read in this process, by file and reader
    settings (the stamp: size, modification time, interval, ``out_of_bounds``, EVT 2.1 layout;
    and a CRC of the file's first and last :data:`FINGERPRINT_BYTES`), at most
    ``max_checkpoints`` checkpoints in all. A complete index is never written again, so
    readers share it. No lock (a lock held by another thread at a fork would hang the forked
    worker): the operations tolerate another thread's at the same time, at worst keeping a
    few checkpoints more or fewer than the bound."""

    def __init__(self, max_checkpoints: int = SHARED_INDEX_CHECKPOINTS):
        self.max_checkpoints = max_checkpoints
        self._indexes: OrderedDict[tuple[str, bytes, int], RawIndex] = OrderedDict()
        self._checkpoints = 0        # held in all

    @staticmethod
    def key(path: str, stamp: np.ndarray) -> tuple[str, bytes, int]:
        """The key of the file ``path`` as it is now, read with the settings of ``stamp``."""
        # the stamp's modification time may not change when a file is rewritten within a few
        # ms (coarse file clocks): the CRC of its first and last bytes tells most such files apart
        with open(path, "rb") as f:
            head = f.read(FINGERPRINT_BYTES)
            f.seek(max(os.fstat(f.fileno()).st_size - FINGERPRINT_BYTES, 0))
            tail = f.read(FINGERPRINT_BYTES)
        return os.path.realpath(path), stamp.tobytes(), zlib.crc32(tail, zlib.crc32(head))

    def get(self, key: tuple[str, bytes, int]) -> RawIndex | None:
        """The complete index kept for ``key`` (:meth:`key`), or None."""
        index = self._indexes.get(key)
        if index is not None:
            try:
                self._indexes.move_to_end(key)
            except KeyError:             # another thread's add dropped it meanwhile
                pass
        return index

    def clear(self) -> None:
        """Forget every index (the next reader of each file builds its own again)."""
        self._indexes.clear()
        self._checkpoints = 0

    def add(self, key: tuple[str, bytes, int], index: RawIndex) -> None:
        """Keep ``index`` (complete) for ``key``, dropping the least recently used ones beyond
        ``max_checkpoints``."""
        old = self._indexes.pop(key, None)
        self._checkpoints -= 0 if old is None else len(old.states)
        if not index.complete or len(index.states) > self.max_checkpoints:
            return
        self._indexes[key] = index
        self._checkpoints += len(index.states)
        while self._checkpoints > self.max_checkpoints and self._indexes:
            self._checkpoints -= len(self._indexes.popitem(last=False)[1].states)


#: The process's :class:`CompleteIndexes` (inherited by forked processes).
COMPLETE_INDEXES = CompleteIndexes()


class RawReader(EventReader):
    """Reader of a RAW EVT 2.0 / 2.1 / 3.0 file (see :class:`EventReader` for the cursor).

    Args:
        path: the ``.raw`` file.
        max_events: capacity of the decode buffer in events (bounds memory: 16 bytes each).
        do_time_shifting: report times relative to the first TIME_HIGH (see module docstring).
        height, width: sensor geometry when the header has none (see
            :func:`~evstream.io.header.read_raw_header` for the precedence).
        out_of_bounds: events outside the geometry: ``"warn"`` drops them with one warning,
            ``"raise"`` raises :class:`~evstream.errors.GeometryError`, ``"keep"`` keeps them.
        allow_truncated: a file whose data is not a whole number of words (a recording cut
            mid-word) raises :class:`~evstream.errors.FileFormatError` unless this is True, in
            which case the trailing bytes are ignored with a warning.
        cache_index: save the complete seek index beside the file and reuse it. The cache is
            written atomically; a corrupt or stale one is ignored with a warning and rebuilt,
            and a folder that cannot be written only gives a warning.
        evt21_legacy_word_order: EVT 2.1 only: None (default) uses the layout the header selects
            (:func:`~evstream.io.header.evt21_layout`: ``endianness`` in ``% format``, else a
            ``% endianness`` line, else the Prophesee camera rule); True forces the "legacy"
            layout (32-bit halves swapped, IMX636), False the "little" one.
        index_interval_words: words between two seek checkpoints (a seek decodes at most this
            many words to reach its target; the index holds one decoder state per interval).
    """

    def __init__(self, path: str | os.PathLike, max_events: int = 1 << 19,
                 do_time_shifting: bool = True, height: int | None = None,
                 width: int | None = None, out_of_bounds: OutOfBounds = "warn",
                 allow_truncated: bool = False, cache_index: bool = False,
                 evt21_legacy_word_order: bool | None = None,
                 index_interval_words: int = WORDS_PER_CHECKPOINT):
        path = os.fspath(path)
        if int(max_events) < 64:
            raise ArgumentError(f"max_events must be >= 64, got {max_events}", path)
        self.header = read_raw_header(path, height=height, width=width)
        self._layout_forced = evt21_legacy_word_order is not None
        self._warned_empty = False
        if evt21_legacy_word_order is None:
            evt21_legacy_word_order = self.header.evt21_layout == "legacy"
        self._evt21_legacy_word_order = bool(evt21_legacy_word_order)
        #: sensor size in pixels (metavision_core attributes)
        self.width, self.height = self.header.width, self.header.height
        decoder = _make_decoder(self.header, out_of_bounds, self._evt21_legacy_word_order)
        word_size = decoder.word_dtype.itemsize
        data_bytes = os.path.getsize(path) - self.header.data_offset
        if data_bytes % word_size:
            problem = (f"truncated file: {data_bytes % word_size} trailing byte(s) after the last "
                       f"complete {word_size}-byte {self.header.encoding} word")
            if not allow_truncated:
                raise FileFormatError(problem + " (pass allow_truncated=True to read the complete "
                                      "words)", path)
            warnings.warn(f"{path}: {problem}; they are ignored", stacklevel=2)
        self.do_time_shifting = bool(do_time_shifting)
        self._cache_index = cache_index
        stat = os.stat(path)
        self._stamp = np.array([INDEX_VERSION, stat.st_size, stat.st_mtime_ns,
                                index_interval_words, int(out_of_bounds == "keep"),
                                int(self._evt21_legacy_word_order)], dtype=np.int64)
        self._index_kept = False         # in COMPLETE_INDEXES
        self._index_saved = False        # the index cache file is up to date
        self._index_key = CompleteIndexes.key(path, self._stamp)
        index = COMPLETE_INDEXES.get(self._index_key)
        if cache_index:
            cached = RawIndex.load(self._index_path(path), self._stamp, index_interval_words)
            self._index_saved = cached is not None
            index = index or cached
        self._stream = RawDecodeStream(path, self.header, data_bytes // word_size,
                                        index or RawIndex(index_interval_words), decoder)
        self._trigger_chunks: list[np.ndarray] = []
        self._events_estimate: int | None = None      # see _size_hint
        super().__init__(path, max_events, out_of_bounds)
        self.origin = self._find_time_origin() if self.do_time_shifting else 0
        self._stream.restore(0)
        self.done = self._stream.n_words == 0
        if self._stream.index.complete:
            self._after_complete_pass(None)

    @staticmethod
    def _index_path(path: str) -> str:
        return path + ".evindex.npz"

    def _find_time_origin(self) -> int:
        """The shift origin: decode from the start until the first TIME_HIGH word."""
        scratch = np.empty(4096, dtype=EventCD)
        stream = self._stream
        stream.restore(0)
        while stream.decoder.first_time_base < 0 and stream.word_pos < stream.n_words:
            stream.decode_into(scratch, lambda triggers: None, lambda dropped: None)
        return stream.decoder.time_shift_origin() if stream.decoder.first_time_base >= 0 else 0

    # source hooks
    def _decode_into(self, out: np.ndarray) -> int:
        return self._decode_until(out, None)[0]

    def _decode_until(self, out: np.ndarray, t_end: int | None) -> tuple[int, bool]:
        stream = self._stream
        t_stop = None if t_end is None or not stream.decoder.stops_at_time else t_end + self.origin
        n = stream.decode_into(out, self._keep_triggers, self._on_dropped, self.origin, t_stop)
        if stream.index.complete:
            self._after_complete_pass(stream.decoder.counters if stream.word_pos >= stream.n_words
                                      else None)
        return n, stream.at_t_stop

    def _after_complete_pass(self, c: dict[str, int] | None) -> None:
        """Once the index is complete: keep it in :data:`COMPLETE_INDEXES` and save the index
        cache (once each); with ``c``, the counters of a decoder that reached the end of the
        file, warn about a file whose data words gave no event at all."""
        if not self._index_kept:
            self._index_kept = True
            COMPLETE_INDEXES.add(self._index_key, self._stream.index)
        if self._cache_index and not self._index_saved:
            self._index_saved = True
            self._stream.index.save(self._index_path(self.path), self._stamp)
        if c is not None and self._stream.index.total_events == 0 and self._stream.n_words \
                and not self._warned_empty:
            self._warned_empty = True
            hint = (f" (EVT 2.1 decoded with the {'legacy' if self._evt21_legacy_word_order else 'little'}"
                    f" layout, selected by {'the argument' if self._layout_forced else self.header.evt21_layout_source}"
                    f"; pass evt21_legacy_word_order= to force the other)"
                    if self.header.encoding == "evt21" else "")
            warnings.warn(f"{self.path}: {self._stream.n_words} data words gave no event "
                          f"({c['words_before_time_high']} before the first TIME_HIGH, "
                          f"{c['out_of_bounds']} outside the geometry, {c['skipped_words']} "
                          f"skipped){hint}", stacklevel=5)

    def _size_hint(self) -> int:
        """Events in the file: exact once decoded, else the events per word of the first
        ``SIZE_SAMPLE_WORDS`` words times the word count, plus 5 % (so that ``read_all``
        rarely has to grow, and copy, its output: EVT 3.0 vectors give up to 12 events a word)."""
        index = self._stream.index
        if index.complete:
            return index.total_events
        if self._events_estimate is None:
            self._events_estimate = self._estimate_events()
        return self._events_estimate

    def _estimate_events(self) -> int:
        """:meth:`_size_hint` before the file is decoded whole (computed once per reader)."""
        n_words = self._stream.n_words
        sample = min(n_words, SIZE_SAMPLE_WORDS)
        if sample == 0:
            return 0
        decoder = self._new_decoder()
        words = np.fromfile(self.path, dtype=decoder.word_dtype, count=sample,
                            offset=self.header.data_offset)
        scratch = np.empty(1 << 14, dtype=EventCD)
        triggers = np.empty(TRIGGER_BUFFER, dtype=EventExtTrigger)
        pos = events = 0
        while pos < len(words):
            consumed, n, _ = decoder.decode(words[pos:], scratch, triggers)
            pos += consumed
            events += n
        return int(events / sample * n_words * 1.05) + 1024

    def _read_all_start(self) -> tuple[np.ndarray, int]:
        """On several threads (:mod:`evstream.io.raw_parallel`) when the file is long enough and
        more than one CPU is there."""
        stream = self._stream
        parts = raw_parallel.plan_parts(stream.n_words, stream.index.words_per_checkpoint,
                                        raw_parallel.read_all_threads())
        if not parts:
            return super()._read_all_start()
        out, n = raw_parallel.decode_parts(stream, parts, self._size_hint(), self._new_decoder,
                                           self.origin, self._keep_triggers)
        self._eof = stream.word_pos >= stream.n_words
        if self._eof:               # what decode_into does at the end of the file
            self._on_dropped(0)
            self._after_complete_pass(stream.decoder.counters)
        return out, n

    def read_first(self, n_events: int) -> np.ndarray:
        """The file's first ``n_events`` events (fewer in a shorter file), as ``reset()`` then
        ``load_n_events(n_events)`` return them, decoded on several threads
        (:mod:`evstream.io.raw_parallel`) over the words that hold them: all of them when the
        seek index is complete, else as many as the file's events per word (estimated, plus
        :data:`READ_FIRST_MARGIN`) say; what the estimate missed is decoded after, on one
        thread. The reader is left as just opened (cursor at the start, seek index unchanged;
        dropped events are counted and warned about once, as by a read)."""
        n_events = int(n_events)
        if n_events < 1:
            raise ArgumentError(f"read_first needs n_events >= 1, got {n_events}", self.path)
        stream, threads = self._stream, raw_parallel.read_all_threads()
        index, cp = stream.index, stream.index.words_per_checkpoint
        if index.complete:
            c = index.last_before_event(n_events) + 1      # its events_before exceed n_events
            words, hint = (c * cp, index.events_before[c]) if c < len(index.states) else \
                (stream.n_words, index.total_events)
        else:
            per_word = self._size_hint() / max(stream.n_words, 1)
            words = -(-int(n_events / max(per_word, 1e-9) * READ_FIRST_MARGIN) // cp) * cp
            hint = int(per_word * min(words, stream.n_words))
        parts = raw_parallel.plan_parts(min(words, stream.n_words), cp, threads)
        if not parts:
            self.reset()
            out = self.load_n_events(n_events)
        else:
            out = self._read_first_parts(n_events, parts, hint)
        self._reset_cursor()
        self._rewind()
        self.done = stream.n_words == 0
        return out

    def _read_first_parts(self, n_events: int, parts: list, hint: int) -> np.ndarray:
        """:meth:`read_first` on ``parts`` of the words before ``parts[-1].stop``, in a
        stream of its own, then on one thread up to ``n_events`` events."""
        prefix = RawDecodeStream(self.path, self.header, parts[-1].stop,
                                 RawIndex(self._stream.index.words_per_checkpoint),
                                 self._new_decoder())
        try:
            out, n = raw_parallel.decode_parts(prefix, parts, hint, self._new_decoder,
                                               self.origin, lambda triggers: None)
            prefix.n_words = self._stream.n_words      # on past the estimate, if it fell short
            slack = prefix.decoder.max_events_per_word + raw_parallel.TAIL_EVENTS
            while n < n_events and prefix.word_pos < prefix.n_words:
                if len(out) < n_events + slack:
                    grown = np.empty(n_events + slack, dtype=EventCD)
                    assign_records(grown[:n], out[:n])
                    out = grown
                got = prefix.decode_into(out[n:n_events + slack], lambda triggers: None,
                                         lambda dropped: None, self.origin)
                if got == 0:
                    break
                n += got
        finally:
            prefix.close()
        self._report_out_of_bounds(prefix.decoder.counters["out_of_bounds"]
                                   - self.out_of_bounds_count, self.header.height,
                                   self.header.width)
        n = min(n, n_events)
        return out[:n] if 2 * n > len(out) else copy_records(out[:n])

    def _keep_triggers(self, triggers: np.ndarray) -> None:
        self._trigger_chunks.append(copy_records(triggers))  # times already shifted by the decoder

    def _on_dropped(self, n_dropped: int) -> None:
        # the decoder's counter covers the file up to the decode position; report only the part
        # beyond what was counted before (a seek back re-decodes without double counting)
        n_new = self._stream.decoder.counters["out_of_bounds"] - self.out_of_bounds_count
        self._report_out_of_bounds(n_new, self.header.height, self.header.width)

    def _rewind(self) -> None:
        self._trigger_chunks.clear()
        self._stream.restore(0)

    def _seek_hint_event(self, n: int) -> int:
        self._trigger_chunks.clear()
        checkpoint = self._stream.index.last_before_event(n)
        self._stream.restore(checkpoint)
        return self._stream.events_emitted

    def _seek_hint_time(self, t: int) -> int:
        self._trigger_chunks.clear()
        checkpoint = self._stream.index.last_before_time(t + self.origin)
        self._stream.restore(checkpoint)
        return self._stream.events_emitted

    def _time_after(self, events: np.ndarray, t_end: int | None, start: int) -> int:
        """OpenEB's RAW cursor rule (see :mod:`evstream.io.reader`): the window end, even at the
        end of the file; after a count-limited load, the ``t`` of the next event."""
        if t_end is not None:
            return t_end
        if not self.done:
            return int(self._buf["t"][self._buf_start])
        return super()._time_after(events, t_end, start)

    def _time_before_cursor(self) -> int:
        last = self._stream.last_raw_t
        return last - self.origin if last >= 0 else 0

    def _last_time_of_file(self) -> int:
        index = self._complete_index()
        return index.last_raw_t - self.origin if index.last_raw_t >= 0 else 0

    def _complete_index(self) -> RawIndex:
        """The index of the whole file, decoding the rest of it once if needed."""
        index = self._stream.index
        if not index.complete:
            scan = RawDecodeStream(self.path, self.header, self._stream.n_words, index,
                                   self._new_decoder())
            threads = raw_parallel.read_all_threads()
            covered = (len(index.states) - 1) * index.words_per_checkpoint
            parts = raw_parallel.plan_parts(scan.n_words, index.words_per_checkpoint, threads)
            if parts and covered * threads < scan.n_words * (threads - 1):
                # all of the file on the threads takes less than the rest on one
                raw_parallel.index_parts(scan, parts, self._new_decoder)
            else:
                scan.restore(len(index.states) - 1)
            scratch = np.empty(self._buffer_events, dtype=EventCD)
            while not index.complete:
                scan.decode_into(scratch, lambda triggers: None, lambda dropped: None)
            scan.close()
            self._after_complete_pass(scan.decoder.counters)
        return index

    def _new_decoder(self):
        """A decoder for this reader's file and settings, at the start state."""
        return _make_decoder(self.header, self.out_of_bounds, self._evt21_legacy_word_order)

    @property
    def format_name(self) -> str:
        """``"RAW EVT 2.0"``, ``"RAW EVT 2.1"`` or ``"RAW EVT 3.0"``."""
        return RAW_FORMAT_NAMES[self.header.encoding]

    # metavision_core API
    def get_size(self) -> tuple[int, int]:
        """``(height, width)`` of the sensor."""
        return self.header.height, self.header.width

    def event_count(self) -> int:
        """Number of events in the file (decodes the file once if not yet done)."""
        return self._complete_index().total_events

    @property
    def duration_s(self) -> float:
        """Span between the first and last event, in seconds (decodes the file once if needed)."""
        index = self._complete_index()
        return max(index.last_raw_t - index.first_raw_t, 0) * 1e-6 if index.total_events else 0.0

    def get_ext_trigger_events(self) -> np.ndarray:
        """External triggers decoded since the last reset/seek (time-shifted like the events).

        Decoding runs ahead of the cursor by up to one buffer (``max_events``), so triggers up to
        that point are included.
        """
        if not self._trigger_chunks:
            return np.empty(0, dtype=EventExtTrigger)
        # as bytes: numpy's structured concatenate leaves the padding bytes uninitialised
        return np.concatenate([c.view(np.uint8) for c in self._trigger_chunks]).view(EventExtTrigger)

    def clear_ext_trigger_events(self) -> None:
        """Forget the triggers decoded so far."""
        self._trigger_chunks.clear()

    @property
    def decoder_counters(self) -> dict[str, int]:
        """The decoder's counts of skipped words, dropped events, triggers (since the start)."""
        return dict(self._stream.decoder.counters)

    def close(self) -> None:
        """Close the file handle."""
        self._stream.close()
