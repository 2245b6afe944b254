"""The one time-bin rule (evstream.timebins), on hand-computed cases."""

import numpy as np

from evstream.timebins import label_bins, label_slice, n_events_window


def test_label_bins_edges_belong_to_the_bin_that_ends_there():
    # window (1000, 1300], 3 bins of 100 us: (1000, 1100], (1100, 1200], (1200, 1300]
    t = [999, 1000, 1001, 1100, 1101, 1200, 1201, 1300, 1301, 1400, 1401]
    assert label_bins(t, 1000, 300, 3).tolist() == [-1, -1, 0, 0, 1, 1, 2, 2, 3, 3, 4]


def test_label_bins_with_one_bin_numbers_whole_windows():
    # split windows of 50 us from 0: (0, 50] is 0, (50, 100] is 1; t = 0 is before window 0
    assert label_bins([0, 1, 50, 51, 100, 101], 0, 50).tolist() == [-1, 0, 0, 1, 1, 2]


def test_label_bins_take_a_fractional_bin_length_exactly():
    # 100 us in 3 bins ending at 33.33.., 66.66.., 100: 33 in bin 0, 34 in bin 1, 100 in bin 2
    t = np.arange(0, 102)
    bins = label_bins(t, 0, 100, 3)
    expected = [-1] + [0] * 33 + [1] * 33 + [2] * 34 + [3]
    assert bins.tolist() == expected


def test_label_slice_leaves_the_start_out_and_keeps_the_end():
    t = np.array([5, 10, 10, 11, 20, 21, 30])
    s = label_slice(t, 10, 20)
    assert (s.start, s.stop) == (3, 5)          # 11 and 20


def test_n_events_window_rounds_the_duration_up_to_a_multiple_of_the_bins():
    assert n_events_window(1000, 1000, 4) == (1000, 4)        # no span: still one µs per bin
    assert n_events_window(1000, 1001, 4) == (1000, 4)
    assert n_events_window(1000, 1004, 4) == (1000, 4)
    assert n_events_window(1000, 1005, 4) == (1000, 8)
    assert n_events_window(0, 99, 5) == (0, 100)
