"""Open any supported event file: ``open_reader`` and ``load_events``.

| file | reader |
|---|---|
| ``.dat`` | :class:`~evstream.io.dat.EventDatReader` |
| ``.npy`` | :class:`~evstream.io.npy.EventNpyReader` |
| ``.hdf5``, ``.h5``, or any file that starts with the HDF5 signature | by content (:func:`~evstream.io.hdf5_events.open_hdf5_reader`): ``/CD/events`` -> :class:`~evstream.io.hdf5_events.HDF5EventsReader`, ``/events/{x,y,p,t}`` -> :class:`~evstream.io.hdf5_events.HDF5EventArraysReader` (a tensor file raises) |
| anything else (``.raw``) | :class:`~evstream.io.raw.RawReader` (the header decides the EVT version) |
"""

from __future__ import annotations

import os

import numpy as np

from .dat import EventDatReader
from .hdf5_events import is_hdf5_file, open_hdf5_reader
from .npy import EventNpyReader
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
        return EventNpyReader(path, **reader_kwargs)
    if extension in (".hdf5", ".h5") or is_hdf5_file(path):
        return open_hdf5_reader(path, **reader_kwargs)    # by content
    return RawReader(path, do_time_shifting=do_time_shifting, **reader_kwargs)


def load_events(path: str | os.PathLike, do_time_shifting: bool = False,
                **reader_kwargs) -> np.ndarray:
    """Every event of a file as one array (EventCD for event files), in file order.

    Unlike :class:`~evstream.io.raw.RawReader`, RAW times are *not* shifted by default: this
    returns the timestamps the file encodes.
    """
    return open_reader(path, do_time_shifting=do_time_shifting, **reader_kwargs).read_all()
