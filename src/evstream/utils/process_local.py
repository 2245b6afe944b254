"""A value that belongs to the process that stored it: open files and readers across ``fork``.

A forked loader worker starts with copies of its parent's objects, open files included, and a
copied file descriptor shares its *file offset* with the parent's: two processes reading
through it move each other's position, so buffered sequential reads return bytes from the
wrong place (silently wrong events). :class:`ProcessLocal` forgets the parent's handle in a
child: ``get()`` returns None there, the caller opens its own, and the parent's is neither
used nor closed by the child. Pickling (a spawned worker) drops the handle too.
"""

from __future__ import annotations

import os
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessLocal(Generic[T]):
    """Holds one value for the process that :meth:`set` it (module docstring)."""

    __slots__ = ("_value", "_pid")

    def __init__(self) -> None:
        self._value: T | None = None
        self._pid = -1

    def get(self) -> T | None:
        """The value stored by this process, or None (none stored, or stored by the parent)."""
        return self._value if self._pid == os.getpid() else None

    def set(self, value: T | None) -> None:
        self._value, self._pid = value, os.getpid()

    def pop(self) -> T | None:
        """The value stored by this process (None if none) and forget it."""
        value = self.get()
        self._value, self._pid = None, -1
        return value

    def __reduce__(self):
        return (ProcessLocal, ())
