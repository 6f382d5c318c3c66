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
    _puffs(c, _blur(_arr(img), 0.008 * S), toward, lit, shade, alpha)


def _puffs(c, m, toward, lit, shade, alpha=1.0):
    """Paint a soft cloud/smoke mask with self-shadowing: the more of it lies toward the light
    (direction `toward` = (dy, dx)), the darker a point is."""
    S = c.shape[0]
    k = int(0.04 * S)
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


# ------------------------------------------------------------------ 3. enchanted night forest

def _trunk(d, rng, x, ground, width, S):
    """A tree trunk from the ground to above the frame: slight lean and wobble, a taper, flared
    roots, and up to two bare branches."""
    t = np.linspace(0, 1, 14) ** 2  # points bunched near the base, where the roots flare
    ys = ground - t * (ground + 0.05 * S)
    xs = x + rng.normal(0, 0.06) * S * t + 0.15 * width * np.sin(t * rng.uniform(3, 7) + rng.uniform(0, 6))
    half = 0.5 * width * (1 - 0.3 * t) * (1 + 1.5 * np.exp(-t * 25))
    d.polygon(list(zip(xs - half, ys)) + list(zip(xs + half, ys))[::-1], fill=255)
    for _ in range(rng.integers(0, 3)):
        i, side, length = rng.integers(6, 12), rng.choice((-1, 1)), width * rng.uniform(2, 5)
        d.polygon([(xs[i], ys[i] - 0.25 * width), (xs[i], ys[i] + 0.25 * width),
                   (xs[i] + side * length, ys[i] - length * rng.uniform(0.4, 1.0))], fill=255)


def _mushrooms(c, rng, x, ground, size, glow, stem):
    """A cluster of glowing mushrooms at (x, ground): pale stems, domed caps, light spilling around."""
    S = c.shape[0]
    caps_img, dc = _new_mask(S)
    stems_img, ds = _new_mask(S)
    for _ in range(rng.integers(2, 6)):
        h, mx = size * rng.uniform(0.4, 1.1), x + rng.normal(0, 0.5 * size)
        r, tx, ty = h * rng.uniform(0.45, 0.8), mx + rng.normal(0, 0.15) * h, ground - h
        ds.polygon([(mx - 0.14 * r, ground + 2), (mx + 0.14 * r, ground + 2), (tx + 0.1 * r, ty), (tx - 0.1 * r, ty)],
                   fill=255)
        dc.pieslice((tx - r, ty - 0.75 * r, tx + r, ty + 0.75 * r), 180, 360, fill=255)
        dc.ellipse((tx - r, ty - 0.15 * r, tx + r, ty + 0.15 * r), fill=255)  # rounded lip under the dome
    caps = _arr(caps_img)
    _light(c, glow, 0.5 * _radial(S, x, ground, 1.6 * size))
    _paint(c, stem, _arr(stems_img))
    _paint(c, _mix(glow, WHITE, 0.35), caps)
    _light(c, glow, 0.8 * _blur(caps, 0.02 * S) + 0.5 * _blur(caps, 0.06 * S))


def _scene_forest(rng, S):
    p = _palette(rng, [
        dict(top="#070b24", low="#1c3a5c", fog="#3f7fa0", trunk="#04060c", stem="#b8c8d8",
             glow=["#5ff3ff", "#7dff9c", "#c486ff"], fly="#eaff8a"),
        dict(top="#120a28", low="#3b2a62", fog="#7a58b0", trunk="#07040e", stem="#d0c0e0",
             glow=["#ff6ad5", "#6ae8ff", "#b58cff"], fly="#ffe68a"),
        dict(top="#02131a", low="#0d3b3c", fog="#2d8070", trunk="#020a0a", stem="#c0d8c8",
             glow=["#b8ff5a", "#5affd0", "#ffd25a"], fly="#f4ff9a"),
    ])
    y, _ = _grid(S)
    c = _sky(S, [(0, p["top"]), (0.75, p["low"]), (1, p["low"])])
    if rng.random() < 0.6:
        _moon(c, rng, S * rng.uniform(0.2, 0.8), S * rng.uniform(0.1, 0.3), 0.04 * S, _mix(p["fog"], WHITE, 0.8), 0.5)
    shafts, ds = _new_mask(S)  # moonbeams slanting through the canopy
    for _ in range(rng.integers(2, 5)):
        x0, w0, slant = S * rng.uniform(0.1, 0.9), S * rng.uniform(0.02, 0.05), S * rng.uniform(-0.25, 0.25)
        ds.polygon([(x0 - w0, 0), (x0 + w0, 0), (x0 + slant + 2.5 * w0, 0.9 * S), (x0 + slant - 2.5 * w0, 0.9 * S)],
                   fill=int(255 * rng.uniform(0.3, 0.7)))
    # three depths of trunks; the far ones sink into glowing fog, the near ones frame the picture
    for row, haze, count, width in ((0.64, 0.6, 16, 0.018), (0.73, 0.42, 10, 0.03), (0.86, 0.0, 5, 0.07)):
        ground = _ridge(rng, S, row, 0.025, 0.4, 3)
        img, d = _new_mask(S)
        for _ in range(count):
            tx = rng.uniform(-0.05, 1.05) if haze else rng.choice((rng.uniform(-0.05, 0.3), rng.uniform(0.7, 1.05)))
            tx *= S
            _trunk(d, rng, tx, ground[int(np.clip(tx, 0, S - 1))], width * S * rng.uniform(0.7, 1.3), S)
        _paint(c, _mix(p["trunk"], p["fog"], haze), np.maximum(_arr(img), _below(ground, S)))
        if haze:
            _light(c, p["fog"], 0.35 * np.exp(-((y - row * S) / (0.05 * S)) ** 2))
        if width == 0.03:
            _light(c, _mix(p["fog"], WHITE, 0.5), 0.25 * _blur(_arr(shafts), 0.03 * S) * (1 - y / S))
    canopy, d = _new_mask(S)  # dark foliage hanging into the top of the frame
    for _ in range(rng.integers(10, 18)):
        fx, fy, r = S * rng.uniform(-0.1, 1.1), S * rng.uniform(-0.12, 0.06), S * rng.uniform(0.06, 0.14)
        d.ellipse((fx - r, fy - 0.7 * r, fx + r, fy + 0.7 * r), fill=255)
    _paint(c, p["trunk"], _blur(_arr(canopy), 2))
    for _ in range(rng.integers(2, 5)):
        mx = S * rng.uniform(0.1, 0.9)
        _mushrooms(c, rng, mx, S * rng.uniform(0.86, 0.95), S * rng.uniform(0.06, 0.11),
                   p["glow"][rng.integers(len(p["glow"]))], p["stem"])
    flies, d = _new_mask(S)
    for _ in range(rng.integers(25, 60)):
        fx, fy, r = S * rng.uniform(0, 1), S * rng.uniform(0.3, 0.92), rng.uniform(1.2, 2.4)
        d.ellipse((fx - r, fy - r, fx + r, fy + r), fill=int(255 * rng.uniform(0.5, 1)))
    m = _arr(flies)
    _light(c, p["fly"], m + 2.5 * _blur(m, 0.012 * S))
    return c


