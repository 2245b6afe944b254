"""The per-slot state machine of the stream loader: :class:`SlotPlayer`.

A worker of a :class:`~evstream.data.stream.StreamDataLoader` owns a few batch slots; each slot
plays its streams back to back. At every step :meth:`SlotPlayer.next_item` returns the slot's
next item, opening the slot's next stream when the current one ends; past the last stream the
slot is *dead* (``padding_mode="zeros"``, or a slot that never yielded anything) or starts again
from its first stream (``"data"``). A stream that turns out empty is skipped.

The slot's state is :meth:`SlotPlayer.position` ``(pos, consumed, passes, yielded_in_pass,
dead)``: which stream plays, how many of its items were consumed, the completed passes; the
loader records it per step and :meth:`SlotPlayer.restore` continues from it exactly (the stream is
reopened and its first ``consumed`` items skipped with the iterator's ``skip(n)`` when it has
one, else read and dropped).

While a stream's iterator computes an item, the slot's ring outputs (if any) are the current
ones for :func:`~evstream.data.stream_ring.stream_output`. An exception raised by a stream becomes
a :class:`~evstream.errors.StreamReadError` naming the stream and the slot, unless it is an
:class:`~evstream.errors.EvstreamError` that already names a file.
"""

from __future__ import annotations

import os

from evstream.data.stream_ring import Ring, SlotOutputs, Stopped, computing_item
from evstream.errors import EvstreamError, StreamReadError
from evstream.utils.arrays import close_if_closable

__all__ = ["SlotPlayer", "stream_name", "raise_for"]


def stream_name(stream) -> str:
    """How an error names ``stream``: its path, else its ``repr``."""
    if isinstance(stream, (str, os.PathLike)):
        return os.fspath(stream)
    return repr(stream)


def raise_for(exc: BaseException, stream, slot: int):
    """Re-raises ``exc`` (raised reading ``stream`` in batch slot ``slot``) so that it names a
    file: unchanged if it is an EvstreamError that names one, else as a StreamReadError."""
    if isinstance(exc, EvstreamError) and exc.path is not None:
        raise exc
    raise StreamReadError(f"reading this stream (batch slot {slot}) failed: "
                          f"{type(exc).__name__}: {exc}", stream_name(stream)) from exc


def _add_stats(total: dict, part) -> None:
    if isinstance(part, dict):
        for key, value in part.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value


class SlotPlayer:
    """One batch slot inside a worker: its streams, played back to back (module docstring)."""

    def __init__(self, slot: int, streams: list, streamer, padding_mode: str, stats: dict,
                 ring: Ring | None):
        self.slot = slot
        self.streams = streams
        self.streamer = streamer
        self.padding_mode = padding_mode
        self.stats = stats
        self.outputs = None if ring is None else SlotOutputs(ring, slot)
        self._computing = computing_item(self.outputs)      # entered once per item
        self.pos = -1            # index in self.streams of the stream playing
        self.it = None           # its iterator
        self.passes = 0          # completed passes over self.streams
        self.yielded_in_pass = False
        self.dead = False
        self.consumed = 0        # items taken from the current stream
        self._resume = None      # (pos, consumed) to reopen at the first next_item()

    def position(self) -> tuple:
        """``(pos, consumed, passes, yielded_in_pass, dead)``: enough to continue exactly here
        (stream ``pos`` of the slot's list, after its first ``consumed`` items)."""
        return (self.pos, self.consumed, self.passes, self.yielded_in_pass, self.dead)

    def restore(self, position) -> None:
        """Continue from a :meth:`position` (the stream is reopened and its first ``consumed``
        items skipped, with the iterator's ``skip(n)`` when it has one, at the next step)."""
        pos, consumed, passes, yielded, dead = position
        self.pos, self.passes = int(pos), int(passes)
        self.yielded_in_pass, self.dead = bool(yielded), bool(dead)
        self.consumed = int(consumed)
        if not self.dead and 0 <= self.pos < len(self.streams):
            self._resume = (self.pos, self.consumed)

    def _open(self, pos: int) -> None:
        self.pos = pos
        stream = self.streams[pos]
        try:
            with self._computing:      # a streamer that makes its first item when called
                self.it = iter(self.streamer(stream))
        except Exception as exc:   # noqa: BLE001
            raise_for(exc, stream, self.slot)
        self.consumed = 0
        self.stats["streams_opened"] = self.stats.get("streams_opened", 0) + 1

    def _skip(self, n: int) -> None:
        """Skip the first ``n`` items of the stream just opened."""
        stream = self.streams[self.pos]
        skip = getattr(self.it, "skip", None)
        try:
            if callable(skip):
                skip(n)
            else:
                for _ in range(n):
                    self._next_of_current()
        except StopIteration:
            self._finish_current()
        except Stopped:
            raise
        except Exception as exc:   # noqa: BLE001
            raise_for(exc, stream, self.slot)
        self.consumed = n

    def _finish_current(self) -> None:
        it, self.it = self.it, None
        close_if_closable(it)
        _add_stats(self.stats, getattr(it, "stats", None))

    def _next_of_current(self):
        with self._computing:
            return next(self.it)

    def next_item(self):
        """``(item or None, first pass done)`` for the next step."""
        if self._resume is not None:
            (pos, consumed), self._resume = self._resume, None
            self._open(pos)
            if consumed:
                self._skip(consumed)
        while True:
            if self.it is not None:
                stream = self.streams[self.pos]
                try:
                    item = self._next_of_current()
                except StopIteration:
                    self._finish_current()
                except Stopped:
                    raise
                except Exception as exc:   # noqa: BLE001 - re-raised naming the stream
                    raise_for(exc, stream, self.slot)
                else:
                    self.consumed += 1
                    self.yielded_in_pass = True
                    return item, self.passes > 0
            if self.dead:
                return None, True
            self.pos += 1
            if self.pos >= len(self.streams):
                self.passes += 1
                if self.padding_mode == "zeros" or not self.yielded_in_pass:
                    self.dead = True            # nothing left (or nothing ever: no replay)
                    return None, True
                self.pos, self.yielded_in_pass = 0, False
            self._open(self.pos)

    def close(self) -> None:
        if self.it is not None:
            self._finish_current()
