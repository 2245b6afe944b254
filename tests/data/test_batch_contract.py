"""The batch contract both loaders share (issue 14, part C): one ``collate_fn``, one padding-item
constructor, one device-move rule, one state header, ``show`` / ``save_video`` on both, the
shared-memory allocator, the stream loader's output context, and no import cycle in
``evstream.data``."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import evstream.data.cd_processor_dataset as cd_module
import evstream.data.sequential_dataset as seq_module
import evstream.data.sequential_dataset_common as common
from evstream.data._loader import as_device, check_state, move_batch
from evstream.data.cd_processor_dataset import CDProcessorDataLoader, CDProcessorDatasetIterator
from evstream.data.scheduler import FileMetadata
from evstream.data.sequential_dataset import SequentialDataLoader, SequentialDataset
from evstream.data.stream import StreamDataLoader, StreamDataset, stream_output
from evstream.data.stream_dataset import WorkerSpec
from evstream.data.stream_ring import Ring, SlotOutputs, computing_item, current_outputs
from evstream.errors import ArgumentError
from evstream.io import DatWriter, EventCD
from evstream.utils.arrays import as_numpy, close_if_closable
from evstream.utils.shm import shared_empty

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.filterwarnings("ignore:This DataLoader will create")]

SRC = Path(__file__).resolve().parents[2] / "src"
HEIGHT, WIDTH, T, DELTA_T = 24, 32, 3, 10_000


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Two 32x24 DAT recordings (95 ms and 61 ms), events on bin boundaries included."""
    folder = tmp_path_factory.mktemp("contract")
    rng = np.random.default_rng(3)
    paths = []
    for i, duration in enumerate((95_000, 61_000)):
        n = 1500
        ev = np.zeros(n + 3, dtype=EventCD)
        ev["t"] = np.sort(np.concatenate([rng.integers(0, duration, n), [10_000, 30_000, 30_001]]))
        ev["x"] = rng.integers(0, WIDTH, len(ev))
        ev["y"] = rng.integers(0, HEIGHT, len(ev))
        ev["p"] = rng.integers(0, 2, len(ev))
        path = folder / f"rec{i}.dat"
        with DatWriter(path, HEIGHT, WIDTH) as w:
            w.write(ev)
        paths.append(str(path))
    return paths


def _item(values, keep, label, meta, start=0):
    tensor = torch.tensor(values, dtype=torch.float32).reshape(T, 1, 1, 2)
    return (tensor, [label] * T, keep, np.array([True, False, True]), (meta, start, T * DELTA_T))


def _assert_same_batch(a, b):
    assert set(a) == set(b) == set(common.BATCH_KEYS)
    assert a["inputs"].dtype == b["inputs"].dtype and torch.equal(a["inputs"], b["inputs"])
    assert torch.equal(a["mask_keep_memory"], b["mask_keep_memory"])
    assert torch.equal(a["frame_is_labeled"], b["frame_is_labeled"])
    assert a["video_infos"] == b["video_infos"]
    assert len(a["labels"]) == len(b["labels"])
    for la, lb in zip(a["labels"], b["labels"]):
        assert [torch.as_tensor(x).tolist() for x in la] == [torch.as_tensor(x).tolist() for x in lb]


def test_one_collate_fn_everywhere():
    assert seq_module.collate_fn is common.collate_fn is cd_module.collate_fn
    assert seq_module.load_labels_stub is common.load_labels_stub
    assert seq_module.load_labels_stub.__module__ == "evstream.data.sequential_dataset"  # help()