# ------------------------------------------------------------------ 4. volcano and lava rivers

def _lava_river(rng, x0, y0, S):
    """Course of a lava river from (x0, y0) near the horizon down past the bottom edge, meandering
    more and widening toward the viewer (perspective): centre columns, rows, half-widths."""
    t = np.linspace(0, 1, 40)
    ys = y0 + (1.05 * S - y0) * t
    xs = x0 + S * rng.uniform(-0.3, 0.3) * t + S * 0.1 * t * np.sin(t * rng.uniform(5, 9) + rng.uniform(0, 6))
    return xs, ys, S * (0.004 + 0.06 * t ** 2)


def _band(d, xs, ys, half):
    """Fill the band of the given half-width around a centre line (x, y points)."""
    d.polygon(list(zip(xs - half, ys)) + list(zip(xs + half, ys))[::-1], fill=255)


def _scene_volcano(rng, S):
    p = _palette(rng, [
        dict(top="#240808", mid="#7e1a10", low="#ff6a28", far="#5a1c18", rock="#2a1412", near="#0c0606",
             lava="#ff5a10", core="#ffe07a", smoke="#4a3434"),
        dict(top="#180822", mid="#641032", low="#e24a2a", far="#4a1428", rock="#220e18", near="#0a0408",
             lava="#ff4a1a", core="#ffd06a", smoke="#44283a"),
        dict(top="#38180e", mid="#a83c16", low="#ffa03c", far="#6a2a18", rock="#301a10", near="#0e0805",
             lava="#ff7a1a", core="#fff09a", smoke="#5a4a46"),
    ])
    y, x = _grid(S)
    c = _sky(S, [(0, p["top"]), (0.5, p["mid"]), (0.72, p["low"]), (1, p["low"])])
    vx, peak, foot = S * rng.uniform(0.32, 0.68), S * rng.uniform(0.3, 0.42), 0.74 * S
    crater, spread = S * rng.uniform(0.035, 0.06), S * rng.uniform(0.32, 0.5)
    # ash plume bending with the wind, lit from below by the crater
    img, d = _new_mask(S)
    wind = rng.uniform(-0.5, 0.5)
    for t in np.linspace(0, 1, 30):
        px, py, r = vx + wind * S * t ** 1.5 + 0.03 * S * rng.normal(), peak - 0.5 * S * t, S * (0.03 + 0.13 * t)
        for ox, oy in rng.normal(0, 0.5 * r, (3, 2)):  # billows
            rr = r * rng.uniform(0.5, 0.9)
            d.ellipse((px + ox - rr, py + oy - rr, px + ox + rr, py + oy + rr), fill=255)
    plume = _blur(_arr(img), 0.012 * S)
    _puffs(c, plume, (1, 0), _mix(p["smoke"], p["lava"], 0.55), p["smoke"] * 0.6, 0.95)
    if rng.random() < 0.4:  # lightning inside the ash cloud
        img, d = _new_mask(S)
        bx, by = vx + wind * S * 0.4, peak - 0.35 * S
        pts = [(bx, by)]
        for _ in range(8):
            bx, by = bx + 0.03 * S * rng.normal(), by + 0.025 * S
            pts.append((bx, by))
        d.line(pts, fill=255, width=2)
        bolt = _arr(img)
        _light(c, _rgb("#e8d8ff"), bolt + _blur(bolt, 0.02 * S) + 0.3 * _blur(bolt, 0.08 * S))
    for i in range(2):  # far ridges, hazy with the red glow of the horizon
        _paint(c, _mix(p["far"], p["low"], 0.45 - 0.2 * i), _below(_ridge(rng, S, 0.64 + 0.04 * i, 0.03, 0.35), S))
    # the cone: steep near the crater and flattening toward the foot (a concave profile)
    s = np.linspace(0, 1, 14)
    dx, dy = crater + (spread - crater) * s, peak + (foot + 0.05 * S - peak) * (1 - (1 - s) ** 2)
    jag = 0.012 * S * rng.normal(size=(2, 14)) * s
    left = list(zip(vx - dx + jag[0], dy + jag[1]))[::-1]
    right = list(zip(vx + dx + jag[1], dy + jag[0]))
    dip = [(vx - 0.4 * crater, peak + 0.35 * crater), (vx + 0.4 * crater, peak + 0.35 * crater)]
    img, d = _new_mask(S)
    d.polygon(left + dip + right, fill=255)
    side_lit = 1 + 0.35 * np.tanh((vx - x) / (0.05 * S) - (y - peak) / (0.2 * S))  # the flank facing the sky glow
    _paint(c, p["rock"] * side_lit[..., None], _arr(img))
    _light(c, p["lava"], 0.8 * _radial(S, vx, peak, 0.07 * S) + 0.3 * _radial(S, vx, peak, 0.2 * S))
    # lava streams down the flank, widening as they go
    img, d = _new_mask(S)
    for _ in range(rng.integers(2, 5)):
        reach, drift, wob = rng.uniform(0.4, 0.95), rng.uniform(-0.8, 0.8), rng.uniform(0, 6)
        pts = []
        for t in np.linspace(0, 1, 14):
            yy = peak + 0.3 * crater + (foot - peak) * reach * t
            half_width = crater + (spread - crater) * (1 - np.sqrt(max(0.0, 1 - (yy - peak) / (foot + 0.05 * S - peak))))
            pts.append((vx + half_width * (drift * t + 0.12 * np.sin(6 * t + wob)), yy))
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            wd = 2 + 0.012 * S * (y0 - peak) / (foot - peak)
            d.line([(x0, y0), (x1, y1)], fill=255, width=int(wd))
            d.ellipse((x1 - wd / 2, y1 - wd / 2, x1 + wd / 2, y1 + wd / 2), fill=255)
    flows = _arr(img)
    _paint(c, p["lava"], flows)
    _light(c, p["core"], 0.6 * _blur(flows, 1.5) + 0.5 * _blur(flows, 0.02 * S))
    # dark plain with rivers of lava running toward the viewer
    _paint(c, _mix(p["far"] * 0.7, p["near"], np.clip((y - 0.74 * S) / (0.12 * S), 0, 1)),
           _below(_ridge(rng, S, 0.75, 0.015, 0.3, 3), S))
    river, dr = _new_mask(S)
    core, dc = _new_mask(S)
    for _ in range(rng.integers(1, 3)):
        xs, ys, half = _lava_river(rng, vx + rng.uniform(-0.3, 0.3) * spread, 0.76 * S, S)
        _band(dr, xs, ys, half)
        _band(dc, xs, ys, 0.4 * half)  # the hottest, brightest middle of the stream
    river, core = _arr(river), _blur(_arr(core), 0.006 * S)
    _light(c, p["lava"], 0.6 * _blur(river, 0.03 * S) + 0.3 * _blur(river, 0.1 * S))
    _paint(c, _mix(p["lava"], p["core"], core), river)
    _light(c, p["core"], 0.5 * _blur(river, 0.01 * S))
    img, d = _new_mask(S)  # jagged rocks framing the foreground
    for side in (-1, 1):
        if rng.random() < 0.7:
            edge, base = (0 if side < 0 else S), S * rng.uniform(0.7, 0.85)
            pts = [(edge, S), (edge, base)]
            for t in np.linspace(0.1, 1, 7):
                pts.append((edge - side * S * rng.uniform(0.15, 0.3) * t, base + (S - base) * t ** 2
                            - 0.06 * S * rng.uniform(0, 1) * (1 - t)))
            d.polygon(pts + [(edge - side * 0.3 * S, S)], fill=255)
    rocks = _arr(img)
    _paint(c, _mix(p["near"], p["lava"], 0.5 * _blur(_rim(rocks, (-1, 0), 0.01 * S), 2)), rocks)
    img, d = _new_mask(S)  # embers thrown up from the crater
    for _ in range(rng.integers(30, 70)):
        ex, ey, r = vx + S * rng.normal(0, 0.12), peak - S * rng.uniform(-0.1, 0.35), rng.uniform(1, 2.2)
        d.ellipse((ex - r, ey - r, ex + r, ey + r), fill=int(255 * rng.uniform(0.4, 1)))
    m = _arr(img)
    _light(c, _mix(p["lava"], p["core"], 0.5), m + 1.5 * _blur(m, 0.01 * S))
    return c


