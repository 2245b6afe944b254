"""Text headers of Prophesee RAW and DAT files (docs/formats.md §1, §4, §8).

A header is a run of ASCII lines ``% key value\\n`` at the start of a binary file, optionally
closed by ``% end``. :func:`read_header` parses it for both RAW and DAT files;
:func:`read_raw_header` also resolves the event encoding and the sensor geometry of a RAW file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import FileFormatError, GeometryError, MissingFileError, UnsupportedFormatError
import numpy as np

from .dtypes import MAX_SENSOR_SIDE

_BLOCK = 512
#: A line starting with ``% `` that runs this long without a newline is not a header line.
_MAX_LINE = 1 << 16

#: ``% evt`` values -> encoding names.
EVT_VERSIONS = {"2.0": "evt2", "2.1": "evt21", "3.0": "evt3"}
#: ``% format`` first field -> encoding names.
FORMAT_NAMES = {"EVT2": "evt2", "EVT21": "evt21", "EVT3": "evt3"}
#: Event-frame RAW formats (not event streams).
FRAME_FORMATS = ("HISTO3D", "DIFF3D")

#: plugin_name -> (width, height); docs/formats.md §8 (mapping checked against the public samples only).
PLUGIN_GEOMETRY = {"hal_plugin_gen3_fx3": (640, 480), "hal_plugin_gen41_evk3": (1280, 720)}
#: system_ID -> (width, height); docs/formats.md §8, same evidence.
SYSTEM_ID_GEOMETRY = {"21": (640, 480), "48": (1280, 720)}


def read_header(f: BinaryIO) -> tuple[dict[str, str], int]:
    """Parse the ``% key value`` lines at the current position of a binary file.

    Reads in small blocks (never the whole file). Parsing stops after a ``% end`` line (consumed)
    or at the first line not beginning with ``b"% "`` (not consumed). A last header line without
    ``\\n`` at end of file counts as a header line. Lines are decoded as latin-1; ``\\r`` before
    the newline is dropped. A repeated key keeps its first position and its last value.

    Args:
        f: binary file object, positioned at the start of the header (normally offset 0).

    Returns:
        ``(fields, data_offset)``: keys as written -> rest of the line stripped (``''`` when
        absent), in file order; ``data_offset`` = absolute byte offset of the first data byte.
        When ``f`` is seekable it is left positioned at ``data_offset``.
    """
    start = f.tell() if f.seekable() else 0
    fields: dict[str, str] = {}
    buf = b""
    buf_start = 0    # offset of buf[0] from start
    pos = 0          # offset in buf of the line being examined
    eof = False
    while True:
        if len(buf) - pos < 2 and not eof:
            chunk = f.read(_BLOCK)
            eof = not chunk
            buf_start += pos
            buf = buf[pos:] + chunk
            pos = 0
            continue
        if buf[pos:pos + 2] != b"% ":
            break                                          # data starts here (or EOF)
        nl = buf.find(b"\n", pos)
        if nl < 0 and not eof:
            if len(buf) - pos > _MAX_LINE:
                break                                      # binary data that happens to start with "% "
            chunk = f.read(_BLOCK)
            eof = not chunk
            buf_start += pos
            buf = buf[pos:] + chunk
            pos = 0
            continue
        end = len(buf) if nl < 0 else nl + 1
        line = buf[pos + 2:end].decode("latin-1").rstrip("\r\n")
        pos = end
        parts = line.strip().split(None, 1)
        if not parts:
            continue
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        if key.lower() == "end" and not value:
            break
        fields[key] = value
        if nl < 0:
            break
    data_offset = start + buf_start + pos
    if f.seekable():
        f.seek(data_offset)
    return fields, data_offset


@dataclass(frozen=True)
class RawHeader:
    """Parsed header of a RAW file.

    Attributes:
        path: the file.
        fields: header keys as written -> values, in file order.
        data_offset: byte offset of the first event word.
        encoding: ``'evt2'``, ``'evt21'`` or ``'evt3'``.
        height, width: resolved sensor size in pixels.
        geometry_source: where the size came from: ``'geometry'``, ``'format'``, ``'override'``,
            ``'plugin_name'`` or ``'system_ID'``.
        evt21_layout: EVT 2.1 files: ``'little'`` or ``'legacy'`` word layout, as the header
            selects it (:func:`evt21_layout`); None for other encodings.
        evt21_layout_source: which rule selected it: ``'format'``, ``'endianness'`` or
            ``'camera'`` (None for other encodings).
    """

    path: str
    fields: dict[str, str]
    data_offset: int
    encoding: str
    height: int
    width: int
    geometry_source: str
    evt21_layout: str | None = None
    evt21_layout_source: str | None = None

    def get(self, key: str, default: str | None = None) -> str | None:
        """Header value by case-insensitive key."""
        low = key.lower()
        for k, v in self.fields.items():
            if k.lower() == low:
                return v
        return default


def read_raw_header(path: str | os.PathLike, height: int | None = None,
                    width: int | None = None) -> RawHeader:
    """Read a RAW file header and resolve its encoding and geometry.

    Encoding: ``% evt 2.0|2.1|3.0`` (authoritative), else the first field of
    ``% format EVT2|EVT21|EVT3;...``.
    Geometry precedence: ``% geometry WxH`` > ``% format ...;height=H;width=W`` > the explicit
    ``height``/``width`` arguments > ``plugin_name`` > ``system_ID`` (docs/formats.md §8 table).

    Raises:
        MissingFileError: the file does not exist.
        FileFormatError: no ``evt`` / ``format`` key, or a malformed value.
        UnsupportedFormatError: an unknown ``evt`` version, or an event-frame format (HISTO3D, DIFF3D).
        GeometryError: an override that disagrees with the header, only one of height/width given,
            or no source of geometry at all.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise MissingFileError("no such file", p)
    with open(p, "rb") as f:
        fields, data_offset = read_header(f)
    low = {k.lower(): v for k, v in fields.items()}
    encoding = _encoding(low, p)
    h, w, source = _geometry(low, p, height, width)
    layout, layout_source = evt21_layout(low, p) if encoding == "evt21" else (None, None)
    return RawHeader(path=p, fields=fields, data_offset=data_offset, encoding=encoding,
                     height=h, width=w, geometry_source=source, evt21_layout=layout,
                     evt21_layout_source=layout_source)


