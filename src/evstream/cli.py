"""The ``evstream`` command line. Parsing, progress and printing only: the work is done by the
library."""

from __future__ import annotations

import argparse
import os
import sys

from .errors import EvstreamError
from .io.summary import summarize


def _format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
              for r in rows]
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    """Describe each recording; exit 1 if any could not be read (the others are still shown)."""
    header = ["file", "format", "geometry", "events", "first t (us)", "last t (us)",
              "duration (s)", "mean Mev/s", "peak Mev/s (10 ms)", "triggers"]
    rows, failures = [], []
    kwargs = {}
    if args.height_width:
        kwargs["height"], kwargs["width"] = args.height_width
    for path in args.files:
        try:
            s = summarize(path, **({} if path.lower().endswith((".dat", ".npy")) else kwargs))
        except (EvstreamError, OSError) as exc:
            failures.append(f"{path}: {exc.problem if isinstance(exc, EvstreamError) else exc}")
            continue
        rows.append([os.path.basename(path), s.format,
                     "?" if s.width is None else f"{s.width}x{s.height}",
                     f"{s.event_count:,}", "-" if s.first_t is None else f"{s.first_t:,}",
                     "-" if s.last_t is None else f"{s.last_t:,}", f"{s.duration_us * 1e-6:.6f}",
                     f"{s.mean_rate_ev_s * 1e-6:.2f}", f"{s.peak_rate_ev_s * 1e-6:.2f}",
                     "-" if s.trigger_count is None else str(s.trigger_count)])
    if rows:
        print(_format_table(header, rows))
        print("RAW times are time-shifted (first TIME_HIGH as origin, as OpenEB does).")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evstream", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="format, geometry, counts, times and rates of recordings")
    info.add_argument("files", nargs="+", help="RAW, DAT or NPY files")
    info.add_argument("--height-width", nargs=2, type=int, metavar=("H", "W"),
                      help="sensor size for RAW files whose header has none")
    info.set_defaults(run=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