# ------------------------------------------------------------------ 5. frozen peaks under an aurora

def _aurora(c, rng, low_col, high_col):
    """An aurora curtain: a wavy, sharp lower hem, fine vertical rays fading upward, one colour at
    the hem turning into the other at the top."""
    S = c.shape[0]
    y, x = _grid(S)
    hem = S * (rng.uniform(0.3, 0.45) + 0.12 * _noise(rng, S, 0.5 * S, 3))
    height = S * rng.uniform(0.15, 0.3)
    rays = np.clip(0.55 + 0.9 * _noise(rng, S, 0.025 * S, 3, 0.6), 0.1, 1)
    span = np.exp(-(((np.arange(S) - S * rng.uniform(0.2, 0.8)) / (S * rng.uniform(0.3, 0.6))) ** 4))
    above = hem - y  # positive above the hem
    profile = np.where(above > 0, np.exp(-np.maximum(above, 0) / height), np.exp(np.minimum(above, 0) / (0.012 * S)))
    amount = profile * rays * span * rng.uniform(0.6, 0.9)
    _light(c, _mix(low_col, high_col, np.clip(above / (1.5 * height), 0, 1)), amount)
    _light(c, low_col, 0.3 * _blur(amount, 0.03 * S))


def _mountains(c, rng, base, height, n, p, haze, light):
    """A range of n peaks rising up to `height` above row `base` (fractions of the image). Faces
    toward the light (light=+1: from the left) are lit, the others shaded; snow caps with ragged
    lower edges; mist thickens toward the foot. Returns the ridge line."""
    S = c.shape[0]
    y, x = _grid(S)
    px = np.sort(rng.uniform(-0.1, 1.1, n)) * S
    py = S * (base - height * rng.uniform(0.45, 1.0, n))
    slope, skew = rng.uniform(0.5, 1.1, n), rng.uniform(-0.4, 0.4, n)
    cones = py[:, None] + slope[:, None] * np.abs(np.arange(S)[None, :] - px[:, None])
    owner = cones.argmin(0)  # which peak forms the skyline at each column
    h = cones.min(0) + 0.012 * S * _noise(rng, S, 0.04 * S, 4, 0.6)
    split = px[owner] + skew[owner] * (y - py[owner])  # the arete between a peak's two faces
    face = np.clip((split - x) * light / 2 + 0.5, 0, 1)
    depth = y - h
    snowline = S * height * rng.uniform(0.3, 0.55) * (1 + 0.5 * _noise(rng, S, 0.02 * S, 3, 0.7))
    snow = np.clip((snowline - depth) / 2, 0, 1)
    col = _mix(_mix(p["rock_dark"], p["rock"], face), _mix(p["snow_dark"], p["snow"], face), snow)
    col = _mix(col, p["haze"], np.clip(haze + 0.6 * depth / (0.4 * S), 0, 1))
    _paint(c, col, _below(h, S))
    return h


