"""RAW / DAT header parsing and RAW encoding / geometry resolution (formats.md §4, §8)."""

import io

import pytest

from evstream.errors import (EvstreamError, FileFormatError, GeometryError, MissingFileError,
                             UnsupportedFormatError)
from evstream.io.header import read_header, read_raw_header


class CountingReader(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n=-1):
        out = super().read(n)
        self.bytes_read += len(out)
        return out


def write(tmp_path, lines, data=b"\x00\x80" * 8, name="x.raw"):
    p = tmp_path / name
    p.write_bytes("".join(line + "\n" for line in lines).encode() + data)
    return p


def test_fields_in_order_and_data_offset():
    head = b"% Date 2020-09-25 07:48:29\n% evt 3.0\n% flag\n% k  spaced  value \n"
    f = io.BytesIO(head + b"\x08\x80")
    fields, off = read_header(f)
    assert list(fields.items()) == [("Date", "2020-09-25 07:48:29"), ("evt", "3.0"), ("flag", ""),
                                    ("k", "spaced  value")]
    assert off == len(head) and f.tell() == off


def test_end_line_is_consumed_and_stops_parsing():
    head = b"% a 1\n% end\n"
    fields, off = read_header(io.BytesIO(head + b"% b 2\n"))
    assert fields == {"a": "1"} and off == len(head)
    fields, off = read_header(io.BytesIO(b"% a 1\r\n% END\r\n\x25\x20"))
    assert fields == {"a": "1"} and off == 14


def test_stops_at_first_non_header_line_not_consumed():
    assert read_header(io.BytesIO(b"% a 1\n%b 2\n% c 3\n")) == ({"a": "1"}, 6)
    assert read_header(io.BytesIO(b"% a 1\n\x00\x00% c 3\n")) == ({"a": "1"}, 6)
    assert read_header(io.BytesIO(b"\x25")) == ({}, 0)
    assert read_header(io.BytesIO(b"")) == ({}, 0)


def test_last_line_without_newline_at_eof_is_a_header_line():
    assert read_header(io.BytesIO(b"% a 1\n% last one")) == ({"a": "1", "last": "one"}, 16)


def test_latin1_never_fails():
    fields, _ = read_header(io.BytesIO(b"% name caf\xe9\n"))
    assert fields == {"name": "caf\xe9"}


def test_starts_at_current_position():
    f = io.BytesIO(b"XXXX% a 1\n\x00")
    f.seek(4)
    assert read_header(f) == ({"a": "1"}, 10)


def test_does_not_read_the_whole_file():
    f = CountingReader(b"% evt 3.0\n% end\n" + b"\x00" * 1_000_000)
    read_header(f)
    assert f.bytes_read <= 4096


def test_long_header_spanning_blocks():
    lines = [f"% key{i} {'v' * (i % 50)}" for i in range(300)]
    data = ("\n".join(lines) + "\n").encode()
    fields, off = read_header(io.BytesIO(data + b"\x01\x02"))
    assert len(fields) == 300 and off == len(data)
    assert fields["key49"] == "v" * 49


@pytest.mark.parametrize("name,offset,enc,w,h", [
    ("expelliarmus_evt3_sample.raw", 166, "evt3", 1280, 720),
    ("expelliarmus_evt2_sample.raw", 164, "evt2", 640, 480),
    ("faery_evt2.raw", 166, "evt2", 640, 480),
])
def test_samples(samples_dir, name, offset, enc, w, h):
    hdr = read_raw_header(samples_dir / name)
    assert (hdr.data_offset, hdr.encoding, hdr.width, hdr.height) == (offset, enc, w, h)
    assert hdr.geometry_source == "plugin_name"
    assert len(hdr.fields) == 7 and "Date" in hdr.fields
    assert hdr.get("date") == hdr.fields["Date"]
    assert hdr.path.endswith(name)


def test_encoding_from_evt_is_authoritative(tmp_path):
    p = write(tmp_path, ["% format EVT2;height=10;width=20", "% evt 3.0"])
    assert read_raw_header(p).encoding == "evt3"
    for v, enc in (("2.0", "evt2"), ("2.1", "evt21"), ("3.0", "evt3")):
        assert read_raw_header(write(tmp_path, [f"% evt {v}", "% geometry 4x4"])).encoding == enc