def test_collate_fn_hand_computed():
    meta = FileMetadata("a.dat", 100, DELTA_T, T)
    items = [_item(range(6), 0.0, "x", meta), _item(range(10, 16), 1.0, "y", meta, 30_000)]
    batch = common.collate_fn(items)
    assert batch["inputs"].shape == (T, 2, 1, 1, 2) and batch["inputs"].dtype == torch.float32
    assert batch["inputs"][:, 0].reshape(-1).tolist() == [0, 1, 2, 3, 4, 5]
    assert batch["inputs"][:, 1].reshape(-1).tolist() == [10, 11, 12, 13, 14, 15]
    assert batch["labels"] == [["x", "y"]] * T
    assert batch["mask_keep_memory"].shape == (2, 1, 1, 1)
    assert batch["mask_keep_memory"].view(-1).tolist() == [0.0, 1.0]
    assert batch["frame_is_labeled"].tolist() == [[True, True], [False, False], [True, True]]
    assert batch["video_infos"] == ((meta, 0, 30_000), (meta, 30_000, 30_000))
    # a copy: the items' tensors may be reused once collate_fn returns
    items[0][0].zero_()
    assert batch["inputs"][:, 0].reshape(-1).tolist() == [0, 1, 2, 3, 4, 5]

    # the numpy path and torch.stack (taken for an item that needs a gradient) agree
    grad = [(items[0][0].clone().requires_grad_(),) + items[0][1:], items[1]]
    slow = common.collate_fn(grad)
    assert torch.equal(slow["inputs"].detach(), common.collate_fn([grad[0][:1] + items[0][1:],
                                                                  items[1]])["inputs"])
    # a dtype numpy has not (bfloat16) is stacked by torch, dtype kept
    bf = [(it[0].to(torch.bfloat16),) + it[1:] for it in items]
    assert common.collate_fn(bf)["inputs"].dtype == torch.bfloat16
    # uint8 items keep their dtype
    u8 = [(it[0].to(torch.uint8),) + it[1:] for it in items]
    out = common.collate_fn(u8)["inputs"]
    assert out.dtype == torch.uint8 and out[:, 1].reshape(-1).tolist() == list(range(10, 16))


def test_collate_passes_stacked_inputs_through():
    meta = FileMetadata("a.dat", 100, DELTA_T, T)
    stacked = torch.arange(2 * T * 2, dtype=torch.float32).reshape(T, 2, 1, 1, 2)
    items = common.StackedItems([(stacked[:, i], [None] * T, 1.0, np.zeros(T, bool),
                                  (meta, 0, 0)) for i in range(2)])
    items.inputs = stacked
    assert common.collate_fn(items)["inputs"] is stacked
    plain = common.collate_fn(list(items))["inputs"]
    assert plain is not stacked and torch.equal(plain, stacked)


def test_padding_items_of_both_loaders():
    seq = common.padding_item((T, 2, 4, 5), torch.float64, common.SEQUENTIAL_PADDING)
    stream = common.padding_item((T, 2, 4, 5), torch.float32, common.STREAM_PADDING)
    for item, dtype in ((seq, torch.float64), (stream, torch.float32)):
        tensor, labels, keep, mask, (meta, start, duration) = item
        assert tensor.shape == (T, 2, 4, 5) and tensor.dtype == dtype and not tensor.any()
        assert mask.dtype == bool and mask.tolist() == [False] * T
        assert meta.is_padding() and (start, duration) == (0, 0) and len(labels) == T
    assert seq[2] == 1.0 and all(math.isnan(x) for x in seq[1])
    assert stream[2] == 0.0 and all(isinstance(x, torch.Tensor) and x.numel() == 0
                                    for x in stream[1])
    meta = FileMetadata(None, None, None, None, padding=True)
    assert common.padding_item((T, 1, 1, 1), torch.float32, common.STREAM_PADDING,
                               meta)[4][0] is meta


def _stream_loader(files, **kw):
    return CDProcessorDataLoader(files, "delta_t", DELTA_T, None, None, "histo", T, 2,
                                 num_workers=0, **kw)


def _seq_loader(files, **kw):
    return SequentialDataLoader(files, DELTA_T, "histo", [T, 2, HEIGHT, WIDTH], batch_size=2,
                                num_workers=0, **kw)


def test_both_loaders_items_give_identical_batches(recordings):
    """The items of one recording read by SequentialDataset and by CDProcessorDatasetIterator
    (same windows, same kernel) collate into the same batches."""
    dataset = SequentialDataset(recordings[:1], DELTA_T, "histo", [T, 2, HEIGHT, WIDTH],
                                batch_size=1)
    seq_items = [dataset[n] for n in range(len(dataset))]
    stream_items = list(CDProcessorDatasetIterator(recordings[0], HEIGHT, WIDTH, None, "delta_t",
                                                   None, DELTA_T, T, "histo"))
    # 95 ms in chunks of 30 ms: the map-style schedule keeps whole chunks (3), the stream one
    # also returns the last, short one zero-padded (docs/compatibility.md)
    assert len(seq_items) == 3 and len(stream_items) == 4
    for a, b in zip(seq_items, stream_items):
        ba, bb = common.collate_fn([a, a]), common.collate_fn([b, b])
        assert torch.equal(ba["inputs"], bb["inputs"]) and ba["inputs"].any()
        assert torch.equal(ba["mask_keep_memory"], bb["mask_keep_memory"])
        assert torch.equal(ba["frame_is_labeled"], bb["frame_is_labeled"])
        assert [(i[1], i[2]) for i in ba["video_infos"]] == [(i[1], i[2]) for i in bb["video_infos"]]


