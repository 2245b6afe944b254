"""RVT's data pipeline from the original recordings (clean-room, from the rules in the README
section "Using evstream with RVT-style detectors").

| module | concept |
|---|---|
| :mod:`~evstream.rvt.config` | RVT's constants, the gen1 / gen4 presets, representation names |
| :mod:`~evstream.rvt.labels` | box filters, label frames, ``labels.npz`` contents |
| :mod:`~evstream.rvt.windows` | window end times, label frame -> window index |
| :mod:`~evstream.rvt.events` | events in file order with RVT's running-maximum time repair |
| :mod:`~evstream.rvt.window_events` | which events make each window (bounded memory) |
| :mod:`~evstream.rvt.representation` | RVT's stacked histogram and ``ds2_nearest`` |
| :mod:`~evstream.rvt.sequence` | one sequence computed from its recording and box file |
| :mod:`~evstream.rvt.layout_writer` | RVT's preprocessed layout, written (``evstream precompute --layout rvt``) |
| :mod:`~evstream.rvt.layout_reader` | RVT's preprocessed layout, read |
| :mod:`~evstream.rvt.samples` | random-access and streaming samples of length L |
| :mod:`~evstream.rvt.augmentation` | RVT's flip / zoom-in / zoom-out |
| :mod:`~evstream.rvt.batch` | RVT's batch dict (``DataType``, ``ObjectLabels``) and the metavision-style batch |
| :mod:`~evstream.rvt.loader` | random, streaming and mixed loaders on evstream's stream loader |

This package imports torch only in the batch/loader/augmentation modules.
"""
