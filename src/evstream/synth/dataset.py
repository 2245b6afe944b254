"""Synthetic labelled datasets: recordings + ``<name>_bbox.npy`` + ``label_map_dictionary.json``
in ``train/ val/ test/`` folders (the layout of the sequential-loader tutorial).

One recording = one :class:`~evstream.synth.scene.Scene` simulated by
:class:`~evstream.synth.simulator.EventSimulator`, streamed to the layer-1 writers
(:class:`~evstream.io.RawWriter` EVT 3.0 / EVT 2.0, :class:`~evstream.io.DatWriter`). Boxes are
sampled at a fixed labelling rate: one EventBbox per visible object (``class_id`` = index in the
label map, ``track_id`` = object id from 1, ``class_confidence`` = 1); a labelled time with no
visible object gets one box of the ``"empty"`` class (zero size, track 0).

Everything is a function of the seed: recording ``i`` of a dataset depends only on
``(seed, i)`` and the configuration, not on how many recordings are made. The files are
byte-identical for a seed: headers carry :data:`SYNTH_DATE` (or ``$SOURCE_DATE_EPOCH`` when set)
instead of the current time, and ``synth_info.json`` holds no wall-clock times.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..errors import ArgumentError
from ..io import DatWriter, EventBbox, EventCD, EventExtTrigger, RawWriter
from ..io.dtypes import MAX_WRITABLE_SIDE
from ..io.file_date import SOURCE_DATE_EPOCH, file_date
from ..io.header import check_sensor_side
from .scene import Scene, SceneConfig
from .simulator import EventSimulator, SensorConfig

LABEL_MAP_NAME = "label_map_dictionary.json"
INFO_NAME = "synth_info.json"
#: Smallest simulated sensor side (pixels); the largest is the writers' MAX_WRITABLE_SIDE.
#: Sizes from Gen1 to 1 Mpx are the intended range.
MIN_SIDE = 16
_RAW_FORMATS = ("evt3", "evt2", "evt21")
_START_WINDOWS = {"evt3": (4096, 8192), "evt2": (0, 64), "evt21": (0, 64)}
#: Channel id of the simulated external trigger (a frame-sync square wave).
TRIGGER_CHANNEL = 0
#: the header date of every synthetic recording unless ``$SOURCE_DATE_EPOCH`` is set
SYNTH_DATE = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)

Progress = Callable[[str, int, dict], None]


@dataclass
class SynthRecording:
    """What :func:`write_recording` wrote."""

    name: str
    split: str
    paths: list[str]              # event files (.raw and / or _td.dat)
    bbox_path: str
    duration_us: int
    events: int
    boxes: int                    # object boxes (empty-frame markers not counted)
    labelled_times: int
    empty_times: int
    seconds: float
    ego_motion: bool
    objects: int
    triggers: int = 0             # external trigger events written in the RAW file


@dataclass
class SynthDataset:
    """What :func:`make_dataset` wrote. ``splits`` maps a split name to its event files."""

    root: str
    label_map: str
    info: str
    recordings: list[SynthRecording] = field(default_factory=list)

    @property
    def splits(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self.recordings:
            out.setdefault(r.split, []).extend(r.paths)
        return out

    @property
    def files(self) -> list[str]:
        """Every file written."""
        files = [self.label_map, self.info]
        for r in self.recordings:
            files += r.paths + [r.bbox_path]
        return files


def trigger_events(t_start: int, t_stop: int, rate_hz: float) -> np.ndarray:
    """The simulated external trigger in ``[t_start, t_stop)`` µs: a square wave of ``rate_hz``
    on channel :data:`TRIGGER_CHANNEL`, a rising edge (p = 1) at every ``k · period`` and a
    falling edge (p = 0) half a period later (``period = round(1e6 / rate_hz)`` µs)."""
    period = int(round(1e6 / rate_hz))
    half = period // 2
    first = -(-t_start // period) * period - period        # the edge pair before t_start
    rises = np.arange(first, t_stop, period, dtype=np.int64)
    t = np.sort(np.concatenate([rises, rises + half]))
    t = t[(t >= t_start) & (t < t_stop)]
    out = np.zeros(len(t), dtype=EventExtTrigger)
    out["t"] = t
    out["p"] = (t % period) == 0
    out["id"] = TRIGGER_CHANNEL
    return out


def parse_formats(format: str | Iterable[str]) -> tuple[str, ...]:
    """``"evt3"``, ``"evt2"``, ``"evt21"``, ``"dat"``, ``"evt3+dat"`` (or a list of those names)
    -> a tuple with at most one RAW format and optionally ``"dat"``."""
    names = format.split("+") if isinstance(format, str) else list(format)
    names = [n.strip().lower() for n in names if n.strip()]
    bad = [n for n in names if n not in _RAW_FORMATS + ("dat",)]
    if bad or not names:
        raise ArgumentError(f"unknown output format {format!r} (use evt3, evt2, evt21, dat, "
                            "or a RAW format + dat, e.g. evt3+dat)")
    if sum(n in _RAW_FORMATS for n in names) > 1:
        raise ArgumentError(f"at most one RAW format per recording, got {format!r}")
    return tuple(dict.fromkeys(names))


def raw_format_of(formats: tuple[str, ...]) -> str | None:
    """The RAW format among ``formats`` (from :func:`parse_formats`), None if there is none."""
    return next((f for f in formats if f in _RAW_FORMATS), None)


def label_map(config: SceneConfig | None = None) -> dict[str, str]:
    """``{"0": class 0, ..., str(K): "empty"}`` for the config's classes."""
    config = config or SceneConfig()
    config.validate()
    names = config.label_names
    return {str(i): n for i, n in enumerate(names + ["empty"])}


