"""Workers kept from one iteration to the next (``persistent_workers=True``,
evstream.data.stream_crew): the same batches as new workers every epoch, from the same
processes; seed, epoch and resume positions reach them; an early stop, the "data" padding mode
and a failed iteration leave no worker inside an iteration; ``close`` stops them."""

from __future__ import annotations

import os
import time

import pytest
import torch

from evstream.data.cd_processor_dataset import CDProcessorDataLoader
from evstream.data.stream import StreamDataLoader, StreamDataset, stream_output
from evstream.data.stream_dataset import read_order, write_order

from worker_processes import alive, wait_dead
from seqloader_data import synthetic_events, write_raw

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.filterwarnings("ignore:This DataLoader will create")]

FILL = torch.tensor([-1, -1, -1, -1, -1])


class SeededStreamer:
    """Items ``[stream, i, seed, epoch, pid]``: what a worker was told, and who computed it.
    Stream 1 fails in epoch ``fail_epoch``."""

    def __init__(self, lengths, fail_epoch=None):
        self.lengths, self.fail_epoch = lengths, fail_epoch
        self.seed = self.epoch = None

    def set_epoch(self, seed, epoch):
        self.seed, self.epoch = seed, epoch

    def __call__(self, stream):
        if stream == 1 and self.epoch == self.fail_epoch:
            raise ValueError("boom in epoch %d" % self.epoch)
        for i in range(self.lengths[stream]):
            yield torch.tensor([stream, i, self.seed, self.epoch, os.getpid()])


def stack(items):
    return torch.stack(items)


def make_loader(workers, persistent, lengths=(6, 2, 9, 4, 4, 7), padding_mode="zeros",
                fail_epoch=None, seed=5):
    dataset = StreamDataset(list(range(len(lengths))), SeededStreamer(list(lengths), fail_epoch),
                            3, padding_mode, FILL, seed=seed, shuffle=True)
    return StreamDataLoader(dataset, workers, stack, persistent_workers=persistent,
                            multiprocessing_context="fork")


def values(batches):
    return [b[:, :4] for b in batches]


def pids(batches):
    return {int(p) for b in batches for p in b[:, 4] if p >= 0}


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_kept_workers_give_every_epoch_the_batches_of_new_workers_from_the_same_processes():
    kept, fresh = make_loader(2, True), make_loader(2, False)
    seen_kept, seen_fresh = [], []
    for epoch in (0, 1, 2, 2):
        kept.set_epoch(epoch)
        fresh.set_epoch(epoch)
        a, b = [x.clone() for x in kept], [x.clone() for x in fresh]
        assert same(values(a), values(b)) and len(a) >= 9      # the longest stream: 9
        assert {int(e) for x in a for e in x[:, 3] if e >= 0} == {epoch}   # the order's epoch
        seen_kept.append(pids(a))
        seen_fresh.append(pids(b))
    assert len(seen_kept[0]) == 2 and all(p == seen_kept[0] for p in seen_kept)
    assert len(set.union(*seen_fresh)) == 2 * len(seen_fresh)     # new processes every epoch
    assert wait_dead(set.union(*seen_fresh))
    kept.close()
    assert wait_dead(seen_kept[0])


def test_an_early_stop_then_the_next_epoch_and_a_resume():
    reference = [x.clone() for x in make_loader(0, False)]
    loader = make_loader(2, True)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    first = [x.clone() for x in loader]                 # a whole epoch after a break
    assert same(values(first), values(reference))
    it = iter(loader)
    head = [next(it).clone() for _ in range(4)]
    state = loader.state_dict()
    del it
    resumed = make_loader(2, True, seed=0)               # seed and epoch come from the state
    resumed.load_state_dict(state)
    tail = [x.clone() for x in resumed]
    assert same(values(head + tail), values(reference))
    again = [x.clone() for x in resumed]                 # the same workers, a new pass
    assert same(values(again), values(reference)) and pids(again) == pids(tail)
    loader.close()
    resumed.close()


