"""Built-in demo dataset: procedurally painted "fantasy places".

Eight scene families -- floating islands, a castle at sunset, an enchanted night forest, a
volcano, frozen peaks under an aurora, desert ruins under two moons, a crystal cavern and a
wizard's tower on a lake -- are painted with numpy and PIL only. Nothing is downloaded, and
every image is reproducible from (seed, family, index).

Usage: ``python dataset.py --make-demo data/fantasy`` calls ``make_demo`` here, which writes
10 images per family as ``{family}_{index:02d}.png``; ``contact_sheet`` draws the labelled
overview used for imgs/dataset.png. ``make_scene`` paints a single image.

How it paints: a float RGB canvas in [0, 1] at twice the output size; shapes are drawn as PIL
masks, composited with numpy, and the result is downsampled with LANCZOS, which anti-aliases
every edge. Scenes are built from smooth gradients, shapes and blurred glows (no per-pixel
noise), so the PNGs stay small.
"""
from __future__ import annotations

import colorsys
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FAMILIES = ("islands", "castle", "forest", "volcano", "frozen", "desert", "crystal", "tower")
WHITE = np.ones(3)


# ------------------------------------------------------------------ colour and canvas helpers

def _rgb(hex_colour):
    """'#rrggbb' -> float RGB in [0, 1]; palettes are written in hex for readability."""
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255.0


def _palette(rng, options, hue=0.025):
    """Pick one hand-tuned palette and nudge its hue and brightness, so a family keeps its mood
    but no two images share exact tones. List entries (e.g. several glow colours) are kept lists."""
    chosen = options[rng.integers(len(options))]
    dh = rng.uniform(-hue, hue)

    def shift(hex_colour):
        h, s, v = colorsys.rgb_to_hsv(*_rgb(hex_colour))
        return np.array(colorsys.hsv_to_rgb((h + dh) % 1.0, s, min(1.0, v * rng.uniform(0.93, 1.07))))

    return {k: [shift(x) for x in v] if isinstance(v, list) else shift(v) for k, v in chosen.items()}


def _mix(a, b, t):
    """Linear blend a -> b; t is a scalar or an (S, S) map that is broadcast over RGB."""
    t = np.asarray(t, dtype=float)
    return a + (b - a) * (t[..., None] if t.ndim == 2 else t)


def _grid(S):
    """Row and column coordinates shaped (S, 1) and (1, S), to broadcast into (S, S) maps."""
    return np.arange(S, dtype=float)[:, None], np.arange(S, dtype=float)[None, :]


def _sky(S, stops):
    """Vertical gradient through (position, colour) stops; position 0 is the top row, 1 the bottom."""
    t = np.linspace(0.0, 1.0, S)
    pos, cols = [p for p, _ in stops], np.array([col for _, col in stops])
    rows = np.stack([np.interp(t, pos, cols[:, i]) for i in range(3)], axis=-1)
    return np.repeat(rows[:, None, :], S, axis=1)


def _paint(c, colour, mask):
    """Alpha-composite a colour (RGB triple or per-pixel image) onto the canvas, in place."""
    m = np.clip(mask, 0, 1)[..., None]
    c *= 1.0 - m
    c += m * colour


def _light(c, colour, amount):
    """Add light with a screen blend: overlapping glows brighten towards white instead of clipping flat."""
    c[:] = 1.0 - (1.0 - c) * (1.0 - np.clip(amount, 0, 1)[..., None] * colour)


def _new_mask(S):
    """Blank 8-bit PIL mask plus a drawer; shapes are drawn here, then turned into float arrays."""
    img = Image.new("L", (S, S), 0)
    return img, ImageDraw.Draw(img)


def _arr(img):
    return np.asarray(img, dtype=np.float32) / 255.0


def _blur(mask, radius):
    """Gaussian blur of a float mask via PIL (8 bits are plenty for soft glows)."""
    img = Image.fromarray((np.clip(mask, 0, 1) * 255 + 0.5).astype(np.uint8))
    return _arr(img.filter(ImageFilter.GaussianBlur(radius)))


def _radial(S, cx, cy, r):
    """Gaussian falloff around a point: a cheap halo for suns, moons and lamps."""
    y, x = _grid(S)
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (r * r))


