"""The one exception family of evstream.

Every error raised on bad input derives from :class:`EvstreamError` and names the file (when
there is one) and the problem, e.g. ``"rec.raw: truncated file: 3 trailing bytes after the last
complete 4-byte word"``. Subclasses also derive from the built-in exception a caller would
naturally catch (``ValueError``, ``FileNotFoundError``, ``IndexError``) so that generic code keeps
working.
"""

from __future__ import annotations

import os


class EvstreamError(Exception):
    """Base class of every evstream error.

    Args:
        problem: what is wrong, in words.
        path: the file concerned, if any; it is prefixed to the message.
    """

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(problem if self.path is None else f"{self.path}: {problem}")


class FileFormatError(EvstreamError, ValueError):
    """A file's bytes do not follow its format (bad header, truncated data, garbage)."""


class UnsupportedFormatError(FileFormatError):
    """A well-formed file in a format or version evstream does not read (e.g. ``evt 4.0``)."""


class MissingFileError(EvstreamError, FileNotFoundError):
    """A file that should exist does not."""


class GeometryError(EvstreamError, ValueError):
    """The sensor size is unknown, inconsistent, or an event lies outside it."""


class SeekError(EvstreamError, IndexError):
    """A seek to a negative or otherwise impossible position."""


class EventArrayError(EvstreamError, ValueError):
    """An event array has the wrong dtype, shape or values for the call it is passed to."""


class ArgumentError(EvstreamError, ValueError):
    """A call's argument is out of its documented range (e.g. ``load_delta_t(0)``)."""


class KernelArgumentError(ArgumentError, EventArrayError):
    """An argument of an event-to-tensor function other than the events (the output array, the
    window length, the downsampling factor, a bound) is wrong. An :class:`ArgumentError` like
    every argument problem, and an :class:`EventArrayError` as the kernels raised before."""


class ReaderStateError(EvstreamError, RuntimeError):
    """A call made in a state that does not allow it (e.g. triggers asked for before iterating)."""


class RvtRuleError(EvstreamError, ValueError):
    """An input on which RVT's preprocessing stops (e.g. a label 1-2 ms after a label frame, no
    label at or after 100 ms, a label rate other than 30/60 Hz); see ``evstream.rvt``."""


class OutputWriteError(EvstreamError, OSError):
    """An output file or folder could not be written (full disk, no permission, not a folder)."""


class WorkerTimeoutError(EvstreamError, TimeoutError):
    """A loader worker process sent nothing for ``timeout`` seconds (stopped, deadlocked, or
    slower than the timeout allows); the message names the worker and the recordings it read."""


class PreprocessingNameError(EvstreamError, ValueError, AssertionError):
    """An unknown preprocessing name, or a name registered twice (also an ``AssertionError``,
    which the original raises)."""


class ArrayDimError(GeometryError, AssertionError):
    """``array_dim`` does not fit a file: the sensor is not an integer (power-of-two for event
    files) multiple of ``H x W`` with the same ratio on both axes. Also an ``AssertionError``,
    which the original raised."""


class StreamReadError(EvstreamError, RuntimeError):
    """Reading a stream of a :class:`~evstream.data.stream.StreamDataLoader` failed with an error
    that did not name it (the stream is the path)."""
