"""The ``evstream`` command line (also ``python -m evstream``). Parsing, progress and printing
only: the work is done by the library."""

from __future__ import annotations

import argparse
import ast
import os
import sys

from . import __version__
from .errors import EvstreamError
from .io.summary import summarize

#: what ``evstream --help`` says first
DESCRIPTION = ("Event-camera recordings (Prophesee RAW EVT 2.0 / 2.1 / 3.0, DAT, NPY) to tensor "
               "files, videos and training batches.")
EPILOG = ("Run 'evstream COMMAND --help' for a command's options. Also runs as 'python -m "
          "evstream'. Formats: docs/formats.md; differences from metavision_ml: "
          "docs/compatibility.md.")


def _format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
              for r in rows]
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    """Describe each recording (or box file); exit 1 if any could not be read (the others are
    still shown)."""
    header = ["file", "format", "geometry", "events", "first t (us)", "last t (us)",
              "duration (s)", "mean Mev/s", "peak Mev/s (10 ms)", "t backwards", "triggers"]
    rows, failures, formats = [], [], set()
    kwargs = {}
    if args.height_width:
        kwargs["height"], kwargs["width"] = args.height_width
    for path in args.files:
        try:
            s = summarize(path, **({} if path.lower().endswith((".dat", ".npy")) else kwargs))
        except (EvstreamError, OSError) as exc:
            failures.append(f"{path}: {exc.problem if isinstance(exc, EvstreamError) else exc}")
            continue
        formats.add(s.format)
        rows.append([os.path.basename(path), s.format,
                     "?" if s.width is None else f"{s.width}x{s.height}",
                     f"{s.event_count:,}" + (" boxes" if s.is_box_file else ""),
                     "-" if s.first_t is None else f"{s.first_t:,}",
                     "-" if s.last_t is None else f"{s.last_t:,}", f"{s.duration_us * 1e-6:.6f}",
                     "-" if s.is_box_file else f"{s.mean_rate_ev_s * 1e-6:.2f}",
                     "-" if s.is_box_file else f"{s.peak_rate_ev_s * 1e-6:.2f}",
                     f"{s.backward_steps:,}",
                     "-" if s.trigger_count is None else str(s.trigger_count)])
    if rows:
        print(_format_table(header, rows))
        if any(f.startswith("RAW") for f in formats):
            print("RAW times are time-shifted (first TIME_HIGH as origin, as OpenEB does).")
        if any(r[9] != "0" for r in rows):
            print("t backwards: events whose time is below the previous one's (time-base "
                  "discrepancies); the duration spans the smallest to the largest time.")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _kwarg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


class _Progress:
    """tqdm bars for ``precompute``: one overall bar (events/s, ETA) and one per running input."""

    def __init__(self, paths: list[str], enabled: bool | None):
        from tqdm import tqdm

        self._tqdm, self._enabled, self.paths = tqdm, enabled, paths
        self.overall = tqdm(total=0, unit="ev", unit_scale=True, desc=f"0/{len(paths)} files",
                            position=0, dynamic_ncols=True,
                            disable=None if enabled is None else not enabled)
        self.bars: dict[int, object] = {}
        self.free = []
        self.finished = 0

    def __call__(self, kind: str, index: int, payload) -> None:
        if kind == "start":
            position = self.free.pop() if self.free else len(self.bars) + 1
            total = int(payload["total_events"])
            self.bars[index] = (self._tqdm(total=total, unit="ev", unit_scale=True, leave=False,
                                           desc=os.path.basename(self.paths[index])[:30],
                                           position=position, dynamic_ncols=True,
                                           disable=self.overall.disable), position)
            self.overall.total += total
            self.overall.refresh()
        elif kind == "advance" and index in self.bars:
            self.bars[index][0].update(payload["events"])
            self.overall.update(payload["events"])
        elif kind in ("done", "failed"):
            bar = self.bars.pop(index, None)
            if bar is not None:
                if kind == "done":       # RAW totals are estimates: settle on the real count
                    self.overall.total += bar[0].n - bar[0].total
                bar[0].close()
                self.free.append(bar[1])
            self.finished += 1
            self.overall.set_description(f"{self.finished}/{len(self.paths)} files")

    def close(self) -> None:
        for bar, _ in self.bars.values():
            bar.close()
        self.overall.close()