def _disc(S, cx, cy, r):
    """Filled circle with a one-pixel soft edge."""
    y, x = _grid(S)
    return np.clip(r - np.hypot(x - cx, y - cy) + 0.5, 0, 1)


def _rim(mask, toward, k):
    """The band of a shape that faces a light in direction `toward` = (dy, dx): the mask minus
    itself moved k pixels away from the light. Gives sunlit edges and split lit/shaded faces."""
    moved = np.roll(mask, (-toward[0] * int(k), -toward[1] * int(k)), axis=(0, 1))
    return mask * (1 - moved)


def _noise(rng, n, feature, octaves=4, rough=0.5):
    """1-D fractal value noise of length n, roughly in [-1, 1]; `feature` is the widest bump in pixels."""
    pos, out, total, amp = np.arange(n, dtype=float), np.zeros(n), 0.0, 1.0
    for _ in range(octaves):
        step = max(feature, 2.0)
        knots = rng.uniform(-1, 1, int(n / step) + 2)
        i = (pos / step).astype(int)
        f = pos / step - i
        f = f * f * (3 - 2 * f)  # smoothstep, so the curve has no kinks at the knots
        out += amp * (knots[i] * (1 - f) + knots[i + 1] * f)
        total, amp, feature = total + amp, amp * rough, feature / 2
    return out / total


def _ridge(rng, S, base, amp, feature, octaves=5, rough=0.5):
    """Skyline row per column; base, amp and feature (widest hill) are fractions of the image."""
    return S * (base + amp * _noise(rng, S, feature * S, octaves, rough))


def _below(h, S):
    """Soft mask of the pixels under a per-column height line."""
    y, _ = _grid(S)
    return np.clip(y - h + 0.5, 0, 1)


def _stars(c, rng, n, horizon):
    """n stars above row `horizon`, denser and brighter high up; bigger ones get a small halo."""
    img, d = _new_mask(c.shape[0])
    for _ in range(n):
        x, y = rng.uniform(0, c.shape[0]), horizon * rng.uniform(0, 1) ** 1.4
        r = rng.choice((1.0, 1.4, 2.2), p=(0.6, 0.3, 0.1))
        d.ellipse((x - r, y - r, x + r, y + r), fill=int(255 * rng.uniform(0.4, 1) * (1 - y / horizon) ** 0.4))
    m = _arr(img)
    _light(c, WHITE, m + 1.2 * _blur(m, 3))


def _star_count(rng, sky_top):
    """More stars the darker the sky top is; none in a bright day sky."""
    return int(rng.integers(120, 220) * np.clip(1.2 - 3.5 * sky_top.mean(), 0, 1))


def _clouds(c, rng, n, y0, y1, size, shade, lit, toward=(-1, 0), squash=0.6, floor=None, alpha=1.0):
    """Soft clouds: clusters of ellipses whose bottoms roughly line up (flat bases), blurred, with
    the edge facing the light in `lit` and the rest in `shade`. `floor` fills everything below it
    (a sea of cloud)."""
    S = c.shape[0]
    img, d = _new_mask(S)
    for _ in range(n):
        cx, cy, w = rng.uniform(-0.1, 1.1) * S, rng.uniform(y0, y1) * S, size * S * rng.uniform(0.6, 1.4)
        for _ in range(rng.integers(5, 10)):
            rx = w * rng.uniform(0.15, 0.35)
            ry = rx * squash * rng.uniform(0.7, 1.2)
            ex, ey = cx + w * rng.uniform(-0.5, 0.5), cy - ry * rng.uniform(0.2, 1.0)
            d.ellipse((ex - rx, ey - ry, ex + rx, ey + ry), fill=255)
    if floor is not None:
        d.rectangle((0, floor * S, S, S), fill=255)
    m = _blur(_arr(img), 0.008 * S)
    k = int(0.04 * S)  # self-shadowing: the more cloud lies toward the light, the darker a point is
    occluded = _blur(np.roll(m, (-toward[0] * k, -toward[1] * k), axis=(0, 1)), 0.02 * S)
    _paint(c, _mix(lit, shade, occluded), m * alpha)


