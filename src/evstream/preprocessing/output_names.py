"""Names of the files ``evstream precompute`` writes (``docs/formats.md`` §9), and how a file is
written atomically: under ``<final name>.partial-<pid>`` until complete, then renamed."""

from __future__ import annotations

import os

import numpy as np

from evstream.utils.h5_writer import write_error


def output_basename(path: str | os.PathLike) -> str:
    """Basename up to the first '.', minus a trailing ``_td`` / ``_cd`` (``rec_td.dat`` -> ``rec``)."""
    name = os.path.basename(os.fspath(path)).split(".", 1)[0]
    for suffix in ("_td", "_cd"):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def output_path(path, output_folder, split: int | None = None) -> str:
    """The tensor file made from ``path``: ``name.h5``, or ``name_{split}.h5``."""
    name = output_basename(path)
    return os.path.join(os.fspath(output_folder),
                        f"{name}.h5" if split is None else f"{name}_{split}.h5")


def partial_name(final: str) -> str:
    """The name ``final`` is written under until it is complete: ``<final>.partial-<pid>``."""
    return f"{final}.partial-{os.getpid()}"


def remove_quietly(path: str) -> None:
    """Remove ``path`` if it exists."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def save_npy_atomic(path: str, array: np.ndarray) -> None:
    """``np.save`` under :func:`partial_name`, renamed to ``path`` once written (an
    :class:`~evstream.errors.OutputWriteError` naming ``path`` when that fails)."""
    partial = partial_name(path)
    try:
        with open(partial, "wb") as f:
            np.save(f, array)
        os.replace(partial, path)
    except OSError as exc:
        remove_quietly(partial)
        raise write_error(exc, path) from None
    except BaseException:
        remove_quietly(partial)
        raise
