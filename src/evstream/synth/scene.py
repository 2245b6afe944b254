"""Simulated scenes: a textured background seen by a (possibly panning) camera, and moving
objects of several classes that enter and leave the field of view and occlude each other.

Geometry is analytic: an object moves at constant velocity in world coordinates, the camera
offset follows a precomputed smooth trajectory, so the scene at any time ``t`` (µs) is known
exactly. :func:`render_row` / :func:`render_log_intensity` draw it (log intensity, numba) for the
event simulator: a bilinearly sampled periodic background texture, then each object, rasterised
once into a sprite (:func:`build_sprites`, anti-aliased) and sampled bilinearly at its sub-pixel
position. :meth:`Scene.boxes_at` gives ground-truth boxes that bound the *visible* pixels of each
object (clipped to the frame, occlusion taken into account).

Coordinates: pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``; object centres are continuous.
Every random draw comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..errors import ArgumentError

#: Appearance patterns (the drawing code of each is in :func:`_shade`).
PATTERNS = {"car": 0, "pedestrian": 1, "two_wheeler": 2, "rect": 3, "ellipse": 4}


@dataclass(frozen=True)
class ObjectClass:
    """One class of moving object.

    Args:
        name: the class name written to the label map.
        pattern: drawing pattern, a key of :data:`PATTERNS` (``car``: wide body, cabin, windows,
            wheels; ``pedestrian``: tall, head / torso / two legs; ``two_wheeler``: two wheels,
            frame and rider; ``rect`` / ``ellipse``: textured plain shapes).
        height: object height range, as a fraction of the frame's reference size
            ``min(H, W * 9 / 16)``, for an object at middle depth.
        aspect: width / height range.
        speed: speed range in frame widths per second, at middle depth.
        weight: relative frequency.
    """

    name: str
    pattern: str
    height: tuple[float, float]
    aspect: tuple[float, float]
    speed: tuple[float, float]
    weight: float = 1.0


#: Three classes with clearly different size, aspect, look and speed. Their names make the
#: tutorial's ``wanted_keys = ['car', 'pedestrian', 'two wheeler']`` work.
DEFAULT_CLASSES = (
    ObjectClass("car", "car", height=(0.17, 0.22), aspect=(2.0, 2.5), speed=(0.30, 0.50)),
    ObjectClass("pedestrian", "pedestrian", height=(0.26, 0.32), aspect=(0.36, 0.44),
                speed=(0.07, 0.13)),
    ObjectClass("two wheeler", "two_wheeler", height=(0.18, 0.23), aspect=(1.25, 1.5),
                speed=(0.17, 0.27)),
)


@dataclass(frozen=True)
class SceneConfig:
    """What happens in a simulated recording.

    Args:
        classes: the object classes; class ids are their positions.
        spawn_rate_hz: objects entering the view per second during busy periods.
        initial_objects: ``(lo, hi)``: objects already in view at t = 0 (inclusive range).
        max_objects: at most this many objects alive at once.
        busy_mean_s, quiet_mean_s: mean lengths of alternating busy periods and quiet periods
            (no new object enters); ``quiet_mean_s = 0`` means always busy.
        ego_motion: probability that a recording has camera ego-motion (a pan with stop-and-go
            segments); 0 = static camera, 1 = always moving.
        ego_speed: pan speed range, frame widths per second.
        ego_stop_probability: chance that an ego-motion segment is a stop.
        background_contrast: scale of the background texture (1 = moderate, 0 = flat grey).
        min_visible: an object gets a box only when at least this fraction of its pixels is
            visible (inside the frame and not hidden by a nearer object).
        min_box_side: boxes narrower or shorter than this (pixels) are dropped.
    """

    classes: tuple[ObjectClass, ...] = DEFAULT_CLASSES
    spawn_rate_hz: float = 1.2
    initial_objects: tuple[int, int] = (1, 3)
    max_objects: int = 6
    busy_mean_s: float = 3.0
    quiet_mean_s: float = 0.8
    ego_motion: float = 0.0
    ego_speed: tuple[float, float] = (0.05, 0.25)
    ego_stop_probability: float = 0.3
    background_contrast: float = 1.0
    min_visible: float = 0.5
    min_box_side: float = 3.0

    def validate(self) -> None:
        if not self.classes:
            raise ArgumentError("SceneConfig.classes must name at least one class")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names) or "empty" in names:
            raise ArgumentError(f"class names must be unique and not 'empty', got {names}")
        for c in self.classes:
            if c.pattern not in PATTERNS:
                raise ArgumentError(f"class {c.name!r}: unknown pattern {c.pattern!r} "
                                    f"(one of {sorted(PATTERNS)})")
            for what in ("height", "aspect", "speed"):
                lo, hi = getattr(c, what)
                if not 0 < lo <= hi:
                    raise ArgumentError(f"class {c.name!r}: {what} range must satisfy "
                                        f"0 < lo <= hi, got {(lo, hi)}")
            if c.weight <= 0:
                raise ArgumentError(f"class {c.name!r}: weight must be > 0")
        lo, hi = self.initial_objects
        if not 0 <= lo <= hi:
            raise ArgumentError(f"initial_objects must satisfy 0 <= lo <= hi, got {(lo, hi)}")
        if self.spawn_rate_hz < 0 or self.max_objects < 0:
            raise ArgumentError("spawn_rate_hz and max_objects must be >= 0")
        if not 0 <= self.ego_motion <= 1 or not 0 <= self.ego_stop_probability <= 1:
            raise ArgumentError("ego_motion and ego_stop_probability are probabilities in [0, 1]")
        if self.busy_mean_s <= 0 or self.quiet_mean_s < 0:
            raise ArgumentError("busy_mean_s must be > 0 and quiet_mean_s >= 0")
        if not 0 <= self.min_visible <= 1:
            raise ArgumentError("min_visible must be in [0, 1]")

    @property
    def label_names(self) -> list[str]:
        return [c.name for c in self.classes]


# Object table (one row per object of a recording). World coordinates: screen = world - camera.
OBJECT_DTYPE = np.dtype([("t_spawn", "<i8"), ("t_end", "<i8"), ("x0", "<f8"), ("y0", "<f8"),
                         ("vx", "<f8"), ("vy", "<f8"), ("hw", "<f8"), ("hh", "<f8"),
                         ("pattern", "<i4"), ("class_id", "<i4"), ("track_id", "<i4"),
                         ("z", "<f8"), ("v1", "<f8"), ("v2", "<f8"), ("v3", "<f8"),
                         ("spr_off", "<i8"), ("spr_w", "<i4"), ("spr_h", "<i4")])

# Columns of the per-time object parameter table handed to the kernels (float64 [k, 13]):
# centre, half sizes, pattern, part intensities (main, secondary, third, tyres, hubs), and the
# object's sprite in the sprite atlas (offset, width, height).
(P_CX, P_CY, P_HW, P_HH, P_PATTERN, P_V1, P_V2, P_V3, P_V4, P_V5,
 P_SPR, P_SW, P_SH) = range(13)
N_PARAMS = 13


# ---------------------------------------------------------------------------------------------
# drawing (numba)

@njit(cache=True, inline="always")
def _alpha(sd):
    """Coverage of a pixel whose centre is at signed distance ``sd`` (px, > 0 inside)."""
    a = sd + 0.5
    if a <= 0.0:
        return 0.0
    if a >= 1.0:
        return 1.0
    return a


@njit(cache=True, inline="always")
def _sd_box(dx, dy, hx, hy):
    return min(hx - abs(dx), hy - abs(dy))


@njit(cache=True, inline="always")
def _sd_circle(dx, dy, r):
    return r - math.sqrt(dx * dx + dy * dy)


@njit(cache=True, inline="always")
def _sd_ellipse(dx, dy, a, b):
    u = dx / a
    v = dy / b
    r = math.sqrt(u * u + v * v)
    gx = dx / (a * a)
    gy = dy / (b * b)
    g = math.sqrt(gx * gx + gy * gy)
    if g < 1e-12:
        return min(a, b)
    return (1.0 - r) * r / g


@njit(cache=True, inline="always")
def _mix(value, target, a):
    return value + (target - value) * a


@njit(cache=True)
def _shade(pattern, dx, dy, hw, hh, v1, v2, v3, v4, v5):
    """``(alpha, value)`` of an object at offset ``(dx, dy)`` px from its centre.

    Every pattern fills its ``[-hw, hw] x [-hh, hh]`` box edge to edge (so the visible-pixel box
    of an unoccluded object is its full box) with class-specific parts and internal edges.
    ``v1..v5`` are the part values (main, secondary, third, tyres, hubs); ``value`` mixes them
    by coverage, whatever their unit (the renderer passes log intensities).
    """
    if pattern == 0:  # car: lower body, narrower cabin with windows, two dark wheels
        a_body = _alpha(_sd_box(dx, dy - 0.2 * hh, hw, 0.5 * hh))
        a_cab = _alpha(_sd_box(dx, dy + 0.55 * hh, 0.6 * hw, 0.45 * hh))
        wx = hw - 0.5 * hh
        if wx < 0.4 * hh:
            wx = 0.4 * hh
        ddx = abs(dx) - wx
        ddy = dy - 0.62 * hh
        dw = math.sqrt(ddx * ddx + ddy * ddy)
        a_wheel = _alpha(0.38 * hh - dw)
        alpha = max(a_body, a_cab, a_wheel)
        if alpha <= 0.0:
            return 0.0, 0.0
        value = v1
        value = _mix(value, v2, _alpha(_sd_box(dx, dy + 0.5 * hh, 0.48 * hw, 0.3 * hh)))
        value = _mix(value, 0.7 * v1 + 0.3 * v2, _alpha(_sd_box(dx, dy - 0.15 * hh, hw, 0.06 * hh)))
        value = _mix(value, v4, a_wheel)
        value = _mix(value, v5, _alpha(0.14 * hh - dw))
        return alpha, value
    if pattern == 1:  # pedestrian: head, torso, two legs
        a_head = _alpha(_sd_circle(dx, dy + 0.82 * hh, min(0.18 * hh, hw)))
        a_torso = _alpha(_sd_ellipse(dx, dy + 0.2 * hh, hw, 0.47 * hh))
        lx = abs(dx) - 0.55 * hw
        a_leg = _alpha(_sd_box(lx, dy - 0.6 * hh, 0.45 * hw, 0.4 * hh))
        alpha = max(a_head, a_torso, a_leg)
        if alpha <= 0.0:
            return 0.0, 0.0
        value = _mix(v1, v3, a_leg * (1.0 - a_torso))
        value = _mix(value, v2, a_head)
        return alpha, value
    if pattern == 2:  # two wheeler: two tyres (rings), frame bar, rider, head
        wx = hw - 0.36 * hh
        if wx < 0.0:
            wx = 0.0
        ddx = abs(dx) - wx
        d = math.sqrt(ddx * ddx + (dy - 0.64 * hh) * (dy - 0.64 * hh))
        a_tyre = _alpha(min(0.36 * hh - d, d - 0.2 * hh))
        a_frame = _alpha(_sd_box(dx, dy - 0.45 * hh, wx, 0.09 * hh))
        a_rider = _alpha(_sd_ellipse(dx - 0.08 * hw, dy + 0.2 * hh, 0.32 * hh, 0.45 * hh))
        a_head = _alpha(_sd_circle(dx - 0.12 * hw, dy + 0.82 * hh, 0.18 * hh))
        alpha = max(a_tyre, a_frame, a_rider, a_head)
        if alpha <= 0.0:
            return 0.0, 0.0
        value = _mix(v2, v1, a_rider)
        value = _mix(value, v3, a_head)
        value = _mix(value, v4, a_tyre)
        return alpha, value
    if pattern == 3:  # rect with stripes
        alpha = _alpha(_sd_box(dx, dy, hw, hh))
        if alpha <= 0.0:
            return 0.0, 0.0
        period = max(4.0, 0.5 * hh)
        s = math.sin(6.283185307179586 * (dx + dy) / period)
        return alpha, _mix(v1, v2, _alpha(s * period / 6.283185307179586))
    # ellipse with a spot
    alpha = _alpha(_sd_ellipse(dx, dy, hw, hh))
    if alpha <= 0.0:
        return 0.0, 0.0
    return alpha, _mix(v1, v2, _alpha(_sd_ellipse(dx, dy, 0.45 * hw, 0.45 * hh)))


@njit(cache=True)
def build_sprites(objs, size, log_eps):
    """Rasterise every object once: float32 [size, 2] atlas of premultiplied ``(alpha,
    alpha * log(value + log_eps))`` samples at pixel centres, object ``k`` at offset
    ``objs[k, P_SPR]`` with ``objs[k, P_SW] x objs[k, P_SH]`` samples, centre at
    ``(sw / 2, sh / 2)`` (sprites have a zero border of at least one sample)."""
    atlas = np.zeros((size, 2), np.float32)
    for k in range(objs.shape[0]):
        hw, hh = objs[k, P_HW], objs[k, P_HH]
        pattern = int(objs[k, P_PATTERN])
        lv0 = math.log(objs[k, P_V1] + log_eps)
        lv1 = math.log(objs[k, P_V2] + log_eps)
        lv2 = math.log(objs[k, P_V3] + log_eps)
        lv3 = math.log(objs[k, P_V4] + log_eps)
        lv4 = math.log(objs[k, P_V5] + log_eps)
        off = int(objs[k, P_SPR])
        sw = int(objs[k, P_SW])
        sh = int(objs[k, P_SH])
        for i in range(sh):
            dy = i + 0.5 - sh / 2
            for j in range(sw):
                a, v = _shade(pattern, j + 0.5 - sw / 2, dy, hw, hh, lv0, lv1, lv2, lv3, lv4)
                atlas[off + i * sw + j, 0] = a
                atlas[off + i * sw + j, 1] = a * v
    return atlas


@njit(cache=True)
def render_row(row, y, x0, x1, log_tex, cam_x, cam_y, objs, atlas):
    """Log intensity of pixels ``x0..x1-1`` of row ``y`` into ``row[0:x1-x0]``.

    ``log_tex``: float32 [Th, Tw] periodic background log intensity (sides powers of two),
    sampled bilinearly at ``(x + cam_x, y + cam_y)``; ``objs``: float64 [n, 13] object
    parameters back to front; ``atlas``: their :func:`build_sprites`, sampled bilinearly at
    the objects' sub-pixel positions and composited in the log domain.
    """
    th, tw = log_tex.shape
    my, mx = th - 1, tw - 1
    fx = math.floor(cam_x)
    fy = math.floor(cam_y)
    ax = np.float32(cam_x - fx)
    ay = np.float32(cam_y - fy)
    ix = int(fx)
    iy = int(fy)
    ra = (y + iy) & my
    if ax == 0 and ay == 0:
        for x in range(x0, x1):
            row[x - x0] = log_tex[ra, (x + ix) & mx]
    else:
        rb = (y + iy + 1) & my
        for x in range(x0, x1):
            ca = (x + ix) & mx
            cb = (x + ix + 1) & mx
            top = log_tex[ra, ca] + ax * (log_tex[ra, cb] - log_tex[ra, ca])
            bot = log_tex[rb, ca] + ax * (log_tex[rb, cb] - log_tex[rb, ca])
            row[x - x0] = top + ay * (bot - top)
    for k in range(objs.shape[0]):
        cx, cy = objs[k, P_CX], objs[k, P_CY]
        off = int(objs[k, P_SPR])
        sw = int(objs[k, P_SW])
        sh = int(objs[k, P_SH])
        v = y - cy + sh / 2
        i0 = int(math.floor(v))
        if i0 < 0 or i0 > sh - 2:
            continue
        fv = np.float32(v - i0)
        u0 = cx - sw / 2
        xa = max(x0, int(math.ceil(u0)))
        xb = min(x1, int(math.floor(u0)) + sw - 1)
        if xa >= xb:
            continue
        # x - u0 has the same fractional part for every x: j0 = x - k0
        k0 = xa - int(math.floor(xa - u0))
        fu = np.float32((xa - u0) - math.floor(xa - u0))
        gu = np.float32(1.0) - fu
        gv = np.float32(1.0) - fv
        w00, w01, w10, w11 = gv * gu, gv * fu, fv * gu, fv * fu
        q = off + i0 * sw + (xa - k0)
        for x in range(xa, xb):
            a = (w00 * atlas[q, 0] + w01 * atlas[q + 1, 0] + w10 * atlas[q + sw, 0]
                 + w11 * atlas[q + sw + 1, 0])
            if a > 0.0:
                av = (w00 * atlas[q, 1] + w01 * atlas[q + 1, 1] + w10 * atlas[q + sw, 1]
                      + w11 * atlas[q + sw + 1, 1])
                row[x - x0] = row[x - x0] * (np.float32(1.0) - a) + av
            q += 1


@njit(cache=True)
def render_log_intensity(out, rects, log_tex, cam_x, cam_y, objs, atlas):
    """Draw the scene's log intensity into ``out`` (float32 [H, W]) inside ``rects`` (int64
    [k, 4] ``(y0, y1, x0, x1)``, half-open, inside the frame); see :func:`render_row`. Pixels
    outside ``rects`` are not touched."""
    for r in range(rects.shape[0]):
        y0, y1, x0, x1 = rects[r, 0], rects[r, 1], rects[r, 2], rects[r, 3]
        for y in range(y0, y1):
            render_row(out[y, x0:x1], y, x0, x1, log_tex, cam_x, cam_y, objs, atlas)


@njit(cache=True)
def visible_extents(objs, height, width):
    """Per object (back to front): ``[xmin, ymin, xmax, ymax, visible, total]`` (float64 [n, 6]).

    A pixel belongs to an object when its coverage is >= 0.5; it is visible when it lies in the
    frame and no nearer object covers it. ``total`` counts the object's pixels in or out of the
    frame; extents are -1 when nothing is visible.
    """
    n = objs.shape[0]
    res = np.full((n, 6), -1.0)
    for k in range(n):
        cx, cy, hw, hh = objs[k, 0], objs[k, 1], objs[k, 2], objs[k, 3]
        pattern = int(objs[k, 4])
        ya = int(math.floor(cy - hh - 1.0))
        yb = int(math.ceil(cy + hh + 1.0))
        xa = int(math.floor(cx - hw - 1.0))
        xb = int(math.ceil(cx + hw + 1.0))
        total = 0
        vis = 0
        x_lo, y_lo, x_hi, y_hi = width, height, -1, -1
        for y in range(ya, yb):
            dy = y + 0.5 - cy
            for x in range(xa, xb):
                a, _v = _shade(pattern, x + 0.5 - cx, dy, hw, hh, 0.0, 0.0, 0.0, 0.0, 0.0)
                if a < 0.5:
                    continue
                total += 1
                if x < 0 or y < 0 or x >= width or y >= height:
                    continue
                hidden = False
                for j in range(k + 1, n):
                    jx, jy, jw, jh = objs[j, 0], objs[j, 1], objs[j, 2], objs[j, 3]
                    ddx = x + 0.5 - jx
                    ddy = y + 0.5 - jy
                    if abs(ddx) > jw + 1.0 or abs(ddy) > jh + 1.0:
                        continue
                    b, _w = _shade(int(objs[j, 4]), ddx, ddy, jw, jh, 0.0, 0.0, 0.0, 0.0, 0.0)
                    if b >= 0.5:
                        hidden = True
                        break
                if hidden:
                    continue
                vis += 1
                x_lo = min(x_lo, x)
                x_hi = max(x_hi, x)
                y_lo = min(y_lo, y)
                y_hi = max(y_hi, y)
        res[k, 4] = vis
        res[k, 5] = total
        if vis > 0:
            res[k, 0], res[k, 1], res[k, 2], res[k, 3] = x_lo, y_lo, x_hi, y_hi
    return res


# ---------------------------------------------------------------------------------------------
# scene construction

def make_background(rng: np.random.Generator, size: int, contrast: float = 1.0) -> np.ndarray:
    """A periodic ``size x size`` float32 intensity texture in (0, 1]: 1/f noise plus flat
    rectangles (facades, windows) and thin bars (poles, markings)."""
    if contrast <= 0:
        return np.full((size, size), 0.45, dtype=np.float32)
    white = rng.standard_normal((size, size))
    spec = np.fft.rfft2(white)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    r = np.sqrt(fx * fx + fy * fy)
    r[0, 0] = 1.0
    spec /= r ** 1.4
    spec[0, 0] = 0.0
    img = np.fft.irfft2(spec, s=(size, size))
    img = 0.45 + (0.11 * contrast) * img / max(img.std(), 1e-12)
    n_rects = int(round(size * size / 12000))
    for _ in range(n_rects):
        h = int(rng.integers(6, max(7, size // 8)))
        w = int(rng.integers(6, max(7, size // 8)))
        if rng.random() < 0.25:      # thin bar
            if rng.random() < 0.5:
                w = int(rng.integers(2, 5))
            else:
                h = int(rng.integers(2, 5))
        y = int(rng.integers(0, size))
        x = int(rng.integers(0, size))
        value = 0.45 + contrast * (rng.uniform(0.12, 0.35) * rng.choice([-1.0, 1.0]))
        ys = np.arange(y, y + h) % size
        xs = np.arange(x, x + w) % size
        patch = img[np.ix_(ys, xs)]
        img[np.ix_(ys, xs)] = value + 0.25 * (patch - patch.mean())
    return np.clip(img, 0.03, 1.0).astype(np.float32)


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


class Scene:
    """The whole content of one simulated recording, fixed at construction.

    Args:
        height, width: frame size (pixels).
        duration_us: length of the recording.
        config: :class:`SceneConfig`.
        rng: the random generator every draw comes from.
    """

    def __init__(self, height: int, width: int, duration_us: int, config: SceneConfig,
                 rng: np.random.Generator):
        config.validate()
        self.height, self.width = int(height), int(width)
        self.duration_us = int(duration_us)
        self.config = config
        self.ref_size = min(self.height, self.width * 9 / 16)
        self.texture = make_background(rng, _pow2_at_least(max(self.height, self.width) + 2),
                                       config.background_contrast)
        self._log_textures: dict[float, np.ndarray] = {}
        self._atlases: dict[float, np.ndarray] = {}
        self.ego_motion = bool(rng.random() < config.ego_motion)
        self._cam = self._camera_trajectory(rng)
        self.objects = self._spawn_objects(rng)

    # camera ------------------------------------------------------------------------------
    def _camera_trajectory(self, rng):
        """Camera offset (x, y) per millisecond, float64 [n_ms + 2, 2]."""
        n_ms = self.duration_us // 1000 + 2
        if not self.ego_motion:
            return np.zeros((n_ms, 2))
        vel = np.zeros((n_ms, 2))
        i = 0
        while i < n_ms:
            seg = int(rng.uniform(400, 1500))
            if rng.random() >= self.config.ego_stop_probability:
                speed = rng.uniform(*self.config.ego_speed) * self.width
                angle = rng.normal(0.0, 0.2) + (math.pi if rng.random() < 0.5 else 0.0)
                vel[i:i + seg] = speed * math.cos(angle), speed * math.sin(angle)
            i += seg
        kernel = np.ones(151) / 151.0
        vel = np.stack([np.convolve(vel[:, 0], kernel, mode="same"),
                        np.convolve(vel[:, 1], kernel, mode="same")], axis=1)
        vel[np.abs(vel) < 1e-9] = 0.0
        pos = np.cumsum(vel, axis=0) * 1e-3
        pos -= pos[0]
        self._cam_vel = vel
        return pos

    def camera_at(self, t_us: int) -> tuple[float, float]:
        """Camera offset at ``t_us``: the screen shows world point ``(x + cx, y + cy)`` at
        pixel ``(x, y)``."""
        i, r = divmod(int(t_us), 1000)
        i = min(max(i, 0), len(self._cam) - 2)
        a, b = self._cam[i], self._cam[i + 1]
        if r == 0 or (a[0] == b[0] and a[1] == b[1]):
            return float(a[0]), float(a[1])
        f = r / 1000.0
        return float(a[0] + (b[0] - a[0]) * f), float(a[1] + (b[1] - a[1]) * f)

    def camera_velocity(self, t_us: int) -> tuple[float, float]:
        """Camera velocity (px/s) at ``t_us``."""
        if not self.ego_motion:
            return 0.0, 0.0
        i = min(max(int(t_us) // 1000, 0), len(self._cam_vel) - 1)
        return float(self._cam_vel[i, 0]), float(self._cam_vel[i, 1])

    # objects -----------------------------------------------------------------------------
    def _new_object(self, rng, t_us, inside):
        cfg = self.config
        weights = np.array([c.weight for c in cfg.classes], dtype=np.float64)
        cid = int(rng.choice(len(cfg.classes), p=weights / weights.sum()))
        cls = cfg.classes[cid]
        depth = rng.uniform(0.45, 0.97)                  # bottom edge, fraction of H
        scale = 0.65 + 0.75 * (depth - 0.45) / 0.52      # nearer = lower = bigger and faster
        h = rng.uniform(*cls.height) * self.ref_size * scale
        w = h * rng.uniform(*cls.aspect)
        hh, hw = h / 2, w / 2
        speed = rng.uniform(*cls.speed) * self.width * scale
        vx = speed if rng.random() < 0.5 else -speed
        vy = rng.normal(0.0, 0.03) * speed
        cy = min(max(depth * self.height - hh, hh * 0.8), self.height - hh * 0.8)
        camx, camy = self.camera_at(t_us)
        cvx, _cvy = self.camera_velocity(t_us)
        if inside:
            cx = rng.uniform(0.0, self.width)
        else:
            svx = vx - cvx
            if abs(svx) < 0.02 * self.width:
                return None
            cx = -hw - 1.0 if svx > 0 else self.width + hw + 1.0
        dark = rng.random() < 0.5
        v1 = rng.uniform(0.06, 0.2) if dark else rng.uniform(0.7, 0.98)
        v2 = rng.uniform(0.55, 0.9) if dark else rng.uniform(0.08, 0.3)
        v3 = rng.uniform(0.1, 0.9)
        row = np.zeros((), dtype=OBJECT_DTYPE)
        row["t_spawn"], row["x0"], row["y0"] = t_us, cx + camx, cy + camy
        row["vx"], row["vy"], row["hw"], row["hh"] = vx, vy, hw, hh
        row["pattern"], row["class_id"] = PATTERNS[cls.pattern], cid
        row["z"] = depth + rng.uniform(0, 1e-3)
        row["v1"], row["v2"], row["v3"] = v1, v2, v3
        row["t_end"] = self._exit_time(row)
        return row

    def _exit_time(self, row) -> int:
        """First time (5 ms grid) at which the object is far outside the frame."""
        margin = 0.1 * self.width + 2.0
        t = np.arange(int(row["t_spawn"]), self.duration_us + 5000, 5000, dtype=np.int64)
        ms = np.minimum(t // 1000, len(self._cam) - 1)
        dt = (t - row["t_spawn"]) * 1e-6
        sx = row["x0"] + row["vx"] * dt - self._cam[ms, 0]
        sy = row["y0"] + row["vy"] * dt - self._cam[ms, 1]
        out = ((sx + row["hw"] < -margin) | (sx - row["hw"] > self.width + margin)
               | (sy + row["hh"] < -margin) | (sy - row["hh"] > self.height + margin))
        hit = np.flatnonzero(out)
        return int(t[hit[0]]) if len(hit) else self.duration_us + 10_000

    def _spawn_objects(self, rng):
        cfg = self.config
        rows = []
        lo, hi = cfg.initial_objects
        for _ in range(int(rng.integers(lo, hi + 1))):
            if len(rows) < cfg.max_objects:
                row = self._new_object(rng, 0, inside=True)
                if row is not None:
                    rows.append(row)
        # busy / quiet periods
        periods = []
        t, busy = 0.0, True
        while t < self.duration_us:
            mean = cfg.busy_mean_s if busy else cfg.quiet_mean_s
            length = rng.exponential(mean) * 1e6 if mean > 0 else float("inf")
            if busy:
                periods.append((t, t + length))
            t += length
            busy = not busy if cfg.quiet_mean_s > 0 else True
        if cfg.spawn_rate_hz > 0:
            t = 0.0
            while True:
                t += rng.exponential(1e6 / cfg.spawn_rate_hz)
                if t >= self.duration_us:
                    break
                if not any(a <= t < b for a, b in periods):
                    continue
                alive = sum(1 for r in rows if r["t_spawn"] <= t < r["t_end"])
                if alive >= cfg.max_objects:
                    continue
                row = self._new_object(rng, int(t), inside=False)
                if row is not None:
                    rows.append(row)
        table = np.array(rows, dtype=OBJECT_DTYPE) if rows else np.zeros(0, OBJECT_DTYPE)
        table["track_id"] = np.arange(1, len(table) + 1)
        table["spr_w"] = 2 * np.ceil(table["hw"] + 1.0).astype(np.int64) + 2
        table["spr_h"] = 2 * np.ceil(table["hh"] + 1.0).astype(np.int64) + 2
        sizes = table["spr_w"].astype(np.int64) * table["spr_h"]
        table["spr_off"] = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(table) else 0
        return table

    # state at a time -----------------------------------------------------------------------
    def active(self, t_us: int) -> np.ndarray:
        """Indices of the objects alive at ``t_us``, back to front."""
        o = self.objects
        idx = np.flatnonzero((o["t_spawn"] <= t_us) & (t_us < o["t_end"]))
        return idx[np.argsort(o["z"][idx], kind="stable")]

    def params(self, idx: np.ndarray, t_us: int) -> np.ndarray:
        """Kernel parameters (float64 [k, 13]) of objects ``idx`` at ``t_us`` (screen space)."""
        o = self.objects[idx]
        camx, camy = self.camera_at(t_us)
        dt = (t_us - o["t_spawn"]) * 1e-6
        p = np.empty((len(o), N_PARAMS))
        p[:, P_CX] = o["x0"] + o["vx"] * dt - camx
        p[:, P_CY] = o["y0"] + o["vy"] * dt - camy
        p[:, P_HW] = o["hw"]
        p[:, P_HH] = o["hh"]
        p[:, P_PATTERN] = o["pattern"]
        p[:, P_V1] = o["v1"]
        p[:, P_V2] = o["v2"]
        p[:, P_V3] = o["v3"]
        p[:, P_V4] = 0.05
        p[:, P_V5] = 0.55
        p[:, P_SPR] = o["spr_off"]
        p[:, P_SW] = o["spr_w"]
        p[:, P_SH] = o["spr_h"]
        return p

    def log_texture(self, log_eps: float) -> np.ndarray:
        """``log(texture + log_eps)`` (float32, cached per ``log_eps``)."""
        tex = self._log_textures.get(log_eps)
        if tex is None:
            tex = np.log(self.texture + np.float32(log_eps)).astype(np.float32)
            self._log_textures[log_eps] = tex
        return tex

    def sprites(self, log_eps: float) -> np.ndarray:
        """The sprite atlas of every object (:func:`build_sprites`, cached per ``log_eps``)."""
        atlas = self._atlases.get(log_eps)
        if atlas is None:
            o = self.objects
            size = int((o["spr_w"].astype(np.int64) * o["spr_h"]).sum())
            atlas = build_sprites(self.params(np.arange(len(o)), 0), size, log_eps)
            self._atlases[log_eps] = atlas
        return atlas

    def render(self, out: np.ndarray, rects: np.ndarray, t_us: int, log_eps: float) -> None:
        """Draw the log intensity at ``t_us`` into ``out`` inside ``rects`` (int64 [k, 4]
        ``(y0, y1, x0, x1)``); see :func:`render_log_intensity`."""
        camx, camy = self.camera_at(t_us)
        render_log_intensity(out, rects, self.log_texture(log_eps), camx, camy,
                             self.params(self.active(t_us), t_us), self.sprites(log_eps))

    def max_screen_speed(self, t_us: int) -> float:
        """Fastest on-screen motion (px/s) at ``t_us``: background pan or any live object."""
        cvx, cvy = self.camera_velocity(t_us)
        best = math.hypot(cvx, cvy)
        o = self.objects[self.active(t_us)]
        if len(o):
            best = max(best, float(np.max(np.hypot(o["vx"] - cvx, o["vy"] - cvy))))
        return best

    def boxes_at(self, t_us: int) -> np.ndarray:
        """Ground truth at ``t_us``: float64 [k, 7] rows ``(x, y, w, h, class_id, track_id,
        visible_fraction)`` for each object whose visible part passes ``min_visible`` and
        ``min_box_side``; the box bounds the visible pixels (``[x, x + w) x [y, y + h)``)."""
        idx = self.active(t_us)
        if len(idx) == 0:
            return np.zeros((0, 7))
        ext = visible_extents(self.params(idx, t_us), self.height, self.width)
        rows = []
        for k, i in enumerate(idx):
            x0, y0, x1, y1, vis, total = ext[k]
            if vis <= 0 or total <= 0 or vis / total < self.config.min_visible:
                continue
            w, h = x1 - x0 + 1, y1 - y0 + 1
            if w < self.config.min_box_side or h < self.config.min_box_side:
                continue
            o = self.objects[i]
            rows.append((x0, y0, w, h, o["class_id"], o["track_id"], vis / total))
        return np.array(rows, dtype=np.float64).reshape(-1, 7)


__all__ = ["DEFAULT_CLASSES", "OBJECT_DTYPE", "PATTERNS", "ObjectClass", "Scene", "SceneConfig",
           "build_sprites", "make_background", "render_log_intensity", "render_row",
           "visible_extents"]