def _box_labels(args: argparse.Namespace) -> list:
    """``--box-labels`` as given; else (unless ``--no-box-labels``) the ``<stem>_bbox.npy`` lying
    beside each input, None where there is none; ``[]`` when no input has one."""
    if args.box_labels or args.no_box_labels:
        return list(args.box_labels or [])
    from .data.box_processing import box_file_path

    found = []
    for path in args.inputs:
        try:
            candidate = box_file_path(path)
        except EvstreamError:
            candidate = None
        found.append(candidate if candidate and os.path.isfile(candidate) else None)
    if not any(found):
        return []
    print(f"box labels: {sum(f is not None for f in found)}/{len(found)} inputs have a "
          f"<stem>_bbox.npy beside them, split alongside (--no-box-labels to skip)",
          file=sys.stderr)
    return found


def cmd_precompute(args: argparse.Namespace) -> int:
    """Precompute tensor files; exit 1 if any input failed (the others still complete)."""
    import time

    from .preprocessing.hdf5 import generate_hdf5

    kwargs = dict(args.kwarg or [])
    if args.max_val is not None:
        kwargs["max_incr_per_pixel"] = args.max_val
    height, width = args.height_width if args.height_width else (None, None)
    progress = _Progress(args.inputs, None if args.progress is None else args.progress)
    t0 = time.perf_counter()
    try:
        results = generate_hdf5(
            args.inputs, args.output_folder, args.preprocess, args.delta_t, height=height,
            width=width, start_ts=args.start_ts,
            max_duration=None if args.max_duration_ms is None else args.max_duration_ms * 1000,
            n_processes=args.jobs, box_labels=_box_labels(args),
            store_as_uint8=args.store_as_uint8, mode=args.mode, n_events=args.n_events,
            preprocess_kwargs=kwargs, compression=args.compression, overwrite=args.overwrite,
            progress=progress, raise_on_error=False,
            **({} if args.max_rows is None else {"max_rows": args.max_rows}))
    except EvstreamError as exc:
        progress.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress.close()
    elapsed = time.perf_counter() - t0
    header = ["input", "status", "files", "rows", "MB", "events", "time (s)", "Mev/s"]
    rows = [[os.path.basename(r.path), r.status, str(len(r.outputs)), f"{r.rows:,}",
             f"{r.bytes / 1e6:.2f}", f"{r.events:,}", f"{r.seconds:.2f}",
             f"{r.events / r.seconds / 1e6:.2f}" if r.seconds and r.events else "-"]
            for r in results]
    total_events = sum(r.events for r in results)
    rows.append(["total", f"{sum(r.status != 'failed' for r in results)}/{len(results)} ok",
                 str(sum(len(r.outputs) for r in results)), f"{sum(r.rows for r in results):,}",
                 f"{sum(r.bytes for r in results) / 1e6:.2f}", f"{total_events:,}",
                 f"{elapsed:.2f}", f"{total_events / elapsed / 1e6:.2f}" if elapsed else "-"])
    print(_format_table(header, rows))
    failures = [r for r in results if r.status == "failed"]
    for r in failures:
        print(f"error: {r.error}", file=sys.stderr)
    if not failures and not any(r.rows for r in results) and \
            not any(r.status == "skipped" for r in results):
        print(f"error: no tensor row written: the inputs hold no event from --start-ts "
              f"{args.start_ts} us on (check the inputs with 'evstream info')", file=sys.stderr)
        return 1
    return 1 if failures else 0