def label_times(duration_us: int, label_rate_hz: float) -> np.ndarray:
    """Label times ``round(k * 1e6 / rate)`` for k = 1, 2, ... while < ``duration_us``."""
    if not label_rate_hz > 0:
        raise ArgumentError(f"label_rate_hz must be > 0, got {label_rate_hz}")
    k = np.arange(1, int(duration_us * label_rate_hz / 1e6) + 2)
    t = np.round(k * (1e6 / label_rate_hz)).astype(np.int64)
    return t[t < duration_us]


def scene_boxes(scene: Scene, times: np.ndarray) -> np.ndarray:
    """EventBbox rows for ``times`` (empty-class markers where nothing is visible)."""
    empty_id = len(scene.config.classes)
    parts = []
    for t in times:
        b = scene.boxes_at(int(t))
        rows = np.zeros(max(len(b), 1), dtype=EventBbox)
        rows["t"] = t
        rows["class_confidence"] = 1.0
        if len(b):
            rows["x"], rows["y"], rows["w"], rows["h"] = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
            rows["class_id"], rows["track_id"] = b[:, 4], b[:, 5]
        else:
            rows["class_id"] = empty_id
        parts.append(rows)
    return np.concatenate(parts, dtype=EventBbox) if parts else np.zeros(0, EventBbox)


def _rngs(seed: int, index: int):
    ss = np.random.SeedSequence(int(seed), spawn_key=(int(index),))
    scene_ss, sensor_ss = ss.spawn(2)
    return np.random.default_rng(scene_ss), np.random.default_rng(sensor_ss)


def _check_size(height, width):
    for name, v in (("height", height), ("width", width)):
        check_sensor_side(v, name, lo=MIN_SIDE, hi=MAX_WRITABLE_SIDE, error=ArgumentError)


def synth_date() -> datetime.datetime:
    """The date written in synthetic recordings: ``$SOURCE_DATE_EPOCH`` if set, else
    :data:`SYNTH_DATE` (never the current time, so that a seed gives the same bytes)."""
    return file_date() if os.environ.get(SOURCE_DATE_EPOCH) else SYNTH_DATE


