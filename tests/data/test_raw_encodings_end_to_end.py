"""Both loaders on RAW files as cameras write them: EVT 2.1 in both layouts and recordings with
external triggers, made by ``evstream synth``. The same simulated recording written as EVT 2.0
(same events: same time origin) gives the reference batches."""

import numpy as np
import pytest
import torch

from evstream.cli import main
from evstream.data.cd_processor_dataset import CDProcessorDataLoader
from evstream.data.sequential_dataset import SequentialDataLoader

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.filterwarnings("ignore:This DataLoader will create")]

VARIANTS = {"evt2": ["--format", "evt2"],
            "evt21": ["--format", "evt21"],
            "evt21_legacy": ["--format", "evt21", "--evt21-layout", "legacy"],
            "evt2_triggers": ["--format", "evt2", "--triggers", "500"],
            "evt3": ["--format", "evt3"],
            "evt3_triggers": ["--format", "evt3", "--triggers", "500"]}
DT, T = 20_000, 3


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_encodings")
    out = {}
    for name, flags in VARIANTS.items():
        assert main(["synth", str(root / name), "-n", "2", "--duration-s", "0.3", "--size",
                     "160x120", "--splits", "train=1", "--no-progress", *flags]) == 0
        out[name] = sorted(str(p) for p in (root / name / "train").glob("*.raw"))
    return out


def sequential_batches(files):
    loader = SequentialDataLoader(files, DT, "histo", [T, 2, 120, 160], batch_size=2,
                                  num_workers=0)
    return [b["inputs"].clone() for b in loader]


def stream_batches(files):
    loader = CDProcessorDataLoader(files, "delta_t", DT, 0, None, "histo", T, 2, num_workers=0,
                                   height=120, width=160)
    return [b["inputs"].clone() for b in loader]


@pytest.mark.parametrize("load", [sequential_batches, stream_batches])
@pytest.mark.parametrize("variant", ["evt21", "evt21_legacy", "evt2_triggers"])
def test_same_batches_as_evt2(datasets, load, variant):
    want = load(datasets["evt2"])
    got = load(datasets[variant])
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    assert sum(float(b.sum()) for b in want) > 0


@pytest.mark.parametrize("load", [sequential_batches, stream_batches])
def test_evt3_with_triggers_same_batches_as_without(datasets, load):
    want = load(datasets["evt3"])
    got = load(datasets["evt3_triggers"])
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_synth_triggers_are_in_the_files(datasets):
    from evstream.io import RawReader
    # 0.3 s at 500 Hz: an edge every 1000 µs, rising on even multiples; from the recording's
    # first event time on (EVT 2.0: 0; EVT 3.0: 4096 µs, so that shifted times start at 0)
    for start, paths in ((0, datasets["evt2_triggers"]), (4096, datasets["evt3_triggers"])):
        edges = np.arange(300) * 1000
        edges = edges[edges >= start]
        for path in paths:
            reader = RawReader(path, do_time_shifting=False)
            reader.read_all()
            tr = reader.get_ext_trigger_events()
            np.testing.assert_array_equal(tr["t"], edges)
            np.testing.assert_array_equal(tr["p"], edges % 2000 == 0)