def _scene_frozen(rng, S):
    p = _palette(rng, [
        dict(top="#020617", mid="#07203f", low="#1c5274", aurora=["#3dffa0", "#b05cff"], snow="#e6eeff",
             snow_dark="#6f86b8", rock="#3a4870", rock_dark="#151c34", near="#0a1020"),
        dict(top="#06041a", mid="#1a1446", low="#433f86", aurora=["#45f0e0", "#ff5ab4"], snow="#efe8ff",
             snow_dark="#7a74b4", rock="#453c78", rock_dark="#1a1434", near="#0c0a1e"),
        dict(top="#010c12", mid="#062a30", low="#186464", aurora=["#8aff5a", "#4a8cff"], snow="#e8fff8",
             snow_dark="#5f8fa0", rock="#2e5460", rock_dark="#0e2028", near="#06121a"),
    ], hue=0.02)
    c = _sky(S, [(0, p["top"]), (0.55, p["mid"]), (0.8, p["low"]), (1, p["low"])])
    _stars(c, rng, rng.integers(120, 220), 0.75 * S)
    for _ in range(rng.integers(1, 3)):
        _aurora(c, rng, *p["aurora"])
    p["snow"] = _mix(p["snow"], p["aurora"][0], 0.12)  # the snow catches the aurora's light
    light = rng.choice((-1, 1))
    p["haze"] = _mix(p["low"], p["aurora"][0], 0.1)
    _mountains(c, rng, 0.66, 0.28, rng.integers(4, 7), p, 0.5, light)
    p["haze"] = p["low"] * 0.8
    _mountains(c, rng, 0.84, 0.38, rng.integers(2, 5), p, 0.05, light)
    if rng.random() < 0.5:  # a frozen lake mirrors the sky
        _reflect(c, rng, S * rng.uniform(0.8, 0.86), p["mid"], tint=0.4)
    ground = _ridge(rng, S, 0.93, 0.03, 0.5, 3)
    _paint(c, _mix(p["snow"] * 0.8, p["snow_dark"] * 0.6, np.clip((_grid(S)[0] - 0.88 * S) / (0.12 * S), 0, 1)),
           _below(ground, S))
    img, d = _new_mask(S)  # snowy pines on the near slopes
    for _ in range(rng.integers(3, 12)):
        tx = S * rng.choice((rng.uniform(-0.05, 0.3), rng.uniform(0.7, 1.05)))
        _pine(d, rng, tx, ground[int(np.clip(tx, 0, S - 1))] + 3, S * rng.uniform(0.08, 0.22))
    pines = _arr(img)
    _paint(c, _mix(p["near"], p["snow"], 0.8 * _blur(_rim(pines, (-1, 0), 0.006 * S), 1)), pines)
    return c


