"""Open any supported event file: ``open_reader`` and ``load_events``.

| file | reader |
|---|---|
| ``.dat`` | :class:`~evstream.io.dat.EventDatReader` |
| ``.npy`` | :class:`~evstream.io.npy.EventNpyReader` (a box file, e.g. ``_bbox.npy``, is refused: read boxes with ``EventNpyReader``) |
| ``.hdf5``, ``.h5``, or any file that starts with the HDF5 signature | by content (:func:`~evstream.io.hdf5_events.open_hdf5_reader`): ``/CD/events`` -> :class:`~evstream.io.hdf5_events.HDF5EventsReader`, ``/events/{x,y,p,t}`` -> :class:`~evstream.io.hdf5_events.HDF5EventArraysReader` (a tensor file raises) |
| anything else (``.raw``) | :class:`~evstream.io.raw.RawReader` (the header decides the EVT version) |
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ArgumentError, FileFormatError
from .dat import EventDatReader
from .hdf5_events import HDF5_EXTENSIONS, is_hdf5_file, open_hdf5_reader
from .npy import EventNpyReader, is_box_dtype, npy_dtype
from .raw import RawReader
from .reader import EventReader


def open_reader(path: str | os.PathLike, do_time_shifting: bool = True,
                **reader_kwargs) -> EventReader:
    """A reader for ``path`` chosen by extension, and by content for HDF5 files.

    Args:
        path: the event file.
        do_time_shifting: RAW only: report times relative to the first TIME_HIGH word.
        reader_kwargs: forwarded to the reader (e.g. ``height``, ``width``, ``out_of_bounds``
            for RAW and HDF5; ``out_of_bounds`` for DAT; ``time_order``, ``add_t_offset`` for
            HDF5 event arrays).
    """
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension == ".dat":
        return EventDatReader(path, **reader_kwargs)
    if extension == ".npy":
        if os.path.isfile(path) and is_box_dtype(npy_dtype(os.fspath(path))):
            raise FileFormatError("this .npy file holds bounding boxes (EventBbox fields t, x, y, "
                                  "w, h, ...), not events: read it with EventNpyReader or "
                                  "evstream.data.box_processing", path)
        return EventNpyReader(path, **reader_kwargs)
    if extension in HDF5_EXTENSIONS or is_hdf5_file(path):
        return open_hdf5_reader(path, **reader_kwargs)    # by content
    return RawReader(path, do_time_shifting=do_time_shifting, **reader_kwargs)


def load_events(path: str | os.PathLike, ev_count: int = -1, ev_start: int = 0,
                do_time_shifting: bool = False, **reader_kwargs) -> np.ndarray:
    """Events of a file as one array (EventCD), in file order: ``ev_count`` events from event
    index ``ev_start`` (``ev_count=-1``: to the end), as metavision_core's helper.

    Unlike :class:`~evstream.io.raw.RawReader`, RAW times are *not* shifted by default: this
    returns the timestamps the file encodes.

    Raises:
        ArgumentError: ``ev_count`` below -1 or ``ev_start`` negative.
    """
    ev_count, ev_start = int(ev_count), int(ev_start)
    if ev_count < -1 or ev_start < 0:
        raise ArgumentError(f"load_events needs ev_count >= -1 and ev_start >= 0, got "
                            f"ev_count={ev_count}, ev_start={ev_start}", path)
    with open_reader(path, do_time_shifting=do_time_shifting, **reader_kwargs) as reader:
        if ev_start == 0 and ev_count == -1:
            return reader.read_all()
        reader.seek_event(ev_start)
        if ev_count == 0 or reader.is_done():
            return np.empty(0, dtype=reader.dtype)
        if ev_count > 0:
            if ev_start == 0 and isinstance(reader, RawReader):
                return reader.read_first(ev_count)     # on several threads
            return reader.load_n_events(ev_count)
        pieces = []
        while not reader.is_done():
            pieces.append(reader.load_n_events(1 << 22))
        return np.concatenate(pieces, dtype=reader.dtype) if len(pieces) > 1 else pieces[0]
