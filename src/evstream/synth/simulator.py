"""Event simulator: log intensity of a :class:`~evstream.synth.scene.Scene` -> CD events.

Per simulation step ``[t0, t1)`` (adaptive: the fastest thing on screen moves at most
``max_step_px`` pixels) the scene is redrawn at ``t1`` where it changed (the whole frame when
the camera moves, else the boxes swept by the objects). Each pixel keeps a reference log
intensity ``ref``; while the new value is at least one contrast threshold above (below) it, an
ON (OFF) event is emitted and ``ref`` moves by that threshold. Event times are interpolated
linearly between the pixel's values at ``t0`` and ``t1``. Thresholds differ per pixel and per
polarity (Gaussian mismatch). A pixel that fired less than ``refractory_us`` ago stays silent
(its reference still follows the signal). Background activity (Poisson, uniform over pixels and
time) and a few hot pixels (high-rate Poisson) are added. Each step's events are sorted by
``(t, y, p, x)`` (a radix sort), which keeps row runs together for the EVT 3.0 encoder.

Memory is bounded: events come out in chunks of about ``chunk_events``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from numba import njit

from ..errors import ArgumentError
from ..io import EventCD
from .scene import Scene, render_row

_NEVER = -(1 << 40)       # last_t of a pixel that has not fired
_DIGIT_BITS = 12


@dataclass(frozen=True)
class SensorConfig:
    """The simulated sensor.

    Args:
        contrast_threshold: mean log-intensity change per event (ON and OFF).
        threshold_sigma: per-pixel, per-polarity standard deviation of the threshold.
        refractory_us: a pixel cannot fire again within this time.
        noise_rate_hz: background activity, events per pixel per second.
        noise_on_fraction: fraction of ON events in the background activity.
        hot_pixel_fraction: expected fraction of hot pixels.
        hot_pixel_rate_hz: ``(lo, hi)`` firing rate range of a hot pixel.
        log_eps: ``log(I + log_eps)`` is what the pixels see (I in [0, 1]).
        max_step_px: largest on-screen displacement per simulation step.
        min_step_us, max_step_us: step length bounds.
    """

    contrast_threshold: float = 0.2
    threshold_sigma: float = 0.03
    refractory_us: int = 200
    noise_rate_hz: float = 0.1
    noise_on_fraction: float = 0.5
    hot_pixel_fraction: float = 2e-5
    hot_pixel_rate_hz: tuple[float, float] = (100.0, 800.0)
    log_eps: float = 0.02
    max_step_px: float = 1.0
    min_step_us: int = 50
    max_step_us: int = 10_000

    def validate(self) -> None:
        if not self.contrast_threshold > 0 or self.threshold_sigma < 0:
            raise ArgumentError("contrast_threshold must be > 0 and threshold_sigma >= 0")
        if self.refractory_us < 0 or self.noise_rate_hz < 0 or self.hot_pixel_fraction < 0:
            raise ArgumentError("refractory_us, noise_rate_hz and hot_pixel_fraction must be >= 0")
        if not 0 <= self.noise_on_fraction <= 1 or not 0 <= self.hot_pixel_fraction <= 1:
            raise ArgumentError("noise_on_fraction and hot_pixel_fraction must be in [0, 1]")
        if not self.log_eps > 0 or not self.max_step_px > 0:
            raise ArgumentError("log_eps and max_step_px must be > 0")
        if not 1 <= self.min_step_us <= self.max_step_us <= 1_000_000:
            raise ArgumentError("need 1 <= min_step_us <= max_step_us <= 1e6")


# ---------------------------------------------------------------------------------------------
# kernels

@njit(cache=True)
def _radix_order(keys, n):
    """Stable LSD radix sort of ``keys[:n]`` (non-negative int64), 12-bit digits: the order."""
    idx_a = np.arange(n)
    if n < 2:
        return idx_a
    maxk = 0
    for i in range(n):
        if keys[i] > maxk:
            maxk = keys[i]
    idx_b = np.empty(n, np.int64)
    src_k = keys[:n].copy()
    dst_k = np.empty(n, np.int64)
    src_i, dst_i = idx_a, idx_b
    nb = 1 << _DIGIT_BITS
    mask = nb - 1
    counts = np.empty(nb, np.int64)
    shift = 0
    while shift == 0 or (maxk >> shift) > 0:
        counts[:] = 0
        for i in range(n):
            counts[(src_k[i] >> shift) & mask] += 1
        acc = 0
        for d in range(nb):
            c_ = counts[d]
            counts[d] = acc
            acc += c_
        for i in range(n):
            d = (src_k[i] >> shift) & mask
            j = counts[d]
            counts[d] = j + 1
            dst_k[j] = src_k[i]
            dst_i[j] = src_i[i]
        src_k, dst_k = dst_k, src_k
        src_i, dst_i = dst_i, src_i
        shift += _DIGIT_BITS
    return src_i


@njit(cache=True)
def _emit(log_tex, cam_x, cam_y, objs, atlas, lcur, hi, lo, last_t, con, coff, rects, t0, t1,
          refractory, ev, keys, n, r_start, y_start):
    """Redraw the pixels of ``rects`` at ``t1`` and emit their events into ``ev[n:]`` (rows
    ``(x | y << 16 | p << 32, t)``, the memory layout of EventCD) with sort keys in ``keys``.

    Pixels go from ``lcur`` (log intensity at ``t0``) to the new value (scene arrays: see
    :func:`~evstream.synth.scene.render_row`). A pixel's reference ``ref`` is kept as its two
    trigger levels ``hi = ref + con``, ``lo = ref - coff``.

    Starts at rect ``r_start``, row ``y_start``. Returns ``(n, r, y)``: ``r = -1`` when done,
    else the buffers are too small for row ``y`` of rect ``r``: grow them and call again from
    there (a row is processed all or nothing, so resuming is exact).
    """
    height, width = lcur.shape
    dt = t1 - t0
    cap = ev.shape[0]
    row = np.empty(width, np.float32)
    cand = np.empty(width, np.int64)
    for r in range(r_start, rects.shape[0]):
        x0, x1 = rects[r, 2], rects[r, 3]
        ya = y_start if r == r_start else rects[r, 0]
        for y in range(ya, rects[r, 1]):
            render_row(row, y, x0, x1, log_tex, cam_x, cam_y, objs, atlas)
            # hot loop: pixels that stay between their levels just take the new value
            m = 0
            lc = lcur[y]
            hy = hi[y]
            ly = lo[y]
            for x in range(x0, x1):
                v = row[x - x0]
                if v >= hy[x] or v <= ly[x]:
                    cand[m] = x
                    m += 1
                else:
                    lc[x] = v
            if m == 0:
                continue
            bound = 0
            for i in range(m):
                x = cand[i]
                v = row[x - x0]
                if v >= hy[x]:
                    bound += int((v - hy[x]) / con[y, x]) + 2
                else:
                    bound += int((ly[x] - v) / coff[y, x]) + 2
            if n + bound > cap:
                return n, r, y
            # the few pixels that cross: their events
            for i in range(m):
                x = cand[i]
                l1 = np.float64(row[x - x0])
                l0 = np.float64(lc[x])
                lc[x] = row[x - x0]
                cn = np.float64(con[y, x])
                cf = np.float64(coff[y, x])
                if l1 >= hy[x]:
                    rv = np.float64(hy[x]) - cn
                    c = cn
                    p = 1
                else:
                    rv = np.float64(ly[x]) + cf
                    c = -cf
                    p = 0
                span = l1 - l0
                lt = last_t[y, x]
                lv = rv + c
                while (lv <= l1) if p == 1 else (lv >= l1):
                    frac = (lv - l0) / span if span != 0.0 else 1.0
                    if frac < 0.0:
                        frac = 0.0
                    t = t0 + int(frac * dt)
                    if t >= t1:
                        t = t1 - 1
                    if t - lt >= refractory and n < cap:
                        ev[n, 0] = x | (y << 16) | (p << 32)
                        ev[n, 1] = t
                        keys[n] = (((t - t0) * height + y) * 2 + p) * width + x
                        n += 1
                        lt = t
                    rv = lv
                    lv = rv + c
                hy[x] = rv + cn
                ly[x] = rv - cf
                last_t[y, x] = lt
    return n, -1, 0


@njit(cache=True)
def _sorted_step(ev, keys, n, noise, t0, height, width):
    """Append ``noise`` rows (t in [t0, t1)) to ``ev[:n]`` (room is the caller's job) and
    return all of them sorted by (t, y, p, x) as a new int64 [N, 2] array."""
    for i in range(noise.shape[0]):
        w0 = noise[i, 0]
        t = noise[i, 1]
        ev[n, 0] = w0
        ev[n, 1] = t
        keys[n] = ((((t - t0) * height + ((w0 >> 16) & 0xFFFF)) * 2 + ((w0 >> 32) & 1)) * width
                   + (w0 & 0xFFFF))
        n += 1
    order = _radix_order(keys, n)
    out = np.empty((n, 2), np.int64)
    for i in range(n):
        k = order[i]
        out[i, 0] = ev[k, 0]
        out[i, 1] = ev[k, 1]
    return out


# ---------------------------------------------------------------------------------------------
# noise

class _Noise:
    """Background activity and hot pixels, generated in fixed 100 ms chunks (so the draws do
    not depend on the step sizes) and handed out per step."""

    CHUNK_US = 100_000

    def __init__(self, rng, height, width, sensor: SensorConfig):
        self.rng, self.h, self.w = rng, height, width
        self.rate = sensor.noise_rate_hz * height * width
        self.on_fraction = sensor.noise_on_fraction
        n_hot = int(rng.poisson(sensor.hot_pixel_fraction * height * width))
        self.hot_pix = rng.choice(height * width, size=n_hot, replace=False) if n_hot else \
            np.zeros(0, np.int64)
        self.hot_rate = rng.uniform(*sensor.hot_pixel_rate_hz, size=n_hot)
        self.hot_on = rng.uniform(0.2, 0.8, size=n_hot)
        self.enabled = self.rate > 0 or n_hot > 0
        self.chunk_start = 0
        self.buf = np.zeros((0, 2), np.int64)
        self.empty = np.zeros((0, 2), np.int64)

    def _chunk(self, c0):
        rng, T = self.rng, self.CHUNK_US
        n = int(rng.poisson(self.rate * T * 1e-6))
        t = [rng.integers(c0, c0 + T, n)]
        pix = [rng.integers(0, self.h * self.w, n)]
        pol = [rng.random(n) < self.on_fraction]
        for k in range(len(self.hot_pix)):
            m = int(rng.poisson(self.hot_rate[k] * T * 1e-6))
            t.append(rng.integers(c0, c0 + T, m))
            pix.append(np.full(m, self.hot_pix[k]))
            pol.append(rng.random(m) < self.hot_on[k])
        t, pix, pol = np.concatenate(t), np.concatenate(pix), np.concatenate(pol)
        order = np.argsort(t, kind="stable")
        words = np.empty((len(t), 2), np.int64)
        pix = pix[order]
        words[:, 0] = (pix % self.w) | ((pix // self.w) << 16) | (pol[order].astype(np.int64) << 32)
        words[:, 1] = t[order]
        return words

    def take(self, t0, t1):
        """Rows with t in [t0, t1) (calls come with non-decreasing, contiguous windows)."""
        if not self.enabled:
            return self.empty
        parts = []
        while True:
            ts = self.buf[:, 1]
            a = np.searchsorted(ts, t0, side="left")
            b = np.searchsorted(ts, t1, side="left")
            parts.append(self.buf[a:b])
            if t1 <= self.chunk_start:
                break
            self.buf = self._chunk(self.chunk_start)
            self.chunk_start += self.CHUNK_US
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


# ---------------------------------------------------------------------------------------------

def _grown(ev, keys, n, size):
    """Scratch buffers of ``size`` rows holding the first ``n`` of the old ones."""
    ev2 = np.empty((size, 2), np.int64)
    keys2 = np.empty(size, np.int64)
    ev2[:n] = ev[:n]
    keys2[:n] = keys[:n]
    return ev2, keys2


def _merge_rects(rects: list[list[int]]) -> list[list[int]]:
    """Replace overlapping rectangles by their bounding rectangle until none overlap."""
    rects = [r for r in rects if r[1] > r[0] and r[3] > r[2]]
    merged = True
    while merged:
        merged = False
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                a, b = rects[i], rects[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    rects[i] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])]
                    del rects[j]
                    merged = True
                    break
            if merged:
                break
    return rects


class EventSimulator:
    """Turn a :class:`Scene` into a stream of EventCD chunks.

    Args:
        scene: what the camera sees.
        sensor: :class:`SensorConfig`.
        rng: generator for the sensor's randomness (thresholds, noise, initial references).
        start_window: ``(lo, hi)``: events before ``lo`` are dropped, and if the first event
            is not before ``hi`` one background event is added at ``lo``. RAW readers shift
            time by an origin taken from the first event (docs/formats.md §7.4); ``(4096, 8192)``
            for EVT 3.0 and ``(0, 64)`` for EVT 2.0 make that origin 0, so shifted and
            unshifted times agree with the boxes. ``hi = None``: no constraint.
    """

    def __init__(self, scene: Scene, sensor: SensorConfig | None = None,
                 rng: np.random.Generator | None = None,
                 start_window: tuple[int, int | None] = (0, None)):
        self.scene = scene
        self.sensor = sensor or SensorConfig()
        self.sensor.validate()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.start_window = start_window
        h, w = scene.height, scene.width
        s = self.sensor
        c = s.contrast_threshold
        lo = max(0.05 * c, 1e-3)
        self.con = np.maximum(self.rng.normal(c, s.threshold_sigma, (h, w)), lo).astype(np.float32)
        self.coff = np.maximum(self.rng.normal(c, s.threshold_sigma, (h, w)), lo).astype(np.float32)
        self.noise = _Noise(self.rng, h, w, s)
        # its own stream, so that the optional start event leaves the noise draws unchanged
        self._start_rng = np.random.default_rng(int(self.rng.integers(1 << 62)))
        self.events_emitted = 0

    def _rects(self, t0, t1):
        sc = self.scene
        h, w = sc.height, sc.width
        if sc.camera_at(t0) != sc.camera_at(t1):
            return [[0, h, 0, w]]
        o = sc.objects
        alive = np.flatnonzero(((o["t_spawn"] <= t0) & (t0 < o["t_end"]))
                               | ((o["t_spawn"] <= t1) & (t1 < o["t_end"])))
        if len(alive) == 0:
            return []
        p0 = sc.params(alive, t0)
        p1 = sc.params(alive, t1)
        x_lo = np.floor(np.minimum(p0[:, 0], p1[:, 0]) - p0[:, 2] - 2).astype(np.int64)
        x_hi = np.ceil(np.maximum(p0[:, 0], p1[:, 0]) + p0[:, 2] + 2).astype(np.int64)
        y_lo = np.floor(np.minimum(p0[:, 1], p1[:, 1]) - p0[:, 3] - 2).astype(np.int64)
        y_hi = np.ceil(np.maximum(p0[:, 1], p1[:, 1]) + p0[:, 3] + 2).astype(np.int64)
        rects = np.stack([np.clip(y_lo, 0, h), np.clip(y_hi, 0, h),
                          np.clip(x_lo, 0, w), np.clip(x_hi, 0, w)], axis=1).tolist()
        rects = _merge_rects(rects)
        if sum((r[1] - r[0]) * (r[3] - r[2]) for r in rects) > 0.7 * h * w:
            return [[0, h, 0, w]]
        return rects

    def chunks(self, chunk_events: int = 1 << 20,
               chunk_us: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t_reached, events)``: EventCD arrays in time order covering the whole
        recording; ``t_reached`` is the simulated time up to which events are complete.

        A chunk is yielded once it holds ``chunk_events`` events or, if ``chunk_us`` is given,
        spans that much simulated time (for progress reports)."""
        sc, s = self.scene, self.sensor
        h, w = sc.height, sc.width
        lcur = np.zeros((h, w), np.float32)
        sc.render(lcur, np.array([[0, h, 0, w]], np.int64), 0, s.log_eps)
        log_tex = sc.log_texture(s.log_eps)
        atlas = sc.sprites(s.log_eps)
        jitter = self.rng.uniform(-0.5, 0.5, (h, w)).astype(np.float32)
        ref = lcur + np.where(jitter > 0, jitter * self.coff, jitter * self.con)
        hi = ref + self.con
        lo = ref - self.coff
        del ref
        last_t = np.full((h, w), _NEVER, np.int64)
        ev = np.empty((1 << 16, 2), np.int64)
        keys = np.empty(1 << 16, np.int64)
        no_rects = np.zeros((0, 4), np.int64)
        parts, pending = [], 0
        t = t_yield = 0
        end = sc.duration_us
        started = False
        win_lo, win_hi = self.start_window

        def finish():
            nonlocal started, parts, pending
            if not parts:
                return np.zeros(0, EventCD)
            block = parts[0] if len(parts) == 1 else np.concatenate(parts)
            parts, pending = [], 0
            out = block.reshape(-1).view(EventCD)
            if not started:
                out = out[out["t"] >= win_lo]
                if len(out):
                    started = True
                    if win_hi is not None and out["t"][0] >= win_hi:
                        out = np.concatenate([self._one_event(win_lo), out], dtype=EventCD)
            self.events_emitted += len(out)
            return out

        while t < end:
            speed = sc.max_screen_speed(t)
            if speed <= 0:
                dt = s.max_step_us
            else:
                dt = int(min(max(s.max_step_px / speed * 1e6, s.min_step_us), s.max_step_us))
            t1 = min(t + dt, end)
            rects = self._rects(t, t1)
            r = np.asarray(rects, dtype=np.int64).reshape(-1, 4) if rects else no_rects
            camx, camy = sc.camera_at(t1)
            objs = sc.params(sc.active(t1), t1)
            n, r_next, y_next = 0, 0, int(r[0, 0]) if len(r) else 0
            while True:
                n, r_next, y_next = _emit(log_tex, camx, camy, objs, atlas, lcur, hi, lo,
                                          last_t, self.con, self.coff, r, t, t1,
                                          int(s.refractory_us), ev, keys, n, r_next, y_next)
                if r_next < 0:
                    break
                ev, keys = _grown(ev, keys, n, 2 * len(keys))
            noise = self.noise.take(t, t1)
            if n + len(noise) > len(keys):
                ev, keys = _grown(ev, keys, n, n + len(noise))
            out = _sorted_step(ev, keys, n, noise, t, h, w)
            if len(out):
                parts.append(out)
                pending += len(out)
            t = t1
            if pending >= chunk_events or (chunk_us is not None and t - t_yield >= chunk_us
                                           and t < end):
                t_yield = t
                yield t, finish()
        tail = finish()
        if not started and win_lo < end:
            tail = self._one_event(win_lo)
            started = True
            self.events_emitted += 1
        yield end, tail

    def _one_event(self, t):
        e = np.zeros(1, EventCD)
        e["x"] = self._start_rng.integers(0, self.scene.width)
        e["y"] = self._start_rng.integers(0, self.scene.height)
        e["p"] = self._start_rng.integers(0, 2)
        e["t"] = t
        return e


__all__ = ["EventSimulator", "SensorConfig"]