# ------------------------------------------------------------------ 6. desert ruins under two moons

def _dunes(c, rng, base, amp, p, haze, light):
    """A dune layer: smooth crests, the slopes facing the light (light=+1: from the left) bright
    and the others in shadow, evening out further below the crest. Returns the crest line."""
    S = c.shape[0]
    y, _ = _grid(S)
    h = _ridge(rng, S, base, amp, 0.35, 2, 0.35)
    lit = 0.5 + 0.5 * np.tanh(light * np.gradient(h) * 3)
    fade = np.exp(-(y - h) / (0.08 * S))
    col = _mix(p["sand_dark"], p["sand"], lit * fade + 0.45 * (1 - fade))
    _paint(c, _mix(col, p["haze"], haze), _below(h, S))
    return h


def _ruins(rng, d, runes, ground, S):
    """Broken columns, perhaps an arch, and one or two obelisks standing on the dune line `ground`.
    Carved runes on the obelisks go into `runes`."""
    def col_at(x):
        return ground[int(np.clip(x, 0, S - 1))] + 0.015 * S  # half sunk in the sand

    for _ in range(rng.integers(1, 3)):
        ox, ow, oh = S * rng.uniform(0.1, 0.9), S * rng.uniform(0.04, 0.06), S * rng.uniform(0.25, 0.42)
        gy = col_at(ox)
        d.polygon([(ox - ow / 2, gy), (ox - 0.35 * ow, gy - oh), (ox, gy - oh - 0.5 * ow), (ox + 0.35 * ow, gy - oh),
                   (ox + ow / 2, gy)], fill=255)
        if rng.random() < 0.6:
            for ry in np.arange(gy - oh + 0.4 * ow, gy - 0.2 * oh, 0.5 * ow):
                runes.rectangle((ox - 0.12 * ow, ry, ox + 0.12 * ow, ry + 0.22 * ow), fill=255)
    # columns as (x, top row, may be broken); the two columns of an arch stay whole to carry the lintel
    columns = [(x, col_at(x) - S * rng.uniform(0.1, 0.28), True) for x in S * rng.uniform(0.05, 0.95, rng.integers(2, 6))]
    if rng.random() < 0.5:
        ax, span = S * rng.uniform(0.2, 0.8), S * rng.uniform(0.12, 0.2)
        top = min(col_at(ax - span / 2), col_at(ax + span / 2)) - S * rng.uniform(0.18, 0.26)
        d.rectangle((ax - span / 2 - 0.03 * S, top - 0.035 * S, ax + span / 2 + 0.03 * S * rng.uniform(-1, 1), top),
                    fill=255)
        columns += [(ax - span / 2, top, False), (ax + span / 2, top, False)]
    for cx, top, breakable in columns:
        cw, gy = S * rng.uniform(0.025, 0.035), col_at(cx)
        d.rectangle((cx - 0.7 * cw, gy - 0.4 * cw, cx + 0.7 * cw, gy), fill=255)  # plinth
        if breakable and rng.random() < 0.6:  # broken off: a jagged top
            jag = [top + cw * rng.uniform(-0.6, 0.8) for _ in range(4)]
            d.polygon([(cx - cw / 2, gy), (cx - cw / 2, jag[0]), (cx - cw / 6, jag[1]), (cx + cw / 6, jag[2]),
                       (cx + cw / 2, jag[3]), (cx + cw / 2, gy)], fill=255)
        else:
            d.rectangle((cx - cw / 2, top, cx + cw / 2, gy), fill=255)
            d.rectangle((cx - 0.75 * cw, top - 0.35 * cw, cx + 0.75 * cw, top), fill=255)  # capital


