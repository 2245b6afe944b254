"""The date written in the headers of new RAW and DAT files.

Reproducible files: when the ``SOURCE_DATE_EPOCH`` environment variable is set (seconds since
1970-01-01 UTC, the reproducible-builds convention), every writer uses that instant instead of
the current time, so the same events give byte-identical files. ``evstream.synth`` passes its
own fixed date (see :data:`evstream.synth.dataset.SYNTH_DATE`).
"""

from __future__ import annotations

import datetime
import os

from ..errors import ArgumentError

SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"


def file_date(date: datetime.datetime | None = None) -> datetime.datetime:
    """``date`` if given (naive means UTC), else ``$SOURCE_DATE_EPOCH``, else now; in UTC."""
    if date is not None:
        return date if date.tzinfo else date.replace(tzinfo=datetime.timezone.utc)
    epoch = os.environ.get(SOURCE_DATE_EPOCH)
    if epoch:
        try:
            seconds = int(epoch)
        except ValueError:
            raise ArgumentError(f"{SOURCE_DATE_EPOCH} must be an integer number of seconds, "
                                f"got {epoch!r}") from None
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return datetime.datetime.now(datetime.timezone.utc)
