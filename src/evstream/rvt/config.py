"""RVT's fixed constants and the two dataset presets (Gen1 and Gen4 / 1 Mpx).

Times are int64 microseconds. The values are RVT's preprocessing defaults (see the section
"Using evstream with RVT-style detectors" of the README for where each rule comes from).
"""

from __future__ import annotations

from dataclasses import dataclass

from evstream.errors import ArgumentError

#: Step between two window ends placed between label frames, in µs (RVT's 50 ms).
WINDOW_STEP_US = 50_000
#: The label-frame step assumed when placing window ends (100 ms): ``n_i = 2 c_i`` ends per gap.
FRAME_STEP_US = 100_000
#: Labels earlier than this are never used: the first label frame is the first label time >= it.
ALIGN_T_US = 100_000
#: Tolerance of the label-time grid: a label time is a frame iff ``|d - c B| <= 2000`` µs.
JITTER_TOLERANCE_US = 2_000
#: Consecutive label frames must be more than this apart (RVT asserts it).
MIN_FRAME_GAP_US = 98_000
#: Windows per RVT histogram: 10 time bins x 2 polarities = 20 channels.
NBINS = 10
#: Count cut-off of RVT's stacked histogram.
COUNT_CUTOFF = 10
#: Events per window in RVT's COUNT extraction (``ne=50000``).
COUNT_EVENTS = 50_000

#: Extraction modes: ``"duration"`` (closed window ``[end - 50 ms, end]``) or ``"count"``
#: (the last 50 000 events with time <= end).
MODES = ("duration", "count")


@dataclass(frozen=True)
class RvtDataset:
    """One of RVT's two dataset presets.

    Attributes:
        name: ``"gen1"`` or ``"gen4"``.
        height, width: full sensor size (the representation is asserted to have it).
        event_suffix: suffix that replaces ``bbox.npy``'s ``bbox`` part to find the event file
            RVT reads (``X_bbox.npy`` -> ``X_td.dat.h5`` / ``X_td.h5``).
        max_class_id: keep boxes with ``class_id <= max_class_id`` (None: all pass).
        psee_filter: the "psee" size filter (``w^2 + h^2 >= 30^2, w >= 10, h >= 10``) instead of
            the "conservative" one (``w >= 5, h >= 5``).
        base_period_us: fixed label period B (None: measured from the labels, gen4).
        downsample_by_2: ``ds2_nearest`` (keep odd rows and columns).
        ignored_sequences: sequence names RVT skips (no output at all).
        sequence_length: RVT's training sequence length L.
    """

    name: str
    height: int
    width: int
    event_suffix: str
    max_class_id: int | None
    psee_filter: bool
    base_period_us: int | None
    downsample_by_2: bool
    ignored_sequences: tuple[str, ...]
    sequence_length: int

    @property
    def frame_hw(self) -> tuple[int, int]:
        """Height and width of the stored frames (halved by ``ds2_nearest``)."""
        if self.downsample_by_2:
            return self.height // 2, self.width // 2
        return self.height, self.width

    @property
    def h5_name(self) -> str:
        """File name of the frames inside a representation folder."""
        return "event_representations_ds2_nearest.h5" if self.downsample_by_2 else \
            "event_representations.h5"

    @property
    def psee_limits(self) -> tuple[int, int]:
        """``(diagonal, side)`` minimums of the psee filter: (30, 10) gen1, (60, 20) gen4."""
        return (30, 10) if self.name == "gen1" else (60, 20)

    @property
    def faulty_max_width(self) -> int:
        """Widest box kept in the train split: ``floor(9 W / 10)``."""
        return (9 * self.width) // 10


GEN1 = RvtDataset("gen1", 240, 304, "td.dat.h5", None, True, 250_000, False,
                  ("17-04-06_09-57-37_6344500000_6404500000",
                   "17-04-13_19-17-27_976500000_1036500000",
                   "17-04-06_15-14-36_1159500000_1219500000",
                   "17-04-11_15-13-23_122500000_182500000"), 21)
GEN4 = RvtDataset("gen4", 720, 1280, "td.h5", 2, False, None, True, (), 5)
DATASETS = {"gen1": GEN1, "gen4": GEN4}


def dataset_preset(name: str | RvtDataset) -> RvtDataset:
    """The preset called ``name`` (``"gen1"`` or ``"gen4"``), or ``name`` itself."""
    if isinstance(name, RvtDataset):
        return name
    if name not in DATASETS:
        raise ArgumentError(f"unknown RVT dataset {name!r}: use 'gen1' or 'gen4'")
    return DATASETS[name]


def representation_name(mode: str = "duration", nbins: int = NBINS) -> str:
    """RVT's folder name: ``stacked_histogram_dt=50_nbins=10`` or ``..._ne=50000_nbins=10``."""
    if mode == "duration":
        return f"stacked_histogram_dt={WINDOW_STEP_US // 1000}_nbins={nbins}"
    if mode == "count":
        return f"stacked_histogram_ne={COUNT_EVENTS}_nbins={nbins}"
    raise ArgumentError(f"mode must be one of {MODES}, got {mode!r}")