#: EVT 2.1 word layouts a header can name.
EVT21_LAYOUTS = ("little", "legacy")
#: Rule 3 of the EVT 2.1 layout selection: Prophesee cameras with a system_ID below this send
#: the legacy layout (docs/formats.md §6).
LEGACY_SYSTEM_ID_LIMIT = 0x37


def _format_options(low: dict[str, str]) -> dict[str, str]:
    """``% format NAME;key=value;...`` -> {key (lower case): value}."""
    opts = {}
    for part in low.get("format", "").split(";")[1:]:
        if "=" in part:
            k, v = part.split("=", 1)
            opts[k.strip().lower()] = v.strip()
    return opts


def evt21_layout(low: dict[str, str], path: str) -> tuple[str, str]:
    """The EVT 2.1 word layout a header selects, and the rule that selected it.

    1. ``% format EVT21;...;endianness=legacy|little`` -> ``'format'``;
    2. else a ``% endianness legacy|little`` line -> ``'endianness'``;
    3. else ``'camera'``: legacy when ``% integrator_name`` is Prophesee (and
       ``% plugin_integrator_name`` too, when the header has that line) and ``% system_ID`` is
       below 0x37; little otherwise. (Headers without a ``plugin_integrator_name`` line are
       taken as the camera's own plugin: an interpretation, OpenEB's rule reads both.)

    Args:
        low: header fields with lower-case keys.
    Raises:
        FileFormatError: an endianness value other than ``little`` / ``legacy``.
    """
    for source, value in (("format", _format_options(low).get("endianness")),
                          ("endianness", low.get("endianness"))):
        if value is None:
            continue
        value = value.strip().lower()
        if value not in EVT21_LAYOUTS:
            raise FileFormatError(f"unknown EVT 2.1 endianness {value!r} in the header's "
                                  f"{source} (expected one of {', '.join(EVT21_LAYOUTS)})", path)
        return value, source
    prophesee = (low.get("integrator_name", "").strip().lower() == "prophesee"
                 and low.get("plugin_integrator_name", "Prophesee").strip().lower() == "prophesee")
    try:
        system_id = int(low.get("system_id", "").strip())
    except ValueError:
        system_id = None
    legacy = prophesee and system_id is not None and system_id < LEGACY_SYSTEM_ID_LIMIT
    return ("legacy" if legacy else "little"), "camera"