@pytest.mark.parametrize("make", [_seq_loader, _stream_loader], ids=["sequential", "stream"])
def test_device_moves_one_rule(recordings, make):
    loader = make(recordings)
    assert loader.to("cpu") is loader and loader.device == torch.device("cpu")
    assert loader.to(torch.device("cpu")).device == torch.device("cpu")
    assert loader.cpu().device.type == "cpu"
    for bad in ("not-a-device", 1.5, None, True):
        with pytest.raises(ArgumentError):
            loader.to(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ArgumentError):
            loader.cuda()
    # "meta" stands for an accelerator: inputs and mask_keep_memory move, the rest stays
    batch = next(iter(loader.to("meta")))
    assert batch["inputs"].device.type == "meta" and batch["inputs"].dtype == torch.float32
    assert batch["mask_keep_memory"].device.type == "meta"
    assert batch["frame_is_labeled"].device.type == "cpu"
    assert all(label.device.type == "cpu" for row in batch["labels"] for label in row)


def test_move_batch_rule():
    meta = torch.device("meta")
    batch = {"inputs": torch.ones(2), "labels": [[torch.ones(1)]], "frame_is_labeled":
             torch.ones(1, dtype=torch.bool), "video_infos": (torch.ones(1),),
             "extra": [torch.zeros(1), (torch.zeros(1), "text")]}
    moved = move_batch(batch, meta)
    assert moved["inputs"].is_meta and moved["extra"][0].is_meta and moved["extra"][1][0].is_meta
    assert moved["extra"][1][1] == "text"
    assert moved["labels"] is batch["labels"] and moved["video_infos"] is batch["video_infos"]
    assert moved["frame_is_labeled"] is batch["frame_is_labeled"]
    assert move_batch(batch, torch.device("cpu")) is batch        # nothing to do on the CPU
    assert move_batch(torch.ones(1), meta).is_meta                 # any batch, not only dicts
    assert as_device("cpu") == torch.device("cpu") and as_device(meta) is meta
    assert as_device("cuda:1") == torch.device("cuda", 1)        # no CUDA needed to name one


def test_state_header_and_check(recordings):
    seq, stream = _seq_loader(recordings), _stream_loader(recordings)
    header = ["kind", "version", "epoch", "seed", "rank", "world_size", "batch_size",
              "num_batches"]
    s_seq, s_stream = seq.state_dict(), stream.state_dict()
    assert list(s_seq)[:8] == header and list(s_stream)[:8] == header
    assert s_seq["kind"] == "SequentialDataLoader" and s_stream["kind"] == "StreamDataLoader"
    with pytest.raises(ArgumentError, match="not a StreamDataLoader state"):
        stream.load_state_dict(s_seq)
    with pytest.raises(ArgumentError, match="not a SequentialDataLoader state"):
        seq.load_state_dict(s_stream)
    with pytest.raises(ArgumentError, match="rank 0 of 2"):
        check_state({**s_seq, "world_size": 2}, "SequentialDataLoader", 0, 1)
    with pytest.raises(ArgumentError, match="batches of 3"):
        check_state({**s_seq, "batch_size": 3}, "SequentialDataLoader", 0, 1, 2)
    with pytest.raises(ArgumentError, match="without"):
        check_state({"kind": "SequentialDataLoader"}, "SequentialDataLoader", 0, 1)
    check_state(s_seq, "SequentialDataLoader", 0, 1, 2, len(seq))


def test_set_epoch_through_the_base(recordings):
    for loader in (_seq_loader(recordings, shuffle_files=True), _stream_loader(recordings)):
        loader.set_epoch(3)
        assert loader.epoch == loader.dataset.epoch == 3 == loader.state_dict()["epoch"]
        with pytest.raises(ArgumentError):
            loader.set_epoch(-1)


