"""Run every benchmark and print its tables (markdown). Times are never asserted.

Usage: ``python benchmarks/run.py [io|preprocessing ...]`` (all when no name is given).
"""

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_fused  # noqa: E402
import bench_hdf5  # noqa: E402
import bench_io  # noqa: E402
import bench_loader  # noqa: E402
import bench_metrics  # noqa: E402
import bench_peers  # noqa: E402
import bench_preprocessing  # noqa: E402
import bench_revision  # noqa: E402
import bench_rvt  # noqa: E402
import bench_stream  # noqa: E402
import bench_writer  # noqa: E402

BENCHMARKS = {"io": bench_io.main, "preprocessing": bench_preprocessing.main,
              "hdf5": bench_hdf5.main, "loader": bench_loader.main, "stream": bench_stream.main,
              "metrics": bench_metrics.main, "rvt": bench_rvt.main,
              "peers": bench_peers.main, "fused": bench_fused.main, "writer": bench_writer.main,
              "revision": bench_revision.main}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


if __name__ == "__main__":
    print(f"Machine: {machine()}")
    for name in sys.argv[1:] or BENCHMARKS:
        BENCHMARKS[name]()