@pytest.mark.parametrize("fmt,enc", [("EVT3;height=720;width=1280", "evt3"), ("EVT2", "evt2"),
                                     ("EVT21;height=1;width=1", "evt21"), ("evt3", "evt3")])
def test_encoding_from_format(tmp_path, fmt, enc):
    p = write(tmp_path, [f"% format {fmt}", "% geometry 8x6"])
    assert read_raw_header(p).encoding == enc


def test_unknown_evt_version(tmp_path):
    p = write(tmp_path, ["% evt 4.0", "% geometry 4x4"])
    with pytest.raises(UnsupportedFormatError, match="4.0") as e:
        read_raw_header(p)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("fmt", ["HISTO3D;height=1;width=1", "DIFF3D", "EVT9"])
def test_frame_and_unknown_formats(tmp_path, fmt):
    with pytest.raises(UnsupportedFormatError, match=fmt.split(";")[0]):
        read_raw_header(write(tmp_path, [f"% format {fmt}"]))


def test_no_evt_or_format_key(tmp_path):
    p = write(tmp_path, ["% date now", "% geometry 4x4"])
    with pytest.raises(FileFormatError, match="not a RAW event file") as e:
        read_raw_header(p)
    assert not isinstance(e.value, UnsupportedFormatError)


def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError) as e:
        read_raw_header(tmp_path / "nope.raw")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, EvstreamError)
    assert "nope.raw" in str(e.value)


def test_geometry_precedence(tmp_path):
    both = write(tmp_path, ["% evt 3.0", "% format EVT3;height=100;width=200", "% geometry 30x20",
                            "% plugin_name hal_plugin_gen3_fx3"])
    h = read_raw_header(both)
    assert (h.width, h.height, h.geometry_source) == (30, 20, "geometry")
    fmt = write(tmp_path, ["% evt 3.0", "% format EVT3;height=100;width=200",
                           "% plugin_name hal_plugin_gen3_fx3"])
    h = read_raw_header(fmt)
    assert (h.width, h.height, h.geometry_source) == (200, 100, "format")
    plug = write(tmp_path, ["% evt 3.0", "% plugin_name hal_plugin_gen3_fx3", "% system_ID 48"])
    h = read_raw_header(plug)
    assert (h.width, h.height, h.geometry_source) == (640, 480, "plugin_name")
    h = read_raw_header(plug, height=5, width=7)
    assert (h.width, h.height, h.geometry_source) == (7, 5, "override")
    sysid = write(tmp_path, ["% evt 3.0", "% SYSTEM_ID 48"])
    h = read_raw_header(sysid)
    assert (h.width, h.height, h.geometry_source) == (1280, 720, "system_ID")


def test_override_agreeing_with_header_is_fine(tmp_path):
    p = write(tmp_path, ["% evt 3.0", "% geometry 30x20"])
    h = read_raw_header(p, height=20, width=30)
    assert (h.width, h.height, h.geometry_source) == (30, 20, "geometry")


def test_override_conflict(tmp_path):
    p = write(tmp_path, ["% evt 3.0", "% geometry 30x20"])
    with pytest.raises(GeometryError, match="30x20") as e:
        read_raw_header(p, height=30, width=20)
    assert "height=30" in str(e.value) and "width=20" in str(e.value)
    p = write(tmp_path, ["% evt 3.0", "% format EVT3;height=720;width=1280"])
    with pytest.raises(GeometryError, match="height=720"):
        read_raw_header(p, height=480, width=640)


def test_geometry_missing(tmp_path):
    p = write(tmp_path, ["% evt 2.0", "% plugin_name hal_plugin_unknown", "% system_ID 99"])
    with pytest.raises(GeometryError, match="height= and width="):
        read_raw_header(p)
    with pytest.raises(GeometryError):
        read_raw_header(p, height=10)


@pytest.mark.parametrize("line", ["% geometry 30", "% geometry 0x20", "% geometry axb"])
def test_malformed_geometry(tmp_path, line):
    with pytest.raises(GeometryError):
        read_raw_header(write(tmp_path, ["% evt 3.0", line]))


def test_format_with_partial_size_falls_back(tmp_path):
    p = write(tmp_path, ["% format EVT3;height=720", "% plugin_name hal_plugin_gen41_evk3"])
    h = read_raw_header(p)
    assert (h.width, h.height, h.geometry_source) == (1280, 720, "plugin_name")
