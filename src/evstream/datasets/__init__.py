"""The field's public detection datasets (Gen1, 1Mpx, eTraM, DSEC-Detection): their folder
layouts, label files, class tables and the paper protocol's box filter.

No torch here: :mod:`evstream.data` (training labels) and :mod:`evstream.metrics` (evaluation)
both build on it.

- :mod:`evstream.datasets.box_filter`: :class:`PaperBoxFilter` (minimum diagonal and side,
  ``t > skip_ts``, float32 comparisons), presets :data:`GEN1_FILTER`, :data:`GEN4_FILTER`.
- :mod:`evstream.datasets.classes`: class names of each dataset, the eTraM -> 1Mpx remap,
  label-map files and lookups for ``create_class_lookup`` / ``load_boxes``.
- :mod:`evstream.datasets.labels`: where a recording's label file is (``_bbox.npy`` or DSEC's
  ``tracks.npy``) and reading it as EventBbox on the events' clock.
- :mod:`evstream.datasets.layout`: :func:`list_dataset`, a dataset root's recordings and label
  files by split.
- :mod:`evstream.datasets.presets`: :data:`PRESETS`, each dataset's sensor size, classes,
  training classes and box filter.
"""

from evstream.datasets.box_filter import GEN1_FILTER, GEN4_FILTER, PaperBoxFilter
from evstream.datasets.classes import (DSEC_CLASSES, ETRAM_CLASSES, ETRAM_TO_GEN4,
                                       ETRAM_TO_GEN4_HEAVY_AS_CAR, GEN1_CLASSES, GEN4_CLASSES,
                                       class_lookup, compose_class_lookup, remap_class_ids,
                                       write_label_map)
from evstream.datasets.labels import label_file_path, read_label_file
from evstream.datasets.layout import DatasetFolder, Recording, list_dataset
from evstream.datasets.presets import PRESETS, DatasetPreset, preset

__all__ = ["GEN1_FILTER", "GEN4_FILTER", "PaperBoxFilter", "DSEC_CLASSES", "ETRAM_CLASSES",
           "ETRAM_TO_GEN4", "ETRAM_TO_GEN4_HEAVY_AS_CAR", "GEN1_CLASSES", "GEN4_CLASSES",
           "class_lookup", "compose_class_lookup", "remap_class_ids", "write_label_map",
           "label_file_path", "read_label_file", "DatasetFolder", "Recording", "list_dataset",
           "PRESETS", "DatasetPreset", "preset"]