def _moon(c, rng, x, y, r, colour, halo):
    """A moon: halo, disc, and a few soft darker 'seas'."""
    S = c.shape[0]
    _light(c, colour, halo * _radial(S, x, y, 4 * r))
    img, d = _new_mask(S)
    for _ in range(rng.integers(3, 7)):
        a, dist, cr = rng.uniform(0, 2 * np.pi), r * rng.uniform(0, 0.7), r * rng.uniform(0.1, 0.3)
        cx, cy = x + dist * np.cos(a), y + dist * np.sin(a)
        d.ellipse((cx - cr, cy - cr, cx + cr, cy + cr), fill=255)
    disc = _disc(S, x, y, r)
    _paint(c, colour, disc)
    _paint(c, colour * 0.8, 0.6 * _blur(_arr(img), 0.1 * r) * disc)


def _reflect(c, rng, y0, water, tint=0.3):
    """Mirror the picture above row y0 into the water below it: each row is shifted sideways by a
    wave that grows toward the viewer (ripples), slightly blurred, and tinted toward the water
    colour with distance from the shore."""
    S, y0 = c.shape[0], int(y0)
    k = np.arange(S - y0)
    near = k / max(len(k), 1)
    shift = S * 0.006 * (0.3 + near) * np.sin(k * 0.45 * (1 - 0.5 * near) + rng.uniform(0, 2 * np.pi))
    cols = np.clip((np.arange(S)[None, :] + shift[:, None]).astype(int), 0, S - 1)
    refl = c[np.clip(y0 - 1 - k, 0, S - 1)[:, None], cols]
    img = Image.fromarray((np.clip(refl, 0, 1) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5))
    t = (tint + 0.35 * near)[:, None, None]
    c[y0:] = (np.asarray(img) / 255.0) * (1 - t) + water * t
    c[y0:y0 + 2] = 0.5 * c[y0:y0 + 2] + 0.5 * c[y0 - 3:y0 - 1].mean(axis=1, keepdims=True)  # bright shoreline


def _window(d, x, y, r):
    """An arched window (rectangle with a round top) of half-width r."""
    d.rectangle((x - r, y, x + r, y + 2.2 * r), fill=255)
    d.ellipse((x - r, y - r, x + r, y + r), fill=255)


def _pine(d, rng, x, ground, h):
    """A conifer silhouette: four stacked triangles on a short trunk."""
    w = h * rng.uniform(0.28, 0.38)
    d.rectangle((x - 0.05 * w, ground - 0.15 * h, x + 0.05 * w, ground), fill=255)
    for k in range(4):
        top = ground - h + k * 0.2 * h
        half = w * (0.3 + 0.22 * k)
        d.polygon([(x, top), (x - half, top + 0.35 * h), (x + half, top + 0.35 * h)], fill=255)


def _finish(c, size, vignette=0.3):
    """Darken the corners a little (frames the scene), quantise, and downsample with LANCZOS."""
    S = c.shape[0]
    y, x = _grid(S)
    r2 = ((x - S / 2) ** 2 + (y - S / 2) ** 2) / (S / 2) ** 2
    c = c * (1 - vignette * np.clip(r2 - 0.35, 0, 1))[..., None]
    img = Image.fromarray((np.clip(c, 0, 1) * 255 + 0.5).astype(np.uint8))
    return img.resize((size, size), Image.Resampling.LANCZOS)


# ------------------------------------------------------------------ 1. floating islands

