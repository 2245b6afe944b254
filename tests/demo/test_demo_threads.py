"""The demo's figures do not depend on the thread count the process starts with (issue 13,
item 4): training and evaluation run on DemoConfig.threads threads, restored afterwards. Without
this, torch's sums over 1 and 2 threads differ in the last digits of the loss. Progress bars
stay out of a log (stderr not a terminal) and count whole units."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from evstream.data import box_processing as box_api
from evstream.demo.pipeline import WANTED_KEYS, DemoConfig, _advance, build_dataset, \
    train_and_evaluate

CONFIG = replace(DemoConfig(), recordings=4, val_recordings=1, duration_s=1.0, steps=6)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return build_dataset(str(tmp_path_factory.mktemp("demo")), CONFIG)


def test_same_figures_for_any_starting_thread_count(dataset, capfd):
    lookup = box_api.create_class_lookup(dataset["label_map"][0], WANTED_KEYS)
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            result = train_and_evaluate(dataset["train"], dataset["val"], lookup, CONFIG,
                                        say=lambda *a: None)
            assert torch.get_num_threads() == threads          # given back
            runs.append((result["losses"], result["metrics"], result["baseline"]))
    finally:
        torch.set_num_threads(before)
    assert len(runs[0][0]) == CONFIG.steps
    assert identical(runs[0], runs[1])                          # exact, not approximate
    err = capfd.readouterr().err
    assert "it/s" not in err and "s/it" not in err and "%|" not in err


def identical(a, b) -> bool:
    """Exact equality through dicts, lists, tuples and numpy arrays (predictions are arrays)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(identical, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


class Bar:
    def __init__(self):
        self.n = 0

    def update(self, k):
        assert isinstance(k, int)
        self.n += k


def test_progress_counts_whole_units():
    bar = Bar()
    report = _advance(bar, "us", 1000)
    for us in (100_000, 100_000, 33_333, 66_667, 1):           # 300.001 ms
        report("advance", 0, {"us": us})
    assert bar.n == 300
