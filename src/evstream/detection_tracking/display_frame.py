"""Drawing :data:`~evstream.io.EventBbox` boxes on RGB frames (``metavision_ml``'s
``detection_tracking.display_frame.draw_box_events``)."""

from __future__ import annotations

import cv2
import numpy as np

from evstream.errors import ArgumentError

#: 255 colours: OpenCV's HSV colour map applied to 0..254, used as-is (as the original does) on
#: the RGB frames; a box's colour is ``COLORS[(value * 60) % 255]`` with ``value`` its class or
#: track id.
COLORS = cv2.applyColorMap(np.arange(0, 255, dtype=np.uint8), cv2.COLORMAP_HSV).reshape(255, 3)

#: class_id of "ignore" boxes (-1 stored in the unsigned field).
IGNORE_ID = 0xFFFFFFFF


def _label_name(label_map, class_id: int) -> str:
    try:
        return str(label_map[class_id])
    except (IndexError, KeyError, TypeError):
        return "ignore" if class_id == IGNORE_ID else str(class_id)


def draw_box_events(frame, box_events, label_map, force_color=None, draw_score=True, thickness=1,
                    color_from="class_id", confidence_field="class_confidence", dic_history=None):
    """Draws boxes on ``frame`` in place and returns it.

    Args:
        frame: ``H x W x 3`` uint8 image (C-contiguous, writable).
        box_events: EventBbox array (or any structured array with x, y, w, h, the colour field
            and the confidence field). Anything else without boxes (None, an empty tensor, NaN
            of a padding item) leaves the frame unchanged.
        label_map: class names indexed by class id (list or dict); ids it lacks are written as
            the number (or ``ignore`` for 4294967295, the "-1" class).
        force_color: one colour for every box (3 values) instead of the colour map.
        draw_score: append ``" {confidence:.2f}"`` to the name.
        thickness: rectangle line width.
        color_from: integer field choosing the colour (``class_id`` or ``track_id``).
        confidence_field: field holding the score.
        dic_history: with ``color_from="track_id"``, ``{track_id: [centres]}`` updated with each
            box's centre and drawn as a polyline (thickness 4); None = no history across calls.

    Corners are clipped to the frame. The label text is drawn near the box's bottom-left
    (``x1 + 5 %`` of the width, ``y1 + 94 %`` of the height), Hershey simplex, scale 0.7.
    """
    if box_events is None or not isinstance(box_events, np.ndarray) or box_events.dtype.names is None:
        return frame
    if len(box_events) == 0:
        return frame
    if confidence_field not in box_events.dtype.names:
        raise ArgumentError(f"draw_box_events: confidence field {confidence_field!r} not in the box "
                         f"dtype {box_events.dtype.names}")
    height, width = frame.shape[:2]
    if dic_history is None:
        dic_history = {}
    for box in box_events:
        x, y, w, h = float(box["x"]), float(box["y"]), float(box["w"]), float(box["h"])
        tlx = int(np.clip(x, 0, width - 1))
        tly = int(np.clip(y, 0, height - 1))
        brx = int(np.clip(x + w, 0, width - 1))
        bry = int(np.clip(y + h, 0, height - 1))
        class_id = int(box["class_id"]) if "class_id" in box.dtype.names else 0
        if force_color is not None:
            color = tuple(int(c) for c in force_color)
        else:
            color = tuple(int(c) for c in COLORS[(int(box[color_from]) * 60) % 255])
        cv2.rectangle(frame, (tlx, tly), (brx, bry), color, thickness)
        text = _label_name(label_map, class_id)
        if draw_score:
            text += f" {float(box[confidence_field]):.2f}"
        cv2.putText(frame, text, (int(tlx + 0.05 * (brx - tlx)), int(tly + 0.94 * (bry - tly))),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.7, color)
        if color_from == "track_id":
            track = int(box["track_id"])
            centre = ((tlx + brx) // 2, (tly + bry) // 2)
            history = dic_history.setdefault(track, [])
            history.append(centre)
            if len(history) > 1:
                pts = np.asarray(history, dtype=np.int32).reshape(-1, 1, 2)
                cv2.polylines(frame, [pts], False, color, 4)
    return frame