def _island(c, rng, cx, ty, w, p, haze, falls):
    """One floating island centred at column cx with its grass top near row ty and half-width w:
    domed grass cap, a ragged rocky cone underneath, trees, and `falls` waterfalls pouring off the
    lip. `haze` fades everything toward the sky colour (distance)."""
    S = c.shape[0]
    y, x = _grid(S)
    u = (np.arange(S) - cx) / w
    top = ty + 0.12 * w * u ** 6 + 0.04 * w * _noise(rng, S, 0.4 * w, 3)
    depth = w * rng.uniform(0.8, 1.4)
    cone = np.clip(1 - np.abs(u), 0, 1) ** rng.uniform(0.6, 1.0)
    bottom = np.where(np.abs(u) < 1, ty + 0.1 * w + depth * cone * (1 + 0.35 * _noise(rng, S, 0.12 * w, 4, 0.6)), -1.0)
    body = np.clip(y - top + 0.5, 0, 1) * np.clip(bottom - y + 0.5, 0, 1)
    # rock darkens toward the tip, is streaked by vertical crags and faint strata, and is lit on the sun's side
    crags = (0.75 + 0.25 * _noise(rng, S, 0.05 * w, 2)) * (1 + 0.25 * p["light"] * np.clip(u, -1, 1))
    strata = 0.92 + 0.08 * np.sin((y - ty) / (0.06 * w) * 2 * np.pi)
    soil = np.clip(top + 0.18 * w - y, 0, 1) * 0.35  # a lighter earth layer under the turf
    rock = p["rock"] * ((1 - 0.6 * np.clip((y - ty) / depth, 0, 1)) * (1 + soil) * strata * crags)[..., None]
    # grass hangs over the lip unevenly
    grass = np.clip(top + 0.07 * w * (1 + 0.6 * _noise(rng, S, 0.08 * w, 3)) - y, 0, 1)
    _paint(c, _mix(_mix(rock, p["grass"], grass), p["haze"], haze), body)
    if w > 0.1 * S:  # round trees on the bigger islands, lit from above
        img, d = _new_mask(S)
        for _ in range(rng.integers(2, 7)):
            tx = cx + w * rng.uniform(-0.75, 0.75)
            base, r = top[int(np.clip(tx, 0, S - 1))] + 2, w * rng.uniform(0.05, 0.1)
            d.rectangle((tx - 0.15 * r, base - 1.6 * r, tx + 0.15 * r, base), fill=255)
            for ox, oy in rng.normal(0, 0.35 * r, (3, 2)):
                rr = r * rng.uniform(0.6, 1.0)
                d.ellipse((tx + ox - rr, base - 1.8 * r + oy - rr, tx + ox + rr, base - 1.8 * r + oy + rr), fill=255)
        trees = _arr(img)
        leaf = _mix(p["grass"] * 0.45, p["grass"] * 1.1, _blur(_rim(trees, (-1, 0), 0.2 * w * 0.1), 1))
        _paint(c, _mix(leaf, p["haze"], haze), trees)
    spray = []  # where each waterfall ends up, for the mist it raises
    for _ in range(falls):
        side = rng.choice((-1, 1))
        xf = np.clip(cx + side * w * rng.uniform(0.3, 0.75), 0, S - 1)
        y0, wf = top[int(xf)] + 0.03 * w, w * rng.uniform(0.035, 0.06)
        drop = np.clip(y - y0, 0, None)
        xc = xf + side * 1.5 * wf * (1 - np.exp(-drop / (0.15 * w)))  # water arcs out as it leaves the lip
        half = 0.5 * wf * (1 + drop / (0.5 * S))  # and spreads as it falls
        streaks = 0.8 + 0.2 * np.sin((x - xc) / half * 4 + side)
        fade = (1 - np.clip(drop / (S - y0), 0, 1)) ** 0.6
        m = np.clip(1.6 * (1 - np.abs(x - xc) / half), 0, 1) * (y > y0) * fade * streaks
        _paint(c, p["water"], 0.9 * (1 - 0.5 * haze) * m)
        spray.append(xf + side * 1.5 * wf)
    return spray