def test_data_padding_mode_workers_that_never_end_are_stopped_between_epochs():
    reference = [x.clone() for x in make_loader(0, False, padding_mode="data")]
    loader = make_loader(2, True, padding_mode="data")
    runs = [[x.clone() for x in loader] for _ in range(3)]
    assert all(same(values(r), values(reference)) for r in runs)
    assert pids(runs[0]) == pids(runs[2]) and len(pids(runs[0])) == 2
    loader.close()


def test_a_failed_iteration_stops_the_kept_workers_and_the_next_starts_new_ones():
    loader = make_loader(2, True, fail_epoch=1)
    first = pids([x.clone() for x in loader])
    loader.set_epoch(1)
    with pytest.raises(Exception, match="boom in epoch 1"):
        list(loader)
    assert loader._idle_crew is None and wait_dead(first)
    loader.set_epoch(2)
    after = [x.clone() for x in loader]
    reference = make_loader(0, False)
    reference.set_epoch(2)
    assert same(values(after), values(list(reference)))
    assert pids(after).isdisjoint(first)
    loader.close()


def test_the_order_buffer_round_trip_and_overflow():
    buffer = torch.zeros(256, dtype=torch.uint8)
    positions = {0: (1, 2, 3, False, False), 3: (0, 0, 0, True, True)}
    assert write_order(buffer, 7, 2, positions)
    assert read_order(buffer) == (7, 2, positions)
    assert not write_order(buffer, 7, 3, {k: (k,) * 5 for k in range(100)})
    assert read_order(buffer) == (7, 2, positions)        # a refused order writes nothing


def random_flip(plane):
    """A random horizontal flip (seeded per chunk and epoch by the loader)."""
    return plane.flip(-1) if float(torch.rand(1)) < 0.5 else plane


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kept")
    return [write_raw(folder / f"r{k}.raw", synthetic_events(d, 40, 48, 64, seed=k), 48, 64)
            for k, d in enumerate((600_000, 300_000, 500_000))]


def test_cd_processor_loader_keeps_its_workers_and_pool_with_shuffled_seeded_epochs(recordings):
    def loader(workers, persistent):
        return CDProcessorDataLoader(recordings, "delta_t", 20_000, 0, None, "histo", 3, 2,
                                     num_workers=workers, height=48, width=64, shuffle=True,
                                     seed=3, transforms=random_flip,
                                     persistent_workers=persistent,
                                     multiprocessing_context="fork" if workers else None)

    kept = loader(2, True)
    epochs = []
    for epoch in (0, 1):
        reference = loader(0, False)
        reference.set_epoch(epoch)
        kept.set_epoch(epoch)
        want = [b["inputs"].clone() for b in reference]
        got = [b["inputs"].clone() for b in kept]
        assert same(got, want) and len(want) > 5
        epochs.append(want)
    assert not same(*epochs)                  # the epoch changes the shuffle and the flips
    crew = kept._idle_crew
    assert crew is not None and crew.pool is not None
    kept.close()
    assert kept._idle_crew is None


def streamer_with_output(stream):
    for i in range(3):
        out = stream_output((2, 2))
        out.fill_(stream * 10 + i)
        yield out


def test_two_iterations_at_once_each_get_workers():
    dataset = StreamDataset([0, 1, 2], streamer_with_output, 2, "zeros", torch.full((2, 2), -1.0))
    loader = StreamDataLoader(dataset, 2, lambda items: torch.stack(items).clone(),
                              persistent_workers=True, multiprocessing_context="fork")
    a, b = iter(loader), iter(loader)
    got_a, got_b = [], []
    for x, y in zip(a, b):
        got_a.append(x)
        got_b.append(y)
    assert same(got_a, got_b) and len(got_a) == 6
    assert [float(x[0, 0, 0]) for x in got_a] == [0, 1, 2, 20, 21, 22]
    assert loader._idle_crew is not None                 # one of the two crews is kept
    loader.close()