def make_simulator(height: int, width: int, duration_us: int, seed: int = 0, index: int = 0,
                   scene: SceneConfig | None = None, sensor: SensorConfig | None = None,
                   start_window: tuple[int, int | None] = (0, None)) -> EventSimulator:
    """The simulator of recording ``index`` of a dataset with this ``seed`` (its scene is
    ``.scene``)."""
    _check_size(height, width)
    if not isinstance(duration_us, (int, np.integer)) or duration_us < 1:
        raise ArgumentError(f"duration_us must be a positive integer, got {duration_us!r}")
    scene_rng, sensor_rng = _rngs(seed, index)
    sc = Scene(height, width, int(duration_us), scene or SceneConfig(), scene_rng)
    return EventSimulator(sc, sensor, sensor_rng, start_window=start_window)


def simulate(height: int = 240, width: int = 304, duration_us: int = 1_000_000, seed: int = 0,
             index: int = 0, label_rate_hz: float = 20.0, scene: SceneConfig | None = None,
             sensor: SensorConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One recording in memory: ``(events EventCD, boxes EventBbox)``. Same content as
    recording ``index`` of ``make_dataset(..., seed=seed, format="dat")``."""
    sim = make_simulator(height, width, duration_us, seed, index, scene, sensor)
    chunks = [ev for _, ev in sim.chunks()]
    events = np.concatenate(chunks, dtype=EventCD) if chunks else np.zeros(0, EventCD)
    return events, scene_boxes(sim.scene, label_times(duration_us, label_rate_hz))


def write_recording(out_stem: str | os.PathLike, height: int, width: int, duration_us: int,
                    seed: int = 0, index: int = 0, format: str | Iterable[str] = "evt3",
                    label_rate_hz: float = 20.0, scene: SceneConfig | None = None,
                    sensor: SensorConfig | None = None, split: str = "",
                    progress: Progress | None = None, trigger_rate_hz: float = 0.0,
                    evt21_layout: str = "little") -> SynthRecording:
    """Simulate recording ``index`` and write ``<stem>.raw`` and / or ``<stem>_td.dat`` plus
    ``<stem>_bbox.npy``. Events stream to the writers chunk by chunk (bounded memory).

    ``trigger_rate_hz > 0`` adds :func:`trigger_events` to the RAW file (DAT has no triggers),
    from the first event time of the format on (EVT 3.0: 4096 µs), so that the file's
    time-shifting origin is the same with and without triggers;
    ``evt21_layout`` is the EVT 2.1 word layout (``"little"`` or ``"legacy"``)."""
    formats = parse_formats(format)
    if not 0 <= trigger_rate_hz <= 100_000 or (trigger_rate_hz and not raw_format_of(formats)):
        raise ArgumentError(f"trigger_rate_hz must be within 0..100000 and needs a RAW format, got "
                            f"{trigger_rate_hz} with {'+'.join(formats)}")
    stem = os.fspath(out_stem)
    raw = raw_format_of(formats)
    window = _START_WINDOWS[raw] if raw else (0, None)
    t_start = time.perf_counter()
    times = label_times(duration_us, label_rate_hz)
    date = synth_date()
    sim = make_simulator(height, width, duration_us, seed, index, scene, sensor, window)
    writers, paths = [], []
    try:
        if raw:
            paths.append(stem + ".raw")
            writers.append(RawWriter(paths[-1], height, width, format=raw,
                                     header={"date": date.strftime("%Y-%m-%d %H:%M:%S"),
                                             "integrator_name": "evstream.synth",
                                             "serial_number": f"synth-{seed}-{index}"},
                                     evt21_layout=evt21_layout))
        if "dat" in formats:
            paths.append(stem + "_td.dat")
            writers.append(DatWriter(paths[-1], height, width, date=date))
        if progress:
            progress("start", index, {"total_us": int(duration_us), "name": os.path.basename(stem)})
        t_prev = 0
        n_triggers = 0
        for t_reached, ev in sim.chunks(chunk_us=100_000):
            for w in writers:
                if isinstance(w, RawWriter) and trigger_rate_hz:
                    # from the recording's first event time on: an earlier trigger would move
                    # the first TIME_HIGH, hence the time-shifting origin, of the file
                    triggers = trigger_events(max(t_prev, window[0]), t_reached, trigger_rate_hz)
                    w.write(ev, triggers)
                    n_triggers += len(triggers)
                else:
                    w.write(ev)
            if progress:
                progress("advance", index, {"us": t_reached - t_prev, "events": len(ev)})
            t_prev = t_reached
    finally:
        for w in writers:
            w.close()
    boxes = scene_boxes(sim.scene, times)
    bbox_path = stem + "_bbox.npy"
    np.save(bbox_path, boxes)
    empty_id = len(sim.scene.config.classes)
    n_empty = int(np.count_nonzero(boxes["class_id"] == empty_id))
    rec = SynthRecording(name=os.path.basename(stem), split=split, paths=paths,
                         bbox_path=bbox_path, duration_us=int(duration_us),
                         events=int(sim.events_emitted), boxes=len(boxes) - n_empty,
                         labelled_times=len(times), empty_times=n_empty,
                         seconds=time.perf_counter() - t_start, ego_motion=sim.scene.ego_motion,
                         objects=len(sim.scene.objects), triggers=n_triggers)
    if progress:
        progress("done", index, {"events": rec.events, "boxes": rec.boxes})
    return rec


def split_counts(n: int, splits: dict[str, float]) -> dict[str, int]:
    """Share ``n`` recordings between splits by weight: every split with a positive weight gets
    one recording before any gets a second (in the given order while there are too few), then
    the largest shortfall first."""
    if any(w < 0 for w in splits.values()) or not any(w > 0 for w in splits.values()):
        raise ArgumentError(f"split weights must be >= 0 with at least one > 0, got {splits}")
    total = sum(splits.values())
    counts = {k: 0 for k in splits}
    live = [k for k, w in splits.items() if w > 0]
    for k in live[:n]:
        counts[k] = 1
    for _ in range(n - min(n, len(live))):
        k = max(live, key=lambda s: splits[s] / total * n - counts[s])
        counts[k] += 1
    return counts


def _parse_splits(splits) -> dict[str, float]:
    if isinstance(splits, str):
        out = {}
        for part in splits.split(","):
            name, sep, w = part.partition("=")
            if not sep or not name.strip():
                raise ArgumentError(f"splits must look like 'train=0.6,val=0.2,test=0.2', got "
                                    f"{splits!r}")
            try:
                out[name.strip()] = float(w)
            except ValueError:
                raise ArgumentError(f"split weight {w!r} is not a number") from None
        return out
    out = dict(splits)
    for name in out:
        if not name or os.sep in name or name in (".", ".."):
            raise ArgumentError(f"invalid split folder name {name!r}")
    return {k: float(v) for k, v in out.items()}


def make_dataset(out_dir: str | os.PathLike, recordings: int = 3, duration_s: float = 2.0,
                 height: int = 360, width: int = 640, format: str | Iterable[str] = "evt3",
                 seed: int = 0, label_rate_hz: float = 20.0,
                 splits: dict[str, float] | str = (("train", 0.6), ("val", 0.2), ("test", 0.2)),
                 scene: SceneConfig | None = None, sensor: SensorConfig | None = None,
                 progress: Progress | None = None, trigger_rate_hz: float = 0.0,
                 evt21_layout: str = "little") -> SynthDataset:
    """Write a labelled synthetic dataset.

    Layout: ``out_dir/label_map_dictionary.json``, ``out_dir/synth_info.json`` (parameters and
    per-recording statistics), ``out_dir/<split>/rec_<i>.raw`` (and / or ``rec_<i>_td.dat``)
    with ``rec_<i>_bbox.npy`` beside it. Recordings are numbered across splits (train first).

    Args:
        out_dir: created if missing; files of the same names are overwritten.
        recordings: number of recordings.
        duration_s: length of each recording.
        height, width: sensor size, e.g. 240 x 304 (Gen1) to 720 x 1280 (1 Mpx).
        format: ``"evt3"``, ``"evt2"``, ``"evt21"``, ``"dat"``, or a RAW format + ``"dat"``.
        seed: everything is a function of it.
        label_rate_hz: box sampling rate (e.g. 20, 30, 60).
        splits: split name -> weight (dict, pairs, or ``"train=0.6,val=0.2,test=0.2"``).
        scene, sensor: :class:`SceneConfig`, :class:`SensorConfig` (defaults if None).
        progress: ``progress(kind, index, payload)`` with kind ``"start"`` (``total_us``,
            ``name``), ``"advance"`` (``us``, ``events``) and ``"done"`` (``events``,
            ``boxes``).
        trigger_rate_hz, evt21_layout: as :func:`write_recording`.

    Returns:
        :class:`SynthDataset` with every path written.
    """
    if isinstance(recordings, bool) or not isinstance(recordings, (int, np.integer)) \
            or recordings < 1:
        raise ArgumentError(f"recordings must be a positive integer, got {recordings!r}")
    if not (isinstance(duration_s, (int, float)) and duration_s > 0):
        raise ArgumentError(f"duration_s must be > 0, got {duration_s!r}")
    duration_us = int(round(duration_s * 1e6))
    _check_size(height, width)
    formats = parse_formats(format)
    label_times(duration_us, label_rate_hz)          # validates the rate
    scene = scene or SceneConfig()
    sensor = sensor or SensorConfig()
    scene.validate()
    sensor.validate()
    counts = split_counts(int(recordings), _parse_splits(splits))
    root = os.fspath(out_dir)
    os.makedirs(root, exist_ok=True)
    lm_path = os.path.join(root, LABEL_MAP_NAME)
    with open(lm_path, "w") as f:
        json.dump(label_map(scene), f, indent=1)
    result = SynthDataset(root=root, label_map=lm_path, info=os.path.join(root, INFO_NAME))
    index = 0
    for split, n in counts.items():
        if n == 0:
            continue
        folder = os.path.join(root, split)
        os.makedirs(folder, exist_ok=True)
        for _ in range(n):
            stem = os.path.join(folder, f"rec_{index:04d}")
            result.recordings.append(write_recording(
                stem, height, width, duration_us, seed=seed, index=index, format=formats,
                label_rate_hz=label_rate_hz, scene=scene, sensor=sensor, split=split,
                progress=progress, trigger_rate_hz=trigger_rate_hz, evt21_layout=evt21_layout))
            index += 1
    info = {"generator": "evstream.synth", "seed": int(seed), "height": int(height),
            "width": int(width), "duration_us": duration_us, "format": "+".join(formats),
            "label_rate_hz": float(label_rate_hz), "trigger_rate_hz": float(trigger_rate_hz),
            "label_map": label_map(scene),
            "scene": asdict(scene), "sensor": asdict(sensor),
            "recordings": [{**_reproducible_fields(r),
                            "paths": [os.path.relpath(p, root) for p in r.paths],
                            "bbox_path": os.path.relpath(r.bbox_path, root)}
                           for r in result.recordings]}
    with open(result.info, "w") as f:
        json.dump(info, f, indent=1)
    return result


def _reproducible_fields(recording: SynthRecording) -> dict:
    """A recording's fields for synth_info.json: all but the wall-clock ``seconds``."""
    fields = asdict(recording)
    del fields["seconds"]
    return fields


__all__ = ["LABEL_MAP_NAME", "SYNTH_DATE", "SynthDataset", "SynthRecording", "label_map",
           "label_times", "make_dataset", "make_simulator", "parse_formats", "raw_format_of",
           "scene_boxes", "simulate", "split_counts", "synth_date", "trigger_events",
           "write_recording"]