def _scene_desert(rng, S):
    p = _palette(rng, [
        dict(top="#0a0a2c", mid="#2c2c6e", low="#7060a0", sand="#9a86c0", sand_dark="#3a3066", stone="#8a7ab8",
             stone_dark="#241c44", moon="#f4f0ff", moon2="#ffb48a", rune="#6af0ff"),
        dict(top="#1a1442", mid="#a4507e", low="#ffb274", sand="#f0b078", sand_dark="#7a4054", stone="#d09878",
             stone_dark="#3a2030", moon="#fff4e4", moon2="#a8e4ff", rune="#ffe27a"),
        dict(top="#041a2a", mid="#0f4a5c", low="#4e9c9c", sand="#c8b494", sand_dark="#3c5462", stone="#a8b0a8",
             stone_dark="#1e2a34", moon="#eafff4", moon2="#ff8a6a", rune="#7affc0"),
    ])
    c = _sky(S, [(0, p["top"]), (0.45, p["mid"]), (0.72, p["low"]), (1, p["low"])])
    _stars(c, rng, _star_count(rng, p["top"]) + 40, 0.65 * S)
    # two moons of different size and colour; the big one sets the light direction
    mx, my, r = S * rng.uniform(0.15, 0.85), S * rng.uniform(0.12, 0.35), S * rng.uniform(0.07, 0.12)
    _moon(c, rng, mx, my, r, p["moon"], 0.5)
    m2x = np.clip(mx + rng.choice((-1, 1)) * S * rng.uniform(0.2, 0.4), 0.1 * S, 0.9 * S)
    _moon(c, rng, m2x, S * rng.uniform(0.08, 0.3), S * rng.uniform(0.025, 0.045), p["moon2"], 0.4)
    light = 1 if mx < S / 2 else -1
    p["haze"] = p["low"]
    _dunes(c, rng, 0.64, 0.03, p, 0.55, light)
    _dunes(c, rng, 0.7, 0.04, p, 0.3, light)
    ground = _dunes(c, rng, 0.76, 0.04, p, 0.12, light)
    img, d = _new_mask(S)
    runes_img, runes = _new_mask(S)
    _ruins(rng, d, runes, ground, S)
    stone = _arr(img)
    lit = _blur(_rim(stone, (0, -light), 0.012 * S), 1.5)
    _paint(c, _mix(p["stone_dark"], p["stone"], 0.85 * lit), stone)
    glyphs = _arr(runes_img) * stone
    _light(c, p["rune"], glyphs + 0.8 * _blur(glyphs, 0.01 * S) + 0.3 * _blur(glyphs, 0.04 * S))
    _dunes(c, rng, 0.86, 0.05, p, 0.0, light)  # the nearest dunes bury the ruins' feet
    return c


# ------------------------------------------------------------------ 7. crystal cavern

def _crystals(c, rng, bx, by, size, colour, haze_col=None, haze=0.0):
    """A fan of prisms growing from (bx, by), longest at the back: each has a lit and a shaded long
    face, a bright edge between them and a pointed tip; the cluster glows in its colour."""
    S = c.shape[0]
    cover_img, dc = _new_mask(S)
    tone_img, dt = _new_mask(S)
    for length in np.sort(rng.uniform(0.35, 1.0, rng.integers(4, 9)))[::-1] * size:
        a = -np.pi / 2 + rng.normal(0, 0.45)
        axis, normal = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        w = length * rng.uniform(0.12, 0.22)
        b = np.array([bx + rng.normal(0, 0.15 * size), by + abs(rng.normal(0, 0.03 * size))])
        tip, shoulder = b + length * axis, b + 0.82 * length * axis
        left = [b + normal * w / 2, shoulder + normal * w / 2, tip, shoulder, b]
        right = [b - normal * w / 2, shoulder - normal * w / 2, tip, shoulder, b]
        left, right = [tuple(q) for q in left], [tuple(q) for q in right]
        dc.polygon(left, fill=255)
        dc.polygon(right, fill=255)
        dt.polygon(left, fill=235)
        dt.polygon(right, fill=120)
        dt.line([tuple(b), tuple(shoulder), tuple(tip)], fill=255, width=2)
    cover, tone = _arr(cover_img), _arr(tone_img)
    col = colour * (0.25 + 0.9 * tone)[..., None] + 2.5 * np.clip(tone - 0.85, 0, 1)[..., None]
    if haze:
        col = _mix(col, haze_col, haze)
    _paint(c, col, cover)
    _light(c, colour, (1 - haze) * (0.6 * _blur(cover, 0.02 * S) + 0.35 * _blur(cover, 0.07 * S)))