def _scene_islands(rng, S):
    p = _palette(rng, [
        dict(top="#2f6fc4", mid="#8cc4ef", low="#eef3f0", sun="#fff6dc", rock="#6e5444", grass="#5aa83c",
             water="#eefaff", cloud="#ffffff", shadow="#b5c6dc"),
        dict(top="#3c3f8f", mid="#d889a8", low="#ffd9a8", sun="#ffe6b8", rock="#5e4150", grass="#6aa84a",
             water="#fff2f0", cloud="#fff2e6", shadow="#c79bb0"),
        dict(top="#186a86", mid="#74cfc4", low="#eefbe6", sun="#f8ffe6", rock="#4f4a5e", grass="#3f9f6c",
             water="#eafffb", cloud="#ffffff", shadow="#a6cfcf"),
        dict(top="#4a78b0", mid="#f0c890", low="#fff0d0", sun="#fff8e0", rock="#7a5a3c", grass="#8ab840",
             water="#fffaf0", cloud="#fffaf0", shadow="#d8b8a0"),
    ])
    sx, sy = S * rng.uniform(0.15, 0.85), S * rng.uniform(0.1, 0.35)
    p["haze"] = _mix(p["mid"], p["low"], 0.4)
    p["light"] = np.sign(sx - S / 2)  # islands are lit on the sun's side
    c = _sky(S, [(0, p["top"]), (0.55, p["mid"]), (0.85, p["low"]), (1, p["low"])])
    _light(c, p["sun"], 0.7 * _radial(S, sx, sy, 0.3 * S) + _disc(S, sx, sy, 0.04 * S))
    _clouds(c, rng, rng.integers(2, 5), 0.1, 0.45, 0.22, p["shadow"], p["cloud"], alpha=0.85)
    for _ in range(rng.integers(2, 5)):  # distant islands, pale with haze
        _island(c, rng, S * rng.uniform(0, 1), S * rng.uniform(0.35, 0.6), S * rng.uniform(0.04, 0.08), p,
                haze=rng.uniform(0.5, 0.7), falls=int(rng.random() < 0.5))
    _clouds(c, rng, 10, 0.72, 0.8, 0.25, p["shadow"], p["cloud"], floor=0.78, alpha=0.7)
    n, spray = rng.integers(1, 3), []
    for i in range(n):
        cx = S * (0.5 + rng.uniform(-0.15, 0.15) if n == 1 else 0.28 + 0.44 * i + rng.uniform(-0.06, 0.06))
        w = S * (rng.uniform(0.2, 0.28) if n == 1 else rng.uniform(0.13, 0.19))
        spray += _island(c, rng, cx, S * rng.uniform(0.32, 0.5), w, p, haze=0.12 * i, falls=rng.integers(1, 3))
    _clouds(c, rng, 12, 0.86, 0.95, 0.3, p["shadow"], p["cloud"], floor=0.93)  # cloud sea swallows the falls
    for x in spray:
        _light(c, p["water"], 0.6 * _radial(S, x, 0.86 * S, 0.05 * S))
    return c


# ------------------------------------------------------------------ 2. castle on a cliff at sunset

def _merlons(d, x0, x1, y, m):
    """Battlements: teeth of width m along the top edge y of a wall from x0 to x1."""
    for x in np.arange(x0, x1 - 0.5 * m, 2 * m):
        d.rectangle((x, y - m, x + m, y), fill=255)


def _castle_shape(rng, d, win, cx, base, u):
    """Curtain wall and towers (crenellated, or with conical roofs and pennants) standing on row
    `base`, drawn into d; windows go into win, some of them lit. u is the unit size (a merlon)."""
    half, wall_top = u * rng.uniform(3.0, 4.5), base - u * rng.uniform(1.5, 2.5)
    d.rectangle((cx - half, wall_top, cx + half, base + 3 * u), fill=255)
    _merlons(d, cx - half, cx + half, wall_top, 0.4 * u)
    xs = np.linspace(cx - half, cx + half, rng.integers(3, 6))
    keep, flag = rng.integers(1, len(xs) - 1), rng.choice((-1, 1))
    for i, tx in enumerate(xs):
        tw = u * rng.uniform(0.9, 1.5) * (1.5 if i == keep else 1)
        top = wall_top - u * rng.uniform(1.5, 4) - (u * rng.uniform(2, 4) if i == keep else 0)
        d.rectangle((tx - tw / 2, top, tx + tw / 2, base + u), fill=255)
        if rng.random() < 0.6:
            tip = top - tw * rng.uniform(1.2, 2.0)
            d.polygon([(tx - tw / 2 - 0.25 * u, top), (tx + tw / 2 + 0.25 * u, top), (tx, tip)], fill=255)
            d.line([(tx, tip), (tx, tip - 0.8 * u)], fill=255, width=max(1, int(0.15 * u)))
            d.polygon([(tx, tip - 0.8 * u), (tx + 0.7 * u * flag, tip - 0.6 * u), (tx, tip - 0.4 * u)], fill=255)
        else:
            d.rectangle((tx - tw / 2 - 0.2 * u, top - 0.3 * u, tx + tw / 2 + 0.2 * u, top + 0.3 * u), fill=255)
            _merlons(d, tx - tw / 2 - 0.2 * u, tx + tw / 2 + 0.2 * u, top - 0.3 * u, 0.35 * u)
        for wy in np.arange(top + 0.9 * u, base - 0.8 * u, 1.5 * u):
            if rng.random() < 0.55:
                _window(win, tx, wy, 0.16 * tw)
    for wx in np.linspace(cx - half + u, cx + half - u, 5):
        if rng.random() < 0.4:
            _window(win, wx, wall_top + 0.7 * u, 0.22 * u)