def cmd_precompute_rvt(args: argparse.Namespace) -> int:
    """``precompute --layout rvt INPUT_DIR OUT_DIR``: RVT's layout; exit 1 if a sequence failed
    or nothing was written."""
    import time

    from tqdm import tqdm

    from .rvt.layout_writer import precompute_rvt

    if len(args.inputs) != 2:
        print("error: precompute --layout rvt takes INPUT_DIR OUT_DIR", file=sys.stderr)
        return 2
    bar = tqdm(unit="seq", desc=f"rvt {args.dataset}",
               disable=None if args.progress is None else not args.progress)
    t0 = time.perf_counter()
    try:
        results = precompute_rvt(args.inputs[0], args.inputs[1], args.dataset, args.extraction,
                                 jobs=args.jobs, progress=lambda r: bar.update(1))
    except EvstreamError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar.close()
    elapsed = time.perf_counter() - t0
    rows = [[r.split, r.name, r.status, f"{r.windows:,}", f"{r.events:,}", f"{r.seconds:.2f}"]
            for r in results]
    rows.append(["total", "", f"{sum(r.status in ('written', 'kept') for r in results)}/"
                 f"{len(results)} ok", f"{sum(r.windows for r in results):,}",
                 f"{sum(r.events for r in results):,}", f"{elapsed:.2f}"])
    print(_format_table(["split", "sequence", "status", "windows", "events", "time (s)"], rows))
    failures = [r for r in results if r.status == "failed"]
    for r in failures:
        print(f"error: {r.error}", file=sys.stderr)
    if not any(r.status in ("written", "kept") for r in results):
        print("error: no sequence written", file=sys.stderr)
        return 1
    return 1 if failures else 0


def _precompute_dispatch(args: argparse.Namespace) -> int:
    if args.layout == "rvt":
        return cmd_precompute_rvt(args)
    if not args.output_folder:
        print("error: precompute needs -o/--output-folder", file=sys.stderr)
        return 2
    return cmd_precompute(args)


def cmd_render(args: argparse.Namespace) -> int:
    """Write the loader's show() grids of recordings / tensor files to an mp4 and/or PNGs."""
    from .data.render import render_video

    if args.output is None and args.png_dir is None:
        print("error: give -o/--output (mp4) and/or --png-dir", file=sys.stderr)
        return 2
    height, width = args.height_width if args.height_width else (None, None)
    try:
        n, (grid_h, grid_w) = render_video(
            args.inputs, args.output, png_dir=args.png_dir, preprocess_function_name=args.preprocess,
            delta_t=args.delta_t, num_tbins=args.num_tbins, height=height, width=width,
            batch_size=args.batch_size, label_map_path=args.label_map, classes=args.classes,
            padding=not args.no_padding, fps=args.fps, max_frames=args.max_frames,
            preprocess_kwargs=dict(args.kwarg or []), num_workers=args.num_workers,
            say=lambda note: print(f"render: {note}", file=sys.stderr))
    except (EvstreamError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if n == 0:
        chunk = f"{args.num_tbins} bins x {args.delta_t} us" if args.delta_t else \
            f"{args.num_tbins} bins"
        print(f"error: no frame written: every input is shorter than one chunk of {chunk} "
              f"(lower --delta-t or --num-tbins)", file=sys.stderr)
        return 1
    where = " and ".join(x for x in (args.output, args.png_dir and f"{args.png_dir}/") if x)
    print(f"wrote {n} frames of {grid_w}x{grid_h} to {where}")
    return 0


class _Deprecated(argparse.Action):
    """An old spelling that still works: stores like the new one and says which to use."""

    def __init__(self, option_strings, dest, instead: str, convert=None, **kwargs):
        self.instead, self.convert = instead, convert
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed; use "
              f"{self.instead}", file=sys.stderr)
        setattr(namespace, self.dest, self.convert(values) if self.convert else values)