def test_save_video_on_a_cd_processor_loader(recordings, tmp_path):
    loader = _stream_loader(recordings)
    frames = list(loader.show())
    n = loader.save_video(None, png_dir=tmp_path / "png")
    assert n == len(frames) == len(loader_batches := list(loader)) * T
    assert loader_batches and frames[0].shape == (HEIGHT, 2 * WIDTH, 3)
    written = sorted((tmp_path / "png").glob("frame_*.png"))
    assert [p.name for p in written] == [f"frame_{i:06d}.png" for i in range(n)]
    for path, frame in zip(written, frames):
        assert np.array_equal(cv2.imread(str(path))[..., ::-1], frame)
    assert loader._bin_us() == DELTA_T and loader.get_vis_func() is loader.preprocess_dict["viz"]


def test_shared_empty_and_its_fallback(monkeypatch):
    t = shared_empty((2, 3), torch.int16)
    assert t.shape == (2, 3) and t.dtype == torch.int16 and t.is_shared() and t.is_contiguous()
    assert shared_empty((0, 4)).shape == (0, 4)

    def gone(*a, **k):
        raise AttributeError("no such private API")

    monkeypatch.setattr(torch.UntypedStorage, "_new_shared", gone, raising=False)
    t = shared_empty((5,), torch.float64)
    assert t.shape == (5,) and t.dtype == torch.float64 and t.is_shared()


#: what torch 2.13 raised when /dev/shm (a 40 MiB tmpfs) was full, seen by hand
TORCH_SHM_FULL = ("unable to allocate shared memory(shm) for file </torch_25646_2978314420_2>: "
                  "No space left on device (28)")


def test_full_shared_memory_is_an_output_write_error_naming_the_folder(monkeypatch):
    """Full shared memory used to surface as torch's RuntimeError (after a second, failing try
    through the public fallback); it is an OutputWriteError naming /dev/shm, the size asked
    for and what to do."""
    from evstream.errors import OutputWriteError

    def full(*args, **kwargs):
        raise RuntimeError(TORCH_SHM_FULL)

    monkeypatch.setattr(torch.UntypedStorage, "_new_shared", full)
    monkeypatch.setattr(torch.Tensor, "share_memory_", full)
    with pytest.raises(OutputWriteError, match=r"/dev/shm: shared memory full: cannot allocate "
                                               r"21\.1 MiB .*--shm-size") as info:
        shared_empty((3, 4, 2, 360, 640))
    assert info.value.path == "/dev/shm" and isinstance(info.value, OSError)

    def refused(*args, **kwargs):
        raise RuntimeError("some other allocator failure")

    monkeypatch.undo()
    monkeypatch.setattr(torch.UntypedStorage, "_new_shared", refused)
    t = shared_empty((4,))                       # any other refusal: the public fallback
    assert t.is_shared() and t.shape == (4,)


def test_stream_output_context():
    """stream_output draws from the ring only while a slot computes an item."""
    plain = stream_output((2, 3))
    assert plain.shape == (2, 3) and not plain.is_shared() and current_outputs() is None
    ring = Ring(0, torch.zeros(2, dtype=torch.int64), depth=2)
    outputs = SlotOutputs(ring, slot=1)
    with computing_item(outputs):
        a, b = stream_output((2, 3)), stream_output((4,), torch.uint8)
        assert current_outputs() is outputs and a.is_shared() and b.dtype == torch.uint8
        assert a.data_ptr() != b.data_ptr()
        with computing_item(None):                         # nested: no ring inside
            assert not stream_output((2, 3)).is_shared()
        assert current_outputs() is outputs
    assert current_outputs() is None and not stream_output((2, 3)).is_shared()
    with computing_item(outputs):                          # the next item: same buffer again
        assert stream_output((2, 3)).data_ptr() == a.data_ptr()
    assert len(ring.take_new()) == 4                       # 2 outputs x depth 2


def _streamer(stream):
    for i in range(int(stream)):
        out = stream_output((1,))
        out[:] = float(10 * int(stream) + i)
        yield out