def _scene_crystal(rng, S):
    p = _palette(rng, [
        dict(deep="#07041a", back="#2a1a5a", wall="#0e0a1e", gems=["#6ef2ff", "#b47cff", "#ff7ad6"]),
        dict(deep="#020f0c", back="#0f4a3c", wall="#06120f", gems=["#5affb4", "#b4ff7a", "#5ad4ff"]),
        dict(deep="#140606", back="#5a2a1a", wall="#140807", gems=["#ffa05a", "#ffd87a", "#ff5a8c"]),
        dict(deep="#030a1c", back="#1a3a6a", wall="#070e1e", gems=["#8ad4ff", "#e0f4ff", "#7a9cff"]),
    ])
    y, x = _grid(S)
    gems = p["gems"]
    c = _mix(p["deep"], p["back"], _radial(S, S * rng.uniform(0.35, 0.65), S * rng.uniform(0.4, 0.55), 0.45 * S))
    # back chamber: a far rock floor with stalagmites, hazy, dotted with small crystals
    h = _ridge(rng, S, 0.62, 0.04, 0.4, 4)
    for _ in range(rng.integers(3, 8)):
        sx, sh, sw = S * rng.uniform(0.1, 0.9), S * rng.uniform(0.05, 0.2), S * rng.uniform(0.02, 0.05)
        h = np.minimum(h, h[int(sx)] - sh * np.clip(1 - np.abs(np.arange(S) - sx) / sw, 0, 1) ** 1.5)
    _paint(c, _mix(p["wall"], p["back"], 0.55), _below(h, S))
    for _ in range(rng.integers(3, 7)):
        bx = S * rng.uniform(0.15, 0.85)
        _crystals(c, rng, bx, h[int(bx)] + 4, S * rng.uniform(0.04, 0.08), gems[rng.integers(3)], p["back"], 0.45)
    # the cave mouth framing the view: walls that close in at top and bottom, a ceiling, stalactites
    rows, cols = np.arange(S) / S, np.arange(S) / S
    left = S * (0.05 + 0.2 * ((rows - 0.45) / 0.55) ** 2 + 0.04 * _noise(rng, S, 0.2 * S, 4))
    right = S * (0.95 - 0.2 * ((rows - 0.45) / 0.55) ** 2 + 0.04 * _noise(rng, S, 0.2 * S, 4))
    ceiling = S * (0.04 + 0.16 * (2 * cols - 1) ** 2 + 0.03 * _noise(rng, S, 0.15 * S, 4))
    img, d = _new_mask(S)
    for _ in range(rng.integers(6, 13)):
        sx, length = S * rng.uniform(0.1, 0.9), S * rng.uniform(0.04, 0.2)
        top, w = ceiling[int(sx)] - 2, length * rng.uniform(0.12, 0.25)
        d.polygon([(sx - w, top), (sx + w, top), (sx + rng.normal(0, 0.2 * w), top + length)], fill=255)
    frame = np.maximum.reduce([np.clip(left[:, None] - x + 0.5, 0, 1), np.clip(x - right[:, None] + 0.5, 0, 1),
                               np.clip(ceiling[None, :] - y + 0.5, 0, 1), _arr(img)])
    edge = np.clip(2 * (frame - _blur(frame, 0.015 * S)), 0, 1)  # rock edges catch the crystal light
    _paint(c, _mix(p["wall"], gems[0] * 0.5, 0.6 * edge), frame)
    # the main clusters on the shore of an underground pool (or on the rock floor)
    shore = S * rng.uniform(0.7, 0.78)
    xs = np.sort(rng.uniform(0.2, 0.8, rng.integers(2, 5))) * S
    for i, bx in enumerate(xs):
        _crystals(c, rng, bx, shore, S * rng.uniform(0.12, 0.3), gems[rng.integers(3)])
    if rng.random() < 0.7:
        _reflect(c, rng, shore, p["deep"], tint=0.35)
    else:
        floor = _ridge(rng, S, shore / S + 0.01, 0.01, 0.3, 3)
        _paint(c, _mix(p["wall"] * 1.8, p["wall"], np.clip((y - shore) / (0.15 * S), 0, 1)), _below(floor, S))
    for bx in (S * rng.uniform(-0.02, 0.15), S * rng.uniform(0.85, 1.02)):  # small crystals in the near corners
        if rng.random() < 0.6:
            _crystals(c, rng, bx, S * 1.02, S * rng.uniform(0.1, 0.18), gems[rng.integers(3)])
    img, d = _new_mask(S)  # motes of light drifting in the air
    for _ in range(rng.integers(20, 50)):
        mx, my, r = S * rng.uniform(0.1, 0.9), S * rng.uniform(0.15, 0.8), rng.uniform(1, 2)
        d.ellipse((mx - r, my - r, mx + r, my + r), fill=int(255 * rng.uniform(0.4, 1)))
    m = _arr(img)
    _light(c, _mix(gems[0], WHITE, 0.5), m + 1.5 * _blur(m, 0.01 * S))
    return c


# ------------------------------------------------------------------ 8. wizard's tower on a lake

def _spire(c, rng, tx, base, height, width, light, p):
    """A round stone tower standing on row `base`: cylinder shading across its width, masonry
    courses, an eave ledge, a crooked conical roof and glowing windows (the top one always lit).
    Returns the roof tip."""
    S = c.shape[0]
    y, x = _grid(S)
    top = base - height
    half = 0.5 * width * (1 - 0.15 * np.clip((base - y) / height, 0, 1))  # a slight taper
    u = (x - tx) / half
    body = np.clip(half - np.abs(x - tx) + 0.5, 0, 1) * (y >= top) * (y <= base)
    lambert = np.clip(0.55 * light * u + 0.85 * np.sqrt(np.clip(1 - u * u, 0, 1)), 0, 1)  # light from the side
    courses = 1 - 0.18 * (((y - top) / (0.035 * S)) % 1 < 0.12)
    _paint(c, p["stone"] * (0.25 + 0.85 * lambert * courses)[..., None], body)
    img, d = _new_mask(S)
    d.rectangle((tx - 0.62 * width, top - 0.02 * S, tx + 0.62 * width, top + 0.012 * S), fill=255)
    rh, bend = width * rng.uniform(1.3, 2.2), width * rng.uniform(-0.5, 0.5)
    tip = (tx + bend, top - rh)
    d.polygon([(tx - 0.7 * width, top - 0.01 * S), (tx - 0.25 * width + 0.3 * bend, top - 0.5 * rh), tip,
               (tx + 0.2 * width + 0.35 * bend, top - 0.5 * rh), (tx + 0.7 * width, top - 0.01 * S)], fill=255)
    roof = _arr(img)
    _paint(c, _mix(p["roof"] * 0.6, p["roof"] * 1.4, _blur(_rim(roof, (0, light), 0.35 * width), 1)), roof)
    img, d = _new_mask(S)
    for k, wy in enumerate(np.arange(top + 0.05 * S, base - 0.05 * S, rng.uniform(0.07, 0.11) * S)):
        if k == 0 or rng.random() < 0.5:
            _window(d, tx + rng.uniform(-0.15, 0.15) * width, wy, 0.12 * width)
    win = _arr(img)
    _paint(c, p["window"], win)
    _light(c, p["window"], 0.9 * _blur(win, 0.012 * S) + 0.4 * _blur(win, 0.04 * S))
    return tip


