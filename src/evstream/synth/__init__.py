"""Layer 5: synthetic labelled recordings.

A small event simulator: moving objects of several classes over a textured background (static or
panning camera) -> log intensity -> CD events (contrast thresholds with per-pixel mismatch,
refractory period, background activity, hot pixels), written through the layer-1 writers
(RAW EVT 3.0 / EVT 2.0, DAT) together with ``<name>_bbox.npy`` ground truth and
``label_map_dictionary.json``, in train / val / test folders. Deterministic from a seed.

Entry points: :func:`make_dataset` (a dataset on disk), :func:`write_recording` (one recording),
:func:`simulate` (one recording in memory). This package never imports the loaders.
"""

from .dataset import (LABEL_MAP_NAME, SynthDataset, SynthRecording, label_map, label_times,
                      make_dataset, make_simulator, parse_formats, scene_boxes, simulate,
                      split_counts, write_recording)
from .scene import DEFAULT_CLASSES, ObjectClass, Scene, SceneConfig
from .simulator import EventSimulator, SensorConfig

__all__ = ["DEFAULT_CLASSES", "EventSimulator", "LABEL_MAP_NAME", "ObjectClass", "Scene",
           "SceneConfig", "SensorConfig", "SynthDataset", "SynthRecording", "label_map",
           "label_times", "make_dataset", "make_simulator", "parse_formats", "scene_boxes",
           "simulate", "split_counts", "write_recording"]
