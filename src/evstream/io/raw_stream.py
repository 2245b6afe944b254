"""A RAW file's words decoded in order through one format decoder (:class:`RawDecodeStream`),
recording the sparse seek index (:class:`RawIndex`) as it goes; the pieces :mod:`evstream.io.raw`'s
reader and :mod:`evstream.io.raw_parallel`'s threads are built from.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import FileFormatError
from .dtypes import EventExtTrigger
from .header import RawHeader

WORDS_PER_BLOCK = 1 << 20
WORDS_PER_CHECKPOINT = 1 << 18
TRIGGER_BUFFER = 4096


def _warn_index_cache(path: str, problem: str) -> None:
    warnings.warn(f"{path}: {problem}; the seek index is rebuilt in memory", stacklevel=4)


class RawIndex:
    """Sparse checkpoints of a RAW file's decoding, filled in file order.

    Checkpoint ``c`` is at word ``c * words_per_checkpoint`` and holds the decoder state before
    that word, the number of events emitted before it and the raw (unshifted) timestamp of the
    last event before it (-1 if none). ``complete`` once a decode pass reached the end, then
    ``total_events``, ``first_raw_t`` and ``last_raw_t`` describe the whole file.

    The index of a part of the file (:mod:`evstream.io.raw_parallel`) holds checkpoints from
    ``first_checkpoint`` on (``states[i]`` is checkpoint ``first_checkpoint + i``), counted from
    the part's start, and is complete at the part's end; only the file's own index is searched.
    """

    def __init__(self, words_per_checkpoint: int = WORDS_PER_CHECKPOINT, first_checkpoint: int = 0):
        self.words_per_checkpoint = words_per_checkpoint
        #: the first checkpoint recorded (an index of a part of the file begins later than 0)
        self.first_checkpoint = first_checkpoint
        self.states: list[np.ndarray] = []
        self.events_before: list[int] = []
        self.last_t_before: list[int] = []
        self.complete = False
        self.total_events = 0
        self.first_raw_t = -1
        self.last_raw_t = -1

    def record(self, word_pos: int, state: np.ndarray, events_before: int, last_t: int) -> None:
        """Record the checkpoint at ``word_pos`` if it is the next one missing."""
        if word_pos == (self.first_checkpoint + len(self.states)) * self.words_per_checkpoint:
            self.states.append(state)
            self.events_before.append(events_before)
            self.last_t_before.append(last_t)

    def last_before_event(self, n: int) -> int:
        """Largest checkpoint whose events_before <= n."""
        return int(np.searchsorted(np.asarray(self.events_before), n, side="right")) - 1

    def last_before_time(self, raw_t: int) -> int:
        """Largest checkpoint all of whose preceding events have raw t < ``raw_t``."""
        return max(int(np.searchsorted(np.asarray(self.last_t_before), raw_t, side="left")) - 1, 0)

    def save(self, path: str, stamp: np.ndarray) -> bool:
        """Write the index to ``path`` atomically (a temporary file renamed over it).

        Returns False, with a warning, when the folder cannot be written (the reader goes on
        without a cache)."""
        tmp = f"{path}.partial-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, stamp=stamp, states=np.array(self.states),
                         events_before=np.array(self.events_before, dtype=np.int64),
                         last_t_before=np.array(self.last_t_before, dtype=np.int64),
                         summary=np.array([self.total_events, self.first_raw_t, self.last_raw_t]))
            os.replace(tmp, path)
        except OSError as exc:
            warnings.warn(f"{path}: cannot write the seek-index cache ({exc.strerror or exc}); "
                          f"reading goes on without it", stacklevel=4)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False
        return True

    @classmethod
    def load(cls, path: str, stamp: np.ndarray, words_per_checkpoint: int) -> "RawIndex | None":
        """The index saved at ``path`` if it was made for the same file (``stamp``), else None.

        A missing cache gives None silently; a corrupt, truncated or stale one gives None with
        a warning (the caller rebuilds it)."""
        if not os.path.isfile(path):
            return None
        try:
            with np.load(path) as data:
                if not np.array_equal(data["stamp"], stamp):
                    _warn_index_cache(path, "stale seek-index cache (made for another version of "
                                      "the file or other reader settings)")
                    return None
                states = data["states"]
                index = cls(words_per_checkpoint)
                index.states = list(states)
                index.events_before = data["events_before"].tolist()
                index.last_t_before = data["last_t_before"].tolist()
                index.total_events, index.first_raw_t, index.last_raw_t = data["summary"].tolist()
            if not (len(index.states) == len(index.events_before) == len(index.last_t_before) >= 1
                    and states.ndim == 2 and states.dtype == np.int64):
                raise ValueError("inconsistent checkpoint arrays")
        except Exception as exc:  # noqa: BLE001 - any unreadable cache is rebuilt, never fatal
            _warn_index_cache(path, f"corrupt seek-index cache ignored ({type(exc).__name__}: {exc})")
            return None
        index.complete = True
        return index


class RawDecodeStream:
    """A RAW file's words fed block by block through one decoder, recording checkpoints in
    ``index``, up to word ``n_words`` (the file's end, or a part's). It starts at the start of the
    file (checkpoint 0), or with ``word_pos`` at that word (:meth:`start_at`)."""

    def __init__(self, path: str, header: RawHeader, n_words: int, index: RawIndex, decoder,
                 word_pos: int = 0):
        self.path = path
        self.header = header
        self.n_words = n_words
        self.index = index
        self.decoder = decoder
        self.word_size = decoder.word_dtype.itemsize
        self._file = open(path, "rb")
        self._block = np.empty(min(WORDS_PER_BLOCK, max(n_words, 1)), dtype=decoder.word_dtype)
        self._block_start = 0
        self._block_stop = 0
        self._block_read = len(self._block)   # words the next file read takes (see restore)
        self._triggers = np.empty(TRIGGER_BUFFER, dtype=EventExtTrigger)
        if word_pos == 0:
            self.restore(0)
        else:
            self.start_at(word_pos)

    def restore(self, checkpoint: int) -> None:
        """Continue decoding from checkpoint ``checkpoint`` (0 = start of the file)."""
        if checkpoint == 0 and not self.index.states:
            self.decoder.reset()
            self.index.record(0, self.decoder.get_state(), 0, -1)
        self.decoder.set_state(self.index.states[checkpoint])
        self.word_pos = checkpoint * self.index.words_per_checkpoint
        # after a jump, the file is read one checkpoint interval first (a seek, which mostly
        # reads a little, does not copy a whole block), then twice as much per read
        self._block_read = min(self.index.words_per_checkpoint, len(self._block))
        self.events_emitted = self.index.events_before[checkpoint]
        self.last_raw_t = self.index.last_t_before[checkpoint]

    def start_at(self, word_pos: int, events_emitted: int = 0, last_raw_t: int = -1) -> None:
        """Continue decoding from word ``word_pos`` with the decoder's state as it is, after
        ``events_emitted`` events, the last at raw time ``last_raw_t`` (-1: none); by default a
        part of the file decoded on its own (:mod:`evstream.io.raw_parallel`), counting events
        from 0 there. At ``n_words``, the index is complete."""
        self.word_pos = word_pos
        self._block_read = min(self.index.words_per_checkpoint, len(self._block))
        self.events_emitted = events_emitted
        self.last_raw_t = last_raw_t
        self._complete_at_end()

    def _load_block(self) -> None:
        n = min(self._block_read, self.n_words - self.word_pos)
        self._block_read = min(2 * self._block_read, len(self._block))
        self._file.seek(self.header.data_offset + self.word_pos * self.word_size)
        got = self._file.readinto(self._block[:n])
        if got != n * self.word_size:
            raise FileFormatError(f"file shrank while reading: expected {n * self.word_size} "
                                  f"bytes at word {self.word_pos}, got {got}", self.path)
        self._block_start, self._block_stop = self.word_pos, self.word_pos + n

    def decode_into(self, out: np.ndarray, on_triggers, on_out_of_bounds, t_shift: int = 0,
                    t_stop: int | None = None) -> int:
        """Decode into ``out`` until it is full or the file ends, or (``t_stop``, raw µs, for a
        decoder that ``stops_at_time``) before the first event with ``t >= t_stop``, which sets
        ``at_t_stop``; return the count. Times written (events and triggers) are raw minus
        ``t_shift`` µs."""
        self.at_t_stop = False
        n = 0
        cp = self.index.words_per_checkpoint
        counters = self.decoder.counters
        dropped_before = counters["out_of_bounds"]
        while self.word_pos < self.n_words:
            if len(out) - n < self.decoder.max_events_per_word:
                break  # output full (also when the last call consumed its words to the end)
            if self.word_pos % cp == 0:
                self.index.record(self.word_pos, self.decoder.get_state(), self.events_emitted,
                                  self.last_raw_t)
            if not (self._block_start <= self.word_pos < self._block_stop):
                self._load_block()
            stop = min(self._block_stop, (self.word_pos // cp + 1) * cp)
            words = self._block[self.word_pos - self._block_start:stop - self._block_start]
            consumed, n_events, n_triggers = self.decoder.decode(words, out[n:], self._triggers,
                                                                 t_shift, t_stop)
            if n_triggers:
                on_triggers(self._triggers[:n_triggers])
            if n_events:
                if self.events_emitted == 0 and self.index.first_raw_t < 0:
                    self.index.first_raw_t = int(out["t"][n]) + t_shift
                self.last_raw_t = int(out["t"][n + n_events - 1]) + t_shift
            n += n_events
            self.events_emitted += n_events
            self.word_pos += consumed
            if consumed < len(words) and len(out) - n < self.decoder.max_events_per_word:
                break  # output buffer full (a full trigger buffer was emptied above: go on)
            if consumed < len(words) and t_stop is not None and n_triggers < len(self._triggers):
                self.at_t_stop = True       # neither buffer full: the word is at t_stop
                break
        on_out_of_bounds(self.decoder.counters["out_of_bounds"] - dropped_before)
        self._complete_at_end()
        return n

    def _complete_at_end(self) -> None:
        if self.word_pos >= self.n_words and not self.index.complete:
            self.index.complete = True
            self.index.total_events = self.events_emitted
            self.index.last_raw_t = self.last_raw_t

    def close(self) -> None:
        self._file.close()