@pytest.mark.parametrize("num_workers", [0, 1])
def test_stream_loader_leaves_its_dataset_alone(num_workers):
    """The loader hands its configuration to the workers in a WorkerSpec; the dataset keeps its
    attributes, also across a resume."""
    dataset = StreamDataset(["3", "2"], _streamer, 2, "zeros", torch.zeros(1))
    before = dict(vars(dataset))
    loader = StreamDataLoader(dataset, num_workers, torch.stack)
    batches = [b.view(-1).tolist() for b in loader]
    assert batches == [[30.0, 20.0], [31.0, 21.0], [32.0, 0.0]]
    state = None
    for i, _ in enumerate(loader):
        if i == 0:
            state = loader.state_dict()
            break
    again = StreamDataLoader(dataset, num_workers, torch.stack)
    again.load_state_dict(state)
    assert [b.view(-1).tolist() for b in again] == batches[1:]
    assert vars(dataset).keys() == before.keys()
    assert dataset.streamer is before["streamer"] and dataset.fill_value is before["fill_value"]
    with pytest.raises(Exception):
        WorkerSpec().ring_depth = 3                         # frozen


def test_array_helpers():
    t = torch.arange(3.0, requires_grad=True)
    assert as_numpy(t).tolist() == [0.0, 1.0, 2.0]
    x = np.zeros(2)
    assert as_numpy(x) is x and as_numpy([1, 2]).tolist() == [1, 2]

    class Closable:
        closed = False

        def close(self):
            self.closed = True

    c = Closable()
    close_if_closable(c)
    close_if_closable(None)
    close_if_closable(object())
    assert c.closed


def _imports(path: Path, package: str) -> set[str]:
    """Modules of evstream a module imports, at any depth of its code (lazy imports too)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:                # `from pkg import submodule`
                sub = f"{base}.{alias.name}"
                found.add(sub if (SRC / (sub.replace(".", "/") + ".py")).exists() else base)
    return {m for m in found if m.startswith("evstream")}


def _module_imports() -> dict[str, set[str]]:
    modules = {}
    for path in sorted((SRC / "evstream").rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = name if rel.name == "__init__" else name.rsplit(".", 1)[0]
        modules[name] = _imports(path, package)
    return modules


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    visiting, done, cycles = set(), set(), []

    def visit(m, trail):
        if m in done:
            return
        if m in visiting:
            cycles.append(trail[trail.index(m):] + [m])
            return
        visiting.add(m)
        for d in sorted(graph.get(m, ())):
            visit(d, trail + [m])
        visiting.discard(m)
        done.add(m)

    for m in sorted(graph):
        visit(m, [])
    return cycles


def test_evstream_data_has_no_import_cycle():
    """The modules of evstream.data and what they import form no cycle, lazy imports inside
    functions included (the old sequential_dataset <-> sequential_dataset_common cycle was
    one)."""
    modules = _module_imports()
    data = {m for m in modules if m.startswith("evstream.data.") or m == "evstream.data"}
    assert {"evstream.data.sequential_dataset_common", "evstream.data.render",
            "evstream.data._loader", "evstream.data.stream_ring", "evstream.data.stream_slot",
            "evstream.data.stream_dataset"} <= data
    graph = {m: {d for d in deps if d in data and d != m} for m, deps in modules.items()
             if m in data and m != "evstream.data"}
    graph = {m: deps - {"evstream.data"} for m, deps in graph.items()}
    assert "evstream.data.sequential_dataset" not in graph["evstream.data.sequential_dataset_common"]
    assert _cycles(graph) == []


def test_no_module_of_evstream_is_in_an_import_cycle():
    """Across the whole package (lazy imports included), leaving out the packages' __init__
    modules, which import their own submodules to re-export their names."""
    modules = _module_imports()
    packages = {m for m in modules if (SRC / m.replace(".", "/") / "__init__.py").exists()}
    graph = {m: {d for d in deps if d in modules and d != m and d not in packages}
             for m, deps in modules.items() if m not in packages}
    assert len(graph) > 80
    assert _cycles(graph) == []


@pytest.mark.parametrize("dtype", [None, torch.float32, torch.uint8])
def test_stack_inputs_equals_torch_stack_along_the_batch_axis(dtype):
    rng = np.random.default_rng(3)
    items = [torch.from_numpy(rng.integers(0, 256, (3, 2, 4, 5), dtype=np.uint8))
             for _ in range(4)]
    got = common.stack_inputs(items, dtype)
    want = torch.stack(items, dim=1)
    want = want if dtype is None else want.to(dtype)
    assert got.dtype == want.dtype and got.shape == (3, 4, 2, 4, 5) and torch.equal(got, want)
    # a tensor needing a gradient goes through torch.stack (and keeps the graph)
    floats = [t.to(torch.float32).requires_grad_() for t in items]
    assert common.stack_inputs(floats).grad_fn is not None