def test_a_kept_worker_that_dies_between_epochs_is_replaced_without_an_error():
    """While kept workers wait for the next iteration they are out of torch's SIGCHLD check (a
    death would be raised in whatever the main thread runs); the next iteration sees the dead
    worker and starts new ones."""
    import signal
    loader = make_loader(2, True)
    first = [x.clone() for x in loader]
    victim = sorted(pids(first))[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_dead({victim})
    time.sleep(0.2)                                      # a SIGCHLD handler would fire here
    second = [x.clone() for x in loader]
    assert same(values(second), values(first)) and pids(second).isdisjoint(pids(first))
    loader.close()


def test_deleting_the_loader_stops_its_kept_workers():
    """At once: each wait's watchdog used to keep torch's iterator in a reference cycle, so the
    workers waited for the cycle collector, whose shutdown then took 5 s per worker."""
    loader = make_loader(2, True)
    kept = pids([x.clone() for x in loader])
    del loader
    assert wait_dead(kept, limit_s=3.0)


def test_a_kept_worker_frozen_between_epochs_is_replaced_after_the_timeout():
    import signal
    dataset = StreamDataset(list(range(6)), SeededStreamer([6, 2, 9, 4, 4, 7]), 3, "zeros",
                            FILL, seed=5, shuffle=True)
    loader = StreamDataLoader(dataset, 2, stack, persistent_workers=True, timeout=2,
                              multiprocessing_context="fork")
    first = [x.clone() for x in loader]
    frozen = sorted(pids(first))[0]
    os.kill(frozen, signal.SIGSTOP)
    try:
        start = time.monotonic()
        second = [x.clone() for x in loader]
        assert time.monotonic() - start < 20
    finally:
        if alive(frozen):
            os.kill(frozen, signal.SIGKILL)
    assert same(values(second), values(first)) and frozen not in pids(second)
    assert wait_dead({frozen})
    loader.close()


def test_an_order_too_big_for_the_kept_buffer_gets_a_new_crew(monkeypatch):
    import evstream.data.stream_crew as stream_crew
    monkeypatch.setattr(stream_crew, "MIN_ORDER_BYTES", 0)      # the first buffer: ~1 KiB
    lengths = [3 + k % 5 for k in range(80)]

    def loader(workers, persistent):
        dataset = StreamDataset(list(range(80)), SeededStreamer(lengths), 80, "zeros", FILL,
                                seed=5, shuffle=True)
        return StreamDataLoader(dataset, workers, stack, persistent_workers=persistent,
                                multiprocessing_context="fork")

    reference = [x.clone() for x in loader(0, False)]
    kept = loader(2, True)
    first = [x.clone() for x in kept]                 # empty positions: a small order buffer
    small = kept._idle_crew.order.numel()
    it = iter(kept)
    head = [next(it).clone() for _ in range(2)]
    state = kept.state_dict()                           # 80 slot positions
    del it
    kept.load_state_dict(state)
    tail = [x.clone() for x in kept]
    assert same(values(first), values(reference)) and same(values(head + tail), values(reference))
    assert kept._idle_crew.order.numel() > small
    assert pids(tail).isdisjoint(pids(first))           # the resume needed a new crew
    kept.close()


def test_spawned_kept_workers_get_the_order_through_their_pickled_dataset():
    dataset = StreamDataset(list(range(6)), SeededStreamer([6, 2, 9, 4, 4, 7]), 3, "zeros",
                            FILL, seed=5, shuffle=True)
    loader = StreamDataLoader(dataset, 2, stack, persistent_workers=True,
                              multiprocessing_context="spawn")
    seen = []
    for epoch in (0, 1):
        reference = make_loader(0, False)
        reference.set_epoch(epoch)
        loader.set_epoch(epoch)
        got = [x.clone() for x in loader]
        assert same(values(got), values(list(reference)))
        seen.append(pids(got))
    assert seen[0] == seen[1] and len(seen[0]) == 2
    loader.close()