def _scene_castle(rng, S):
    p = _palette(rng, [
        dict(top="#241d4f", mid="#c2527a", low="#ffb15c", sun="#fff1b8", far="#9c5c8a", near="#1e1226",
             window="#ffc860", cloud="#ff9a7a", cloud_dark="#6a3a6a"),
        dict(top="#33407c", mid="#ef8a4c", low="#ffe29a", sun="#fffbe0", far="#c07a6a", near="#2a1a22",
             window="#ffd070", cloud="#ffc08a", cloud_dark="#7a4a5a"),
        dict(top="#17163a", mid="#8c2e5c", low="#ff7448", sun="#ffd0a0", far="#7a3a5c", near="#140a18",
             window="#ffb050", cloud="#ff7a6a", cloud_dark="#4a2040"),
        dict(top="#54649e", mid="#eea2aa", low="#ffe3ba", sun="#fffaf0", far="#b08aa6", near="#35243e",
             window="#ffd890", cloud="#ffd0c0", cloud_dark="#8a6a8a"),
    ])
    y, _ = _grid(S)
    c = _sky(S, [(0, p["top"]), (0.45, p["mid"]), (0.7, p["low"]), (1, p["low"])])
    side = rng.choice((-1, 1))  # the cliff stands on this side; the sun sets on the other
    sx, sy = S * (0.5 - side * rng.uniform(0.1, 0.3)), S * rng.uniform(0.5, 0.62)
    _light(c, p["sun"], 0.85 * _radial(S, sx, sy, 0.35 * S) + _disc(S, sx, sy, S * rng.uniform(0.04, 0.07)))
    _clouds(c, rng, rng.integers(3, 7), 0.1, 0.45, 0.3, p["cloud_dark"], p["cloud"], toward=(1, 0), squash=0.25,
            alpha=0.9)
    for i in range(4):  # hills: the far ones take the hazy horizon colour, the near ones go to silhouette
        base = 0.6 + 0.09 * i
        _paint(c, _mix(p["far"], p["near"], (i / 3) ** 0.8), _below(_ridge(rng, S, base, 0.04 + 0.02 * i, 0.5), S))
        if i < 3:  # mist in the valleys between layers
            _light(c, p["low"], 0.25 * np.exp(-((y - (base + 0.05) * S) / (0.03 * S)) ** 2))
    # cliff: a plateau from the image border to `edge`, then a jagged face down to the bottom
    img, d = _new_mask(S)
    top_y, edge = S * rng.uniform(0.42, 0.52), S * rng.uniform(0.42, 0.6)
    plateau = [(t * edge, top_y + 0.01 * S * rng.normal()) for t in np.linspace(0, 1, 8)]
    face = [(edge + t * S * 0.15 + 0.025 * S * rng.normal(), top_y + t * (S - top_y)) for t in np.linspace(0.1, 1, 9)]
    pts = [(-5, S + 5)] + plateau + face + [(edge, S + 5)]
    d.polygon([(x if side < 0 else S - x, yy) for x, yy in pts], fill=255)
    win_img, win = _new_mask(S)
    cx = edge * rng.uniform(0.4, 0.7)
    _castle_shape(rng, d, win, cx if side < 0 else S - cx, top_y + 2, 0.026 * S)
    for _ in range(rng.integers(0, 6)):  # a few birds
        bx, by, bw = S * rng.uniform(0.2, 0.8), S * rng.uniform(0.15, 0.4), S * rng.uniform(0.008, 0.015)
        d.line([(bx - bw, by - 0.5 * bw), (bx, by), (bx + bw, by - 0.5 * bw)], fill=255, width=2)
    m = _arr(img)
    rim = _blur(_rim(m, (0, -side), 0.006 * S), 1.5)
    _paint(c, _mix(p["near"], p["far"] * 1.4, rim), m)
    w = _arr(win_img)
    _paint(c, p["window"], w)
    _light(c, p["window"], 0.8 * _blur(w, 0.01 * S) + 0.3 * _blur(w, 0.04 * S))
    return c