def _encoding(low: dict[str, str], path: str) -> str:
    if "evt" in low:
        v = low["evt"].strip()
        if v in EVT_VERSIONS:
            return EVT_VERSIONS[v]
        raise UnsupportedFormatError(f"unsupported RAW event encoding '% evt {v}' "
                                     f"(supported: {', '.join(EVT_VERSIONS)})", path)
    if "format" in low:
        name = low["format"].split(";", 1)[0].strip()
        if name.upper() in FORMAT_NAMES:
            return FORMAT_NAMES[name.upper()]
        if name.upper() in FRAME_FORMATS:
            raise UnsupportedFormatError(f"'% format {name}' is an event-frame RAW file, not an "
                                         "event stream", path)
        raise UnsupportedFormatError(f"unsupported RAW format '{name}' (supported: "
                                     f"{', '.join(FORMAT_NAMES)})", path)
    raise FileFormatError("no '% evt' or '% format' line in the header: not a RAW event file", path)


def check_sensor_side(value, what: str, path: str | None = None, lo: int = 1,
                      hi: int = MAX_SENSOR_SIDE, error: type = GeometryError) -> int:
    """A sensor height or width given as a number: an integer (not a bool) in ``lo..hi``.

    The one geometry rule of evstream (headers, readers, writers, synth); ``error`` (a
    :class:`~evstream.errors.EvstreamError` class) names ``path`` and the value."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise error(f"{what} must be an integer number of pixels, got {value!r}", path)
    if not lo <= int(value) <= hi:
        raise error(f"{what}: {int(value)} is outside {lo}..{hi} pixels", path)
    return int(value)


def parse_sensor_side(text: str, what: str, path: str) -> int:
    """A sensor height or width from a header value: an integer in ``1..MAX_SENSOR_SIDE``
    (:func:`check_sensor_side`). Raises GeometryError naming the file."""
    try:
        v = int(text.strip())
    except ValueError:
        raise GeometryError(f"{what}: {text.strip()!r} is not an integer", path) from None
    return check_sensor_side(v, what, path)


def _geometry(low: dict[str, str], path: str, height: int | None,
              width: int | None) -> tuple[int, int, str]:
    if (height is None) != (width is None):
        raise GeometryError("pass both height= and width= (or neither)", path)
    if height is not None:
        height = parse_sensor_side(str(height), "height=", path)
        width = parse_sensor_side(str(width), "width=", path)

    header_geom = None
    if "geometry" in low:
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", low["geometry"])
        if not m:
            raise GeometryError(f"malformed '% geometry {low['geometry']}' (expected WxH)", path)
        header_geom = (parse_sensor_side(m.group(2), "geometry height", path),
                       parse_sensor_side(m.group(1), "geometry width", path), "geometry",
                       f"'% geometry {low['geometry']}'")
    elif "format" in low:
        opts = _format_options(low)
        if "height" in opts and "width" in opts:
            header_geom = (parse_sensor_side(opts["height"], "format height", path),
                           parse_sensor_side(opts["width"], "format width", path), "format",
                           f"'% format {low['format']}'")
    if header_geom is not None:
        h, w, source, text = header_geom
        if height is not None and (height, width) != (h, w):
            raise GeometryError(f"explicit geometry height={height}, width={width} disagrees with "
                                f"the header's {text} (height={h}, width={w})", path)
        return h, w, source
    if height is not None:
        return height, width, "override"
    plugin = low.get("plugin_name", "").strip()
    if plugin in PLUGIN_GEOMETRY:
        w, h = PLUGIN_GEOMETRY[plugin]
        return h, w, "plugin_name"
    sid = low.get("system_id", "").strip()
    if sid in SYSTEM_ID_GEOMETRY:
        w, h = SYSTEM_ID_GEOMETRY[sid]
        return h, w, "system_ID"
    raise GeometryError("sensor size unknown: the header has no '% geometry' or '% format' size "
                        "and no known plugin_name / system_ID; pass height= and width=", path)
