"""EVT 2.1 files as cameras write them: the two word layouts, the header rules that select one
(docs/formats.md §6), the explicit override, the warning for a file that decodes to nothing,
and the EVT 2.1 TIME_HIGH loop threshold on whole files."""

import warnings

import numpy as np
import pytest

from evstream.errors import FileFormatError
from evstream.io import EventCD, EventsIterator, RawReader, read_raw_header
from raw_files import replace_header_lines, row_run_events, triggers_every, write_raw

NO_FORMAT_ENDIANNESS = "% format EVT21;height=240;width=320"


def legacy_file(tmp_path, name="imx636.raw", n=5000):
    events = row_run_events(n)
    path = write_raw(tmp_path / name, events, "evt21_legacy", triggers_every(events, 500))
    return path, events


def read(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a correct read warns about nothing
        with RawReader(path, do_time_shifting=False, **kwargs) as reader:
            return reader.read_all()


@pytest.mark.parametrize("kind", ["evt21", "evt21_legacy"])
def test_writer_round_trip_with_the_layout_in_the_format_line(tmp_path, kind):
    events = row_run_events(30_000, seed=4)
    path = write_raw(tmp_path / "a.raw", events, kind)
    header = read_raw_header(path)
    layout = "legacy" if kind == "evt21_legacy" else "little"
    assert header.fields["format"] == f"EVT21;height=240;width=320;endianness={layout}"
    assert (header.evt21_layout, header.evt21_layout_source) == (layout, "format")
    np.testing.assert_array_equal(read(path), events)


def test_the_two_layouts_are_the_same_words_with_swapped_halves(tmp_path):
    events = row_run_events(2000, seed=5)
    little = write_raw(tmp_path / "l.raw", events, "evt21")
    legacy = write_raw(tmp_path / "g.raw", events, "evt21_legacy")
    wl = np.fromfile(little, "<u8", offset=read_raw_header(little).data_offset)
    wg = np.fromfile(legacy, "<u8", offset=read_raw_header(legacy).data_offset)
    np.testing.assert_array_equal((wg << np.uint64(32)) | (wg >> np.uint64(32)), wl)
    # first word is a TIME_HIGH: type 0x8 in bits 63-60 (little) or 31-28 (legacy)
    assert int(wl[0]) >> 60 == 0x8 and (int(wg[0]) >> 28) & 0xF == 0x8


def test_endianness_header_line_selects_the_layout(tmp_path):
    path, events = legacy_file(tmp_path)
    replace_header_lines(path, format_line=NO_FORMAT_ENDIANNESS, add=("% endianness legacy",))
    assert read_raw_header(path).evt21_layout_source == "endianness"
    np.testing.assert_array_equal(read(path), events)


@pytest.mark.parametrize("integrator,plugin_integrator,system_id,layout", [
    ("Prophesee", "Prophesee", "48", "legacy"),       # an IMX636 camera header
    ("Prophesee", None, "54", "legacy"),              # no plugin_integrator_name line
    ("Prophesee", "Prophesee", "55", "little"),       # 0x37: not below the limit
    ("Prophesee", "Someone", "48", "little"),         # another plugin's integrator
    ("Century Arks", "Prophesee", "48", "little"),    # another camera maker
    ("Prophesee", "Prophesee", None, "little"),       # no system_ID
])
def test_camera_rule(tmp_path, integrator, plugin_integrator, system_id, layout):
    """Rule 3: legacy for a Prophesee camera with system_ID < 0x37, little otherwise."""
    events = row_run_events(3000)
    kind = "evt21_legacy" if layout == "legacy" else "evt21"
    path = write_raw(tmp_path / "cam.raw", events, kind)
    add = [f"% integrator_name {integrator}"]
    if plugin_integrator:
        add.append(f"% plugin_integrator_name {plugin_integrator}")
    if system_id:
        add.append(f"% system_ID {system_id}")
    replace_header_lines(path, format_line=NO_FORMAT_ENDIANNESS, add=tuple(add))
    header = read_raw_header(path)
    assert (header.evt21_layout, header.evt21_layout_source) == (layout, "camera")
    np.testing.assert_array_equal(read(path), events)


def test_imx636_file_without_endianness_decodes(tmp_path):
    """The reported defect: an IMX636 EVT 2.1 recording (legacy words, Prophesee header, no
    endianness field) gave 0 events and no warning."""
    path, events = legacy_file(tmp_path)
    replace_header_lines(path, format_line=NO_FORMAT_ENDIANNESS,
                         add=("% integrator_name Prophesee", "% plugin_integrator_name Prophesee",
                              "% plugin_name hal_plugin_imx636_evk4", "% system_ID 49"))
    got = read(path)
    assert len(got) == len(events)
    np.testing.assert_array_equal(got, events)
    it = EventsIterator(path, delta_t=1000, do_time_shifting=False)
    np.testing.assert_array_equal(np.concatenate(list(it)), events)


def test_override_and_the_warning_for_a_file_without_events(tmp_path):
    path, events = legacy_file(tmp_path)
    np.testing.assert_array_equal(read(path, evt21_legacy_word_order=True), events)
    with pytest.warns(UserWarning, match=r"imx636.raw: \d+ data words gave no event .*"
                                         r"little layout, selected by the argument"):
        got = RawReader(path, evt21_legacy_word_order=False).read_all()
    assert len(got) == 0


def test_unknown_endianness_is_an_error(tmp_path):
    path, _ = legacy_file(tmp_path)
    replace_header_lines(path, format_line=NO_FORMAT_ENDIANNESS + ";endianness=big")
    with pytest.raises(FileFormatError, match="imx636.raw.*endianness 'big'"):
        RawReader(path)


@pytest.mark.parametrize("kind", ["evt21", "evt21_legacy"])
def test_times_beyond_the_34_bit_period(tmp_path, kind):
    """The writer steps TIME_HIGH through the period end so that the EVT 2.1 loop threshold
    (a loop only from the maximum back to 0) reads every step."""
    t = np.array([0, 100, (1 << 34) - 70, (1 << 34) - 1, 1 << 34, (1 << 34) + 640,
                  (3 << 34) + 5, (3 << 34) + 5 + (1 << 33)], dtype=np.int64)
    events = np.zeros(len(t), dtype=EventCD)
    events["t"] = t
    events["x"] = np.arange(len(t))
    path = write_raw(tmp_path / "long.raw", events, kind)
    np.testing.assert_array_equal(read(path), events)


def test_a_time_high_one_step_above_zero_is_a_discrepancy(tmp_path):
    """From TIME_HIGH 2^28 - 1 to 1..10: EVT 2.0 counts a loop, EVT 2.1 does not (time goes
    backwards): the reader reports the decoded times as they are."""
    path = tmp_path / "disc.raw"
    events = row_run_events(4)
    write_raw(path, events, "evt21")
    header = read_raw_header(path)
    maxh = (1 << 28) - 1
    words = np.array([(0x8 << 60) | (maxh << 32), (0x1 << 60) | (5 << 54) | 1,
                      (0x8 << 60) | (3 << 32), (0x1 << 60) | (7 << 54) | 1], dtype=np.uint64)
    path.write_bytes(path.read_bytes()[:header.data_offset] + words.astype("<u8").tobytes())
    got = RawReader(path, do_time_shifting=False).read_all()
    assert list(got["t"]) == [(maxh << 6) + 5, (3 << 6) + 7]