def _size(text: str) -> tuple[int, int]:
    """``WxH`` (e.g. ``1280x720``, as a RAW ``geometry``) -> ``(H, W)``."""
    w, sep, h = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return int(h), int(w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x360, got {text!r}")


class _SynthProgress:
    """One tqdm bar for ``synth``: simulated milliseconds (integer counts), with events written.
    Shown only on a terminal unless ``--progress``."""

    def __init__(self, total_s: float, recordings: int, enabled: bool | None):
        from tqdm import tqdm

        self.recordings, self.done, self.events, self.us = recordings, 0, 0, 0
        self.bar = tqdm(total=int(round(total_s * 1000)), unit="ms",
                        desc=f"0/{recordings} recordings", dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n}/{total} ms simulated "
                        "[{elapsed}<{remaining}{postfix}]",
                        disable=None if enabled is None else not enabled)

    def __call__(self, kind: str, index: int, payload: dict) -> None:
        if kind == "advance":
            self.events += payload["events"]
            before, self.us = self.us, self.us + int(payload["us"])
            self.bar.update(self.us // 1000 - before // 1000)
            self.bar.set_postfix_str(f"{self.events / 1e6:.1f} Mev", refresh=False)
        elif kind == "done":
            self.done += 1
            self.bar.set_description(f"{self.done}/{self.recordings} recordings")

    def close(self) -> None:
        self.bar.close()


def cmd_synth(args: argparse.Namespace) -> int:
    """Write a synthetic labelled dataset (evstream.synth.make_dataset) and list it."""
    from .synth import SceneConfig, SensorConfig, make_dataset

    height, width = args.height_width
    progress = _SynthProgress(args.recordings * args.duration_s, args.recordings, args.progress)
    scene_kwargs = {"ego_motion": args.ego_motion}
    if args.max_objects is not None:
        scene_kwargs["max_objects"] = args.max_objects
    if args.spawn_rate_hz is not None:
        scene_kwargs["spawn_rate_hz"] = args.spawn_rate_hz
    sensor_kwargs = {}
    if args.noise_rate_hz is not None:
        sensor_kwargs["noise_rate_hz"] = args.noise_rate_hz
    try:
        ds = make_dataset(args.out_dir, recordings=args.recordings, duration_s=args.duration_s,
                          height=height, width=width, format=args.format, seed=args.seed,
                          label_rate_hz=args.label_rate_hz, splits=args.splits,
                          scene=SceneConfig(**scene_kwargs), sensor=SensorConfig(**sensor_kwargs),
                          progress=progress, trigger_rate_hz=args.triggers,
                          evt21_layout=args.evt21_layout)
    except (EvstreamError, OSError) as exc:
        progress.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    progress.close()
    header = ["recording", "split", "events", "mean Mev/s", "boxes", "empty frames", "ego",
              "time (s)"]
    rows = [[os.path.basename(r.paths[0]), r.split, f"{r.events:,}",
             f"{r.events / (r.duration_us * 1e-6) / 1e6:.2f}", str(r.boxes),
             f"{r.empty_times}/{r.labelled_times}", "yes" if r.ego_motion else "no",
             f"{r.seconds:.2f}"] for r in ds.recordings]
    print(_format_table(header, rows))
    print(f"label map: {ds.label_map}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole stack on synthetic data: simulate, precompute, the tutorial's loop, render, train."""
    from dataclasses import replace

    from .demo.pipeline import DemoConfig, run_demo
    config = DemoConfig()
    if args.steps is not None:
        config = replace(config, steps=args.steps)
    results = run_demo(args.out, config)
    return 0 if results["metrics"]["ap"] > results["baseline"]["ap"] else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    """COCO metrics of a folder of detections against a folder of ground truth (the toolbox's
    protocol); exit 1 on bad input or when nothing could be evaluated."""
    from . import datasets
    from .metrics import evaluate_folders, format_metrics

    chosen = datasets.PRESETS.get(args.dataset)
    classes = args.classes or (chosen.classes if chosen else None)
    size = tuple(args.height_width) if args.height_width else (chosen.sensor_hw if chosen
                                                                else None)
    if not classes or not size:
        print("error: give --dataset (gen1, gen4, etram, dsec), or --classes and --height-width",
              file=sys.stderr)
        return 1
    box_filter = chosen.box_filter if chosen and chosen.box_filter else datasets.PaperBoxFilter()
    if args.min_box_diag is not None or args.min_box_side is not None:
        box_filter = datasets.PaperBoxFilter(
            box_filter.min_box_diag if args.min_box_diag is None else args.min_box_diag,
            box_filter.min_box_side if args.min_box_side is None else args.min_box_side,
            box_filter.skip_ts)
    if args.skip_ts is not None:
        box_filter = datasets.PaperBoxFilter(box_filter.min_box_diag, box_filter.min_box_side,
                                             args.skip_ts)
    if args.downsample_by_2:
        box_filter = box_filter.halved()
        if not args.height_width:
            size = (size[0] // 2, size[1] // 2)
    if args.no_filter:
        box_filter = None
    try:
        metrics = evaluate_folders(args.gt_dir, args.det_dir, classes, size[0], size[1],
                                   box_filter, args.time_tol, args.backend)
    except EvstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    described = "none" if box_filter is None else (
        f"diagonal >= {box_filter.min_box_diag:g}, sides >= {box_filter.min_box_side:g}, "
        f"t > {box_filter.skip_ts} us")
    print(format_metrics(metrics))
    print(f"{len(metrics['recordings'])} recordings, {metrics['num_images']} images "
          f"(ground-truth times), {metrics['num_gt']} ground-truth boxes, "
          f"{metrics['num_detections']} detections; {size[1]}x{size[0]}, classes "
          f"{', '.join(classes)}; filter: {described}; time tolerance {args.time_tol} us")
    if metrics["unmatched_detections"]:
        print(f"warning: {len(metrics['unmatched_detections'])} detection file(s) without ground "
              f"truth, not evaluated: {', '.join(metrics['unmatched_detections'][:5])}",
              file=sys.stderr)
    if metrics["num_images"] == 0:
        print("error: no ground-truth box left to evaluate (after the filter)", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evstream", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"evstream {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = commands.add_parser("info", help="format, geometry, counts, times and rates of recordings")
    info.add_argument("files", nargs="+", help="RAW, DAT, NPY or HDF5 event files, or _bbox.npy box files")
    info.add_argument("--height-width", nargs=2, type=int, metavar=("H", "W"),
                      help="sensor size for RAW files whose header has none")
    info.set_defaults(run=cmd_info)

    pre = commands.add_parser("precompute", help="precompute tensor files (HDF5) from recordings",
                              description="Turn recordings into HDF5 tensor files, one row per "
                              "delta_t (or per n_events), readable by evstream.data.HDF5Iterator "
                              "and by the Prophesee tools. Existing outputs are skipped unless "
                              "--overwrite.")
    pre.add_argument("inputs", nargs="+", help="RAW, DAT or HDF5 event files")
    pre.add_argument("-o", "--output-folder", help="output folder (required unless --layout rvt)")
    pre.add_argument("--preprocess", default="histo", help="preprocessing name (default histo)")
    pre.add_argument("--delta-t", type=int, default=50000, help="row length in us (default 50000)")
    pre.add_argument("--start-ts", type=int, default=0, help="start time in us (default 0)")
    pre.add_argument("--height-width", "--height_width", nargs=2, type=int, metavar=("H", "W"),
                     help="output size (the sensor size divided by a power of two)")
    pre.add_argument("--max-duration-ms", type=int, help="split the output every N ms")
    pre.add_argument("--store-as-uint8", "--store_as_uint8", action="store_true",
                     help="store round(255 x) as uint8 (not for diff / quantized)")
    pre.add_argument("--mode", choices=("delta_t", "n_events"), default="delta_t")
    pre.add_argument("--n-events", "--n_events", type=int, default=0,
                     help="events per row in n_events mode")
    pre.add_argument("--box-labels", nargs="+",
                     help="one _bbox.npy per input, split alongside (default: the "
                     "<stem>_bbox.npy beside each input, where there is one)")
    pre.add_argument("--no-box-labels", action="store_true",
                     help="do not pick up the _bbox.npy files beside the inputs")
    pre.add_argument("--max-val", "--max_val", type=float,
                     help="max_incr_per_pixel of the preprocessing")
    pre.add_argument("-k", "--kwarg", action="append", type=_kwarg, metavar="KEY=VALUE",
                     help="a preprocess kwarg (repeatable), e.g. -k split_polarity=False")
    pre.add_argument("-j", "--jobs", "-n", "--num-workers", type=int, default=1, dest="jobs",
                     help="parallel processes (default 1)")
    pre.add_argument("--compression", choices=("gzip", "blosc", "none"), default="gzip",
                     help="gzip (default, compatible), blosc (fast, needs hdf5plugin), none")
    pre.add_argument("--overwrite", action="store_true", help="rewrite existing outputs")
    pre.add_argument("--max-rows", type=int, default=None,
                     help="refuse a recording needing more rows than this in delta_t mode "
                          "(default 1048576: guards against time bases that loop or jump)")
    pre.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always show progress bars (default: only on a terminal)")
    pre.add_argument("--no-progress", dest="progress", action="store_false")
    pre.add_argument("--layout", choices=("tensors", "rvt"), default="tensors",
                     help="rvt: INPUT_DIR OUT_DIR, RVT's preprocessed dataset layout "
                     "(default: tensor files)")
    pre.add_argument("--dataset", choices=("gen1", "gen4"), default="gen1",
                     help="--layout rvt: the RVT dataset preset (default gen1)")
    pre.add_argument("--extraction", choices=("duration", "count"), default="duration",
                     help="--layout rvt: 50 ms windows (dt=50, default) or 50000 events (ne=50000)")
    pre.set_defaults(run=_precompute_dispatch)

    ren = commands.add_parser("render", help="write what a SequentialDataLoader feeds to an mp4 / PNGs",
                              description="Play recordings (.dat, .raw) or tensor files (.h5) side "
                              "by side as SequentialDataLoader.show() draws them (one grid per time "
                              "bin, file names, start-of-sequence marker, optional boxes) and write "
                              "the frames to an mp4 and/or PNG files: for machines without a display.")
    ren.add_argument("inputs", nargs="+", help=".h5/.hdf5 tensor files, .dat or .raw recordings")
    ren.add_argument("-o", "--output", help="output video (.mp4)")
    ren.add_argument("--png-dir", help="also (or only) write frame_NNNNNN.png files here")
    ren.add_argument("--preprocess", default="histo", help="preprocessing name (default histo)")
    ren.add_argument("--delta-t", type=int,
                     help="time bin in us (default 50000, shorter when a recording is shorter "
                     "than --num-tbins bins of 50 ms: then it is said)")
    ren.add_argument("--num-tbins", type=int, default=5, help="time bins per chunk (default 5)")
    ren.add_argument("--height-width", nargs=2, type=int, metavar=("H", "W"),
                     help="tensor size (default: the first file's)")
    ren.add_argument("--batch-size", type=int, help="files side by side (default min(4, files))")
    ren.add_argument("--label-map", help="label_map_dictionary.json: draw each file's _bbox.npy boxes")
    ren.add_argument("--classes", nargs="+", help="class names to draw (default: all)")
    ren.add_argument("--no-padding", action="store_true",
                     help="stop with the shortest slot (default: play every file to its end)")
    ren.add_argument("--fps", type=float, help="frames per second (default: real time)")
    ren.add_argument("--max-frames", type=int, help="stop after N frames")
    ren.add_argument("--num-workers", type=int, default=0, help="loader worker processes (default 0)")
    ren.add_argument("-k", "--kwarg", action="append", type=_kwarg, metavar="KEY=VALUE",
                     help="a preprocess kwarg (repeatable), e.g. -k max_incr_per_pixel=2.5")
    ren.set_defaults(run=cmd_render)
    syn = commands.add_parser("synth", help="write a synthetic labelled dataset (events + boxes)",
                              description="Simulate recordings of moving objects (car, pedestrian, "
                              "two wheeler) seen by an event camera and write them with their "
                              "<name>_bbox.npy boxes and label_map_dictionary.json in train/val/"
                              "test folders. Deterministic from --seed.")
    syn.add_argument("out_dir", help="output folder (created if missing)")
    syn.add_argument("--recordings", type=int, default=3, help="recordings (default 3)")
    syn.add_argument("-n", dest="recordings", type=int, action=_Deprecated, instead="--recordings",
                     help=argparse.SUPPRESS)
    syn.add_argument("--duration-s", type=float, default=2.0,
                     help="length of each recording in seconds (default 2)")
    syn.add_argument("--height-width", nargs=2, type=int, metavar=("H", "W"),
                     default=(360, 640), help="sensor size, e.g. 240 304 (Gen1), 360 640 "
                     "(default), 720 1280 (1 Mpx)")
    syn.add_argument("--size", dest="height_width", type=_size, action=_Deprecated,
                     instead="--height-width H W", help=argparse.SUPPRESS)
    syn.add_argument("--format", default="evt3",
                     help="evt3 (default), evt2, evt21, dat, or a RAW format + dat (evt3+dat)")
    syn.add_argument("--evt21-layout", choices=("little", "legacy"), default="little",
                     help="EVT 2.1 word layout (legacy: as IMX636 cameras write it)")
    syn.add_argument("--triggers", type=float, default=0.0, metavar="HZ",
                     help="add an external trigger square wave of HZ to the RAW files (channel 0)")
    syn.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    syn.add_argument("--label-rate-hz", type=float, default=20.0,
                     help="box sampling rate (default 20)")
    syn.add_argument("--splits", default="train=0.6,val=0.2,test=0.2",
                     help="split weights (default train=0.6,val=0.2,test=0.2)")
    syn.add_argument("--ego-motion", type=float, default=0.0, metavar="P",
                     help="probability that a recording has a panning camera (default 0)")
    syn.add_argument("--max-objects", type=int, help="objects in view at once (default 6)")
    syn.add_argument("--spawn-rate-hz", type=float,
                     help="objects entering per second (default 1.2)")
    syn.add_argument("--noise-rate-hz", type=float,
                     help="background activity per pixel per second (default 0.1)")
    syn.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always show the progress bar (default: only on a terminal)")
    syn.add_argument("--no-progress", dest="progress", action="store_false")
    syn.set_defaults(run=cmd_synth)
    ev = commands.add_parser("evaluate", help="COCO mAP of detections against ground truth "
                             "(the Prophesee toolbox's protocol)",
                             description="COCO metrics (faster-coco-eval or pycocotools) of "
                             "DET_DIR's box files against GT_DIR's, paired by name (NAME_bbox.npy or NAME.npy): the "
                             "box filter on both, one COCO image per ground-truth time, "
                             "detections within +-time-tol of it, category = class_id + 1.")
    ev.add_argument("gt_dir", help="folder of ground-truth box files")
    ev.add_argument("det_dir", help="folder of detection box files (with class_confidence)")
    ev.add_argument("--dataset", choices=("dsec", "etram", "gen1", "gen4"),
                    help="classes, image size and filter of a dataset: gen1 (car, pedestrian; "
                    "304x240; 30/10), gen4 (1Mpx, 7 classes; 1280x720; 60/20), etram (8 "
                    "classes; 1280x720; 60/20), dsec (8 classes; 640x480; no size filter); every "
                    "preset skips t <= 0.5 s")
    ev.add_argument("--classes", nargs="+", help="class names, by class_id (overrides --dataset)")
    ev.add_argument("--height-width", nargs=2, type=int, metavar=("H", "W"),
                    help="image size of the boxes (overrides --dataset)")
    ev.add_argument("--min-box-diag", type=float, help="filter: minimum diagonal (pixels)")
    ev.add_argument("--min-box-side", type=float, help="filter: minimum width and height")
    ev.add_argument("--skip-ts", type=int, help="filter: evaluate boxes with t > this (default "
                    "500000 us)")
    ev.add_argument("--downsample-by-2", action="store_true",
                    help="boxes are in 2x-downsampled coordinates: halve the filter sizes "
                    "(and the default image size)")
    ev.add_argument("--no-filter", action="store_true", help="no box filter at all")
    ev.add_argument("--time-tol", type=int, default=50000,
                    help="detections within this many us of a ground-truth time (default 50000)")
    ev.add_argument("--backend", choices=("pycocotools", "faster_coco_eval"),
                    default="faster_coco_eval", help="COCO library (same numbers; default "
                    "faster_coco_eval)")
    ev.set_defaults(run=cmd_evaluate)
    demo = commands.add_parser("demo", help="simulate a labelled dataset, precompute it, run the "
                               "tutorial's loader, render it and train a small detector")
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    demo.add_argument("--steps", type=int, help="training steps (default: 300)")
    demo.set_defaults(run=cmd_demo)
    return parser


#: exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it)
INTERRUPTED_EXIT = 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:             # Ctrl-C: a line, not a traceback
        print("evstream: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