def _scene_tower(rng, S):
    p = _palette(rng, [
        dict(top="#17285a", mid="#6c6cac", low="#f2b4a2", water="#2c3c70", far="#5a5a94", stone="#8a86a6",
             roof="#3a2a6a", window="#ffd27a", magic="#9affff", shore="#1a1a3a"),
        dict(top="#040716", mid="#121c46", low="#34447a", water="#0c1430", far="#1e2a52", stone="#5a6080",
             roof="#2a1a4a", window="#ffc860", magic="#c08aff", shore="#080a1a"),
        dict(top="#36285a", mid="#d2705c", low="#ffd28a", water="#3a2a48", far="#8a5a72", stone="#a08a8a",
             roof="#5a2030", window="#fff0a0", magic="#ffb0f0", shore="#2a1a2a"),
        dict(top="#123434", mid="#4e8a7c", low="#d2e4b4", water="#18302e", far="#4a7a6e", stone="#8a9a8e",
             roof="#2a4a3a", window="#fff2a0", magic="#a0ffb0", shore="#0e1e1c"),
    ])
    horizon = S * rng.uniform(0.6, 0.68)
    c = _sky(S, [(0, p["top"]), (0.45, p["mid"]), (horizon / S, p["low"]), (1, p["low"])])
    _stars(c, rng, _star_count(rng, p["top"]), horizon)
    mx, my = S * rng.uniform(0.1, 0.9), S * rng.uniform(0.1, 0.35)
    moon = _mix(p["low"], WHITE, 0.7)
    _moon(c, rng, mx, my, S * rng.uniform(0.03, 0.055), moon, 0.45)
    _clouds(c, rng, rng.integers(1, 4), 0.15, 0.4, 0.25, p["mid"], _mix(p["low"], WHITE, 0.3), squash=0.3, alpha=0.5)
    for i in range(2):  # distant mountains, lighter and bluer the further away
        h = _ridge(rng, S, horizon / S - 0.1 + 0.05 * i, 0.06, 0.4)
        _paint(c, _mix(p["far"], p["low"], 0.45 - 0.3 * i), _below(h, S))
    if rng.random() < 0.7:  # a wooded shore on one side
        side = rng.choice((-1, 1))
        img, d = _new_mask(S)
        reach = S * rng.uniform(0.2, 0.35)
        for k in range(int(reach / (0.025 * S))):
            px = k * 0.025 * S + rng.uniform(-4, 4)
            _pine(d, rng, px if side < 0 else S - px, horizon + 2, S * rng.uniform(0.04, 0.1) * (1 - 0.6 * px / reach))
        _paint(c, p["shore"], _arr(img))
    # the islet and the tower (with an optional smaller turret at its side)
    tx, light = S * rng.uniform(0.3, 0.7), 1 if mx > S / 2 else -1
    img, d = _new_mask(S)
    rx, ry = S * rng.uniform(0.1, 0.18), S * rng.uniform(0.03, 0.05)
    d.ellipse((tx - rx, horizon - ry, tx + rx, horizon + ry), fill=255)
    islet = _arr(img)
    _paint(c, _mix(p["shore"], p["far"], 0.6 * _blur(_rim(islet, (-1, 0), 0.01 * S), 2)), islet)
    height, width = S * rng.uniform(0.38, 0.5), S * rng.uniform(0.07, 0.1)
    base = horizon - 0.6 * ry
    if rng.random() < 0.5:
        side = rng.choice((-1, 1))
        _spire(c, rng, tx + side * 0.6 * width, base + 0.3 * ry, height * rng.uniform(0.45, 0.6), 0.6 * width, light, p)
    tip = _spire(c, rng, tx, base, height, width, light, p)
    if rng.random() < 0.6:  # a magic light crowning the roof
        _light(c, p["magic"], _disc(S, tip[0], tip[1] - 0.015 * S, 0.012 * S) + 0.7 * _radial(S, tip[0], tip[1], 0.05 * S))
    _reflect(c, rng, horizon, p["water"])
    img, d = _new_mask(S)  # moonlight glitter on the water, widening toward the viewer
    for _ in range(40):
        gy = rng.uniform(horizon + 2, S)
        near = (gy - horizon) / (S - horizon)
        gx, gw = mx + rng.normal(0, 0.01 * S + 0.05 * S * near), S * (0.004 + 0.02 * near)
        d.ellipse((gx - gw, gy - 1, gx + gw, gy + 1 + 1.5 * near), fill=int(255 * rng.uniform(0.3, 0.9)))
    _light(c, moon, 0.7 * _blur(_arr(img), 1))
    return c
