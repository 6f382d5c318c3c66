"""Built-in demo dataset: procedurally painted "fantasy places".

Eight scene families -- floating islands, a castle at sunset, an enchanted night forest, a
volcano, frozen peaks under an aurora, desert ruins under two moons, a crystal cavern and a
wizard's tower on a lake -- painted with numpy and PIL only. Nothing is downloaded, and every
image is reproducible from (seed, family, index).

Usage: ``python dataset.py --make-demo data/fantasy`` calls ``make_demo`` here, which writes
10 images per family as ``{family}_{index:02d}.png``; ``contact_sheet`` draws the labelled
overview used for imgs/dataset.png; ``make_scene`` paints a single image.

How it paints: a float RGB canvas in [0, 1] at twice the output size; shapes are drawn as PIL
masks, composited with numpy, and the result is downsampled with LANCZOS, which anti-aliases
every edge. Scenes are made of smooth gradients, shapes and blurred glows (no per-pixel noise),
so the PNGs stay small (about 55 KB each).
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

def _palette(rng, keys, rows, hue=0.025):
    """Pick one hand-tuned palette (a row of hex colours named by `keys`) and nudge its hue and
    brightness, so a family keeps its mood but no two images share exact tones."""
    row, dh = rows[rng.integers(len(rows))].split(), rng.uniform(-hue, hue)
    p = {}
    for key, code in zip(keys.split(), row):
        h, s, v = colorsys.rgb_to_hsv(*[int(code[i:i + 2], 16) / 255 for i in (1, 3, 5)])
        p[key] = np.array(colorsys.hsv_to_rgb((h + dh) % 1, s, min(1.0, v * rng.uniform(0.93, 1.07))))
    return p


def _mix(a, b, t):
    """Linear blend a -> b; t is a scalar or an (S, S) map that is broadcast over RGB."""
    t = np.asarray(t, dtype=float)
    return a + (b - a) * (t[..., None] if t.ndim == 2 else t)


def _grid(S):
    """Row and column coordinates shaped (S, 1) and (1, S), to broadcast into (S, S) maps."""
    return np.arange(S, dtype=float)[:, None], np.arange(S, dtype=float)[None, :]


def _at(line, x):
    """Value of a per-column line (skyline, ground) at column x, clamped to the image."""
    return line[int(np.clip(x, 0, len(line) - 1))]


def _flank(rng, S):
    """A random column near the left or right border, for things that frame the picture."""
    x = rng.uniform(-0.05, 0.3)
    return S * (x if rng.random() < 0.5 else 1 - x)


def _sky(S, stops):
    """Vertical gradient through (position, colour) stops; position 0 is the top row, 1 the bottom."""
    t = np.linspace(0.0, 1.0, S)
    pos, cols = [q for q, _ in stops], np.array([col for _, col in stops])
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
    """Blank 8-bit PIL mask plus a drawer: shapes are drawn here, then turned into float arrays."""
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
    """The band of a shape facing a light in direction `toward` = (dy, dx): the mask minus itself
    moved k pixels away from the light. Gives sunlit edges and split lit/shaded faces."""
    return mask * (1 - np.roll(mask, (-toward[0] * int(k), -toward[1] * int(k)), axis=(0, 1)))


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
    """Skyline row per column; base, amp and feature (the widest hill) are fractions of the image."""
    return S * (base + amp * _noise(rng, S, feature * S, octaves, rough))


def _below(h, S):
    """Soft mask of the pixels under a per-column height line."""
    return np.clip(_grid(S)[0] - h + 0.5, 0, 1)


def _band(d, xs, ys, half):
    """Fill the band of the given half-width(s) around a centre line of (x, y) points."""
    d.polygon(list(zip(xs - half, ys)) + list(zip(xs + half, ys))[::-1], fill=255)


def _sparks(c, rng, xs, ys, colour, halo, spread, fade=1.0):
    """Small glowing dots (stars, fireflies, embers, motes): random size and brightness (times
    `fade`), plus a soft halo `halo` times as strong, blurred by `spread` of the image size."""
    img, d = _new_mask(c.shape[0])
    radii, bright = 1 + 1.2 * rng.uniform(0, 1, len(xs)) ** 3, rng.uniform(0.4, 1, len(xs)) * fade
    for x, y, r, b in zip(xs, ys, radii, bright):
        d.ellipse((x - r, y - r, x + r, y + r), fill=int(255 * b))
    m = _arr(img)
    _light(c, colour, m + halo * _blur(m, spread * c.shape[0]))


def _stars(c, rng, horizon, sky_top):
    """Stars above row `horizon`, denser and brighter high up; the darker the sky, the more stars."""
    n = int(rng.integers(120, 220) * np.clip(1.2 - 3.5 * sky_top.mean(), 0, 1))
    ys = horizon * rng.uniform(0, 1, n) ** 1.4
    _sparks(c, rng, rng.uniform(0, c.shape[0], n), ys, WHITE, 1.2, 0.006, (1 - ys / horizon) ** 0.4)


def _clouds(c, rng, n, y0, y1, size, shade, lit, toward=(-1, 0), squash=0.6, floor=None, alpha=1.0):
    """Soft clouds between rows y0 and y1: clusters of ellipses whose bottoms roughly line up (flat
    bases), self-shadowed away from the light. `floor` fills everything below it (a sea of cloud)."""
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
    """Paint a soft cloud or smoke mask: the more of it lies toward the light (direction `toward`),
    the more shaded a point is."""
    k = int(0.04 * c.shape[0])
    occluded = _blur(np.roll(m, (-toward[0] * k, -toward[1] * k), axis=(0, 1)), 0.02 * c.shape[0])
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
    near = k / len(k)
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
        top, half = ground - h + k * 0.2 * h, w * (0.3 + 0.22 * k)
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
    """One floating island centred on column cx, grass top near row ty, half-width w: a domed
    grass cap, a ragged rocky cone underneath, trees, and `falls` waterfalls pouring off the lip.
    `haze` fades it toward the sky (distance). Returns the columns where the falls end."""
    S = c.shape[0]
    y, x = _grid(S)
    u = (np.arange(S) - cx) / w
    top = ty + 0.12 * w * u ** 6 + 0.04 * w * _noise(rng, S, 0.4 * w, 3)
    depth = w * rng.uniform(0.8, 1.4)
    cone = np.clip(1 - np.abs(u), 0, 1) ** rng.uniform(0.6, 1.0) * (1 + 0.35 * _noise(rng, S, 0.12 * w, 4, 0.6))
    bottom = np.where(np.abs(u) < 1, ty + 0.1 * w + depth * cone, -1.0)
    body = np.clip(y - top + 0.5, 0, 1) * np.clip(bottom - y + 0.5, 0, 1)
    # rock: darker toward the tip, vertical crags, faint strata, a lighter soil layer, lit on the sun's side
    crags = (0.75 + 0.25 * _noise(rng, S, 0.05 * w, 2)) * (1 + 0.25 * p["light"] * np.clip(u, -1, 1))
    strata = 0.92 + 0.08 * np.sin((y - ty) / (0.06 * w) * 2 * np.pi)
    soil = 1 + 0.35 * np.clip(top + 0.18 * w - y, 0, 1)
    rock = p["rock"] * ((1 - 0.6 * np.clip((y - ty) / depth, 0, 1)) * soil * strata * crags)[..., None]
    grass = np.clip(top + 0.07 * w * (1 + 0.6 * _noise(rng, S, 0.08 * w, 3)) - y, 0, 1)  # hangs over the lip
    _paint(c, _mix(_mix(rock, p["grass"], grass), p["haze"], haze), body)
    if w > 0.1 * S:  # round trees on the bigger islands, lit from above
        img, d = _new_mask(S)
        for _ in range(rng.integers(2, 7)):
            tx = cx + w * rng.uniform(-0.75, 0.75)
            base, r = _at(top, tx) + 2, w * rng.uniform(0.05, 0.1)
            d.rectangle((tx - 0.15 * r, base - 1.6 * r, tx + 0.15 * r, base), fill=255)
            for ox, oy in rng.normal(0, 0.35 * r, (3, 2)):
                rr, ly = r * rng.uniform(0.6, 1.0), base - 1.8 * r + oy
                d.ellipse((tx + ox - rr, ly - rr, tx + ox + rr, ly + rr), fill=255)
        trees = _arr(img)
        leaf = _mix(p["grass"] * 0.45, p["grass"] * 1.1, _blur(_rim(trees, (-1, 0), 0.02 * w), 1))
        _paint(c, _mix(leaf, p["haze"], haze), trees)
    ends = []
    for _ in range(falls):
        side = rng.choice((-1, 1))
        xf = np.clip(cx + side * w * rng.uniform(0.3, 0.75), 0, S - 1)
        y0, wf = _at(top, xf) + 0.03 * w, w * rng.uniform(0.035, 0.06)
        drop = np.clip(y - y0, 0, None)
        xc = xf + side * 1.5 * wf * (1 - np.exp(-drop / (0.15 * w)))  # the water arcs out off the lip
        half = 0.5 * wf * (1 + drop / (0.5 * S))  # and spreads as it falls
        streaks = 0.8 + 0.2 * np.sin((x - xc) / half * 4 + side)
        fade = (1 - np.clip(drop / (S - y0), 0, 1)) ** 0.6
        m = np.clip(1.6 * (1 - np.abs(x - xc) / half), 0, 1) * (y > y0) * fade * streaks
        _paint(c, p["water"], 0.9 * (1 - 0.5 * haze) * m)
        ends.append(xf + side * 1.5 * wf)
    return ends


def _scene_islands(rng, S):
    p = _palette(rng, "top mid low sun rock grass water cloud shadow", [
        "#2f6fc4 #8cc4ef #eef3f0 #fff6dc #6e5444 #5aa83c #eefaff #ffffff #b5c6dc",  # clear day
        "#3c3f8f #d889a8 #ffd9a8 #ffe6b8 #5e4150 #6aa84a #fff2f0 #fff2e6 #c79bb0",  # pink dawn
        "#186a86 #74cfc4 #eefbe6 #f8ffe6 #4f4a5e #3f9f6c #eafffb #ffffff #a6cfcf",  # teal fairy sky
        "#5a7ad0 #f0c0a0 #fff0d0 #fff8e0 #7a5a3c #8ab840 #fffaf0 #fffaf0 #d8b8a0",  # golden afternoon
    ])
    sx, sy = S * rng.uniform(0.15, 0.85), S * rng.uniform(0.1, 0.35)
    p["haze"], p["light"] = _mix(p["mid"], p["low"], 0.4), np.sign(sx - S / 2)
    c = _sky(S, [(0, p["top"]), (0.55, p["mid"]), (0.85, p["low"]), (1, p["low"])])
    _light(c, p["sun"], 0.7 * _radial(S, sx, sy, 0.3 * S) + _disc(S, sx, sy, 0.04 * S))
    _clouds(c, rng, rng.integers(2, 5), 0.1, 0.45, 0.22, p["shadow"], p["cloud"], alpha=0.85)
    for _ in range(rng.integers(2, 5)):  # distant islands, pale with haze
        _island(c, rng, S * rng.uniform(0, 1), S * rng.uniform(0.35, 0.6), S * rng.uniform(0.04, 0.08), p,
                haze=rng.uniform(0.5, 0.7), falls=int(rng.random() < 0.5))
    _clouds(c, rng, 10, 0.72, 0.8, 0.25, p["shadow"], p["cloud"], floor=0.78, alpha=0.7)
    cx = S * rng.uniform(0.3, 0.7)
    islands = [(cx, S * rng.uniform(0.32, 0.5), S * rng.uniform(0.17, 0.27), 0.0)]
    if rng.random() < 0.6:  # a second, smaller island on the other side, a little further away
        other = cx + (1 if cx < S / 2 else -1) * S * rng.uniform(0.3, 0.4)
        islands.insert(0, (other, S * rng.uniform(0.25, 0.55), S * rng.uniform(0.08, 0.13), 0.2))
    ends = []
    for ix, ty, w, haze in islands:
        ends += _island(c, rng, ix, ty, w, p, haze, falls=rng.integers(1, 3))
    _clouds(c, rng, 12, 0.86, 0.95, 0.3, p["shadow"], p["cloud"], floor=0.93)  # the cloud sea swallows the falls
    for x in ends:  # and they raise mist where they hit it
        _light(c, p["water"], 0.6 * _radial(S, x, 0.86 * S, 0.05 * S))
    return c


# ------------------------------------------------------------------ 2. castle on a cliff at sunset

def _merlons(d, x0, x1, y, m):
    """Battlements: teeth of width m along the top edge y of a wall from x0 to x1."""
    for x in np.arange(x0, x1 - 0.5 * m, 2 * m):
        d.rectangle((x, y - m, x + m, y), fill=255)


def _castle(rng, d, win, cx, base, u):
    """Curtain wall and towers (crenellated, or with conical roofs and pennants) standing on row
    `base`, drawn into d; windows, some of them, go into win. u is the unit size (a merlon)."""
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
    p = _palette(rng, "top mid low sun far near window cloud cloud_dark", [
        "#241d4f #c2527a #ffa048 #fff1b8 #9c5c8a #1e1226 #ffc860 #ff9a7a #6a3a6a",  # rose sunset
        "#33407c #ef8a4c #ffe29a #fffbe0 #c07a6a #2a1a22 #ffd070 #ffc08a #7a4a5a",  # golden hour
        "#1e1438 #b0383a #ff8a3a #ffe0a0 #8a3a44 #140a18 #ffb050 #ff7a6a #4a2040",  # crimson dusk
        "#54649e #eea2aa #ffe3ba #fffaf0 #b08aa6 #35243e #ffd890 #ffd0c0 #8a6a8a",  # pastel evening
    ])
    y, _ = _grid(S)
    c = _sky(S, [(0, p["top"]), (0.45, p["mid"]), (0.7, p["low"]), (1, p["low"])])
    side = rng.choice((-1, 1))  # the cliff stands on this side; the sun sets on the other
    sx, sy = S * (0.5 - side * rng.uniform(0.1, 0.3)), S * rng.uniform(0.5, 0.62)
    _light(c, p["sun"], 0.85 * _radial(S, sx, sy, 0.35 * S) + _disc(S, sx, sy, S * rng.uniform(0.04, 0.07)))
    _clouds(c, rng, rng.integers(3, 7), 0.1, 0.45, 0.3, p["cloud_dark"], p["cloud"], (1, 0), squash=0.25, alpha=0.9)
    for i in range(4):  # hills: the far ones take the hazy horizon colour, the near ones go to silhouette
        base = 0.6 + 0.09 * i
        _paint(c, _mix(p["far"], p["near"], (i / 3) ** 0.8), _below(_ridge(rng, S, base, 0.04 + 0.02 * i, 0.5), S))
        if i < 3:  # mist in the valley behind the next layer
            _light(c, p["low"], 0.25 * np.exp(-((y - (base + 0.05) * S) / (0.03 * S)) ** 2))
    # the cliff: a plateau from the image border to `edge`, then a jagged face down to the bottom
    img, d = _new_mask(S)
    top, edge = S * rng.uniform(0.42, 0.52), S * rng.uniform(0.42, 0.6)
    plateau = [(t * edge, top + 0.01 * S * rng.normal()) for t in np.linspace(0, 1, 8)]
    face = [(edge + 0.15 * S * t + 0.025 * S * rng.normal(), top + t * (S - top)) for t in np.linspace(0.1, 1, 9)]
    pts = [(-5, S + 5)] + plateau + face + [(edge, S + 5)]
    d.polygon([(x if side < 0 else S - x, yy) for x, yy in pts], fill=255)
    win_img, win = _new_mask(S)
    cx = edge * rng.uniform(0.4, 0.7)
    _castle(rng, d, win, cx if side < 0 else S - cx, top + 2, S * rng.uniform(0.022, 0.032))
    for _ in range(rng.integers(0, 6)):  # a few birds
        bx, by, bw = S * rng.uniform(0.2, 0.8), S * rng.uniform(0.15, 0.4), S * rng.uniform(0.008, 0.015)
        d.line([(bx - bw, by - 0.5 * bw), (bx, by), (bx + bw, by - 0.5 * bw)], fill=255, width=2)
    m = _arr(img)  # one dark silhouette with a sunlit rim
    _paint(c, _mix(p["near"], p["far"] * 1.4, _blur(_rim(m, (0, -side), 0.006 * S), 1.5)), m)
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
    _band(d, xs, ys, 0.5 * width * (1 - 0.3 * t) * (1 + 1.5 * np.exp(-t * 25)))
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
    p = _palette(rng, "top low fog trunk stem glow0 glow1 glow2 fly", [
        "#070b24 #1c3a5c #3f7fa0 #04060c #b8c8d8 #5ff3ff #7dff9c #c486ff #eaff8a",  # blue night
        "#120a28 #3b2a62 #7a58b0 #07040e #d0c0e0 #ff6ad5 #6ae8ff #b58cff #ffe68a",  # violet night
        "#02131a #0d3b3c #2d8070 #020a0a #c0d8c8 #b8ff5a #5affd0 #ffd25a #f4ff9a",  # green bog
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
    # three depths of trunks: the far ones sink into glowing fog, the near ones frame the picture
    for row, haze, count, width in ((0.64, 0.6, 16, 0.018), (0.73, 0.42, 10, 0.03), (0.86, 0.0, 5, 0.07)):
        ground = _ridge(rng, S, row, 0.025, 0.4, 3)
        img, d = _new_mask(S)
        for _ in range(count):
            tx = S * rng.uniform(-0.05, 1.05) if haze else _flank(rng, S)
            _trunk(d, rng, tx, _at(ground, tx), width * S * rng.uniform(0.7, 1.3), S)
        _paint(c, _mix(p["trunk"], p["fog"], haze), np.maximum(_arr(img), _below(ground, S)))
        if haze:
            _light(c, p["fog"], 0.35 * np.exp(-((y - row * S) / (0.05 * S)) ** 2))
        if count == 10:  # the beams fall between the middle and the near trees
            _light(c, _mix(p["fog"], WHITE, 0.5), 0.25 * _blur(_arr(shafts), 0.03 * S) * (1 - y / S))
    canopy, d = _new_mask(S)  # dark foliage hanging into the top of the frame
    for _ in range(rng.integers(10, 18)):
        fx, fy, r = S * rng.uniform(-0.1, 1.1), S * rng.uniform(-0.12, 0.06), S * rng.uniform(0.06, 0.14)
        d.ellipse((fx - r, fy - 0.7 * r, fx + r, fy + 0.7 * r), fill=255)
    _paint(c, p["trunk"], _blur(_arr(canopy), 2))
    for _ in range(rng.integers(2, 5)):
        _mushrooms(c, rng, S * rng.uniform(0.1, 0.9), S * rng.uniform(0.86, 0.95), S * rng.uniform(0.06, 0.11),
                   p[f"glow{rng.integers(3)}"], p["stem"])
    n = rng.integers(25, 60)  # fireflies
    _sparks(c, rng, S * rng.uniform(0, 1, n), S * rng.uniform(0.3, 0.92, n), p["fly"], 2.5, 0.012)
    return c


# ------------------------------------------------------------------ 4. volcano and lava rivers

def _scene_volcano(rng, S):
    p = _palette(rng, "top mid low far rock near lava core smoke", [
        "#240808 #7e1a10 #ff6a28 #5a1c18 #2a1412 #0c0606 #ff5a10 #ffe07a #4a3434",  # ember red
        "#180822 #641032 #e24a2a #4a1428 #220e18 #0a0408 #ff4a1a #ffd06a #44283a",  # wine and ash
        "#38180e #a83c16 #ffa03c #6a2a18 #301a10 #0e0805 #ff7a1a #fff09a #5a4a46",  # orange haze
    ])
    y, x = _grid(S)
    c = _sky(S, [(0, p["top"]), (0.5, p["mid"]), (0.72, p["low"]), (1, p["low"])])
    vx, peak, foot = S * rng.uniform(0.32, 0.68), S * rng.uniform(0.3, 0.42), 0.74 * S
    crater, spread, wind = S * rng.uniform(0.035, 0.06), S * rng.uniform(0.32, 0.5), rng.uniform(-0.5, 0.5)
    img, d = _new_mask(S)  # a billowing ash plume bending with the wind, lit from below by the crater
    for t in np.linspace(0, 1, 30):
        px, py, r = vx + wind * S * t ** 1.5 + 0.03 * S * rng.normal(), peak - 0.5 * S * t, S * (0.03 + 0.13 * t)
        for ox, oy in rng.normal(0, 0.5 * r, (3, 2)):
            rr = r * rng.uniform(0.5, 0.9)
            d.ellipse((px + ox - rr, py + oy - rr, px + ox + rr, py + oy + rr), fill=255)
    _puffs(c, _blur(_arr(img), 0.012 * S), (1, 0), _mix(p["smoke"], p["lava"], 0.55), p["smoke"] * 0.6, 0.95)
    if rng.random() < 0.4:  # lightning inside the ash cloud
        img, d = _new_mask(S)
        bx = vx + wind * 0.4 * S + np.cumsum(0.03 * S * rng.normal(size=9))
        d.line(list(zip(bx, peak - 0.35 * S + 0.025 * S * np.arange(9))), fill=255, width=2)
        bolt = _arr(img)
        _light(c, np.array([0.9, 0.85, 1.0]), bolt + _blur(bolt, 0.02 * S) + 0.3 * _blur(bolt, 0.08 * S))
    for i in range(2):  # far ridges, hazy with the red glow of the horizon
        _paint(c, _mix(p["far"], p["low"], 0.45 - 0.2 * i), _below(_ridge(rng, S, 0.64 + 0.04 * i, 0.03, 0.35), S))
    # the cone: steep near the crater and flattening toward the foot (a concave profile)
    s = np.linspace(0, 1, 14)
    dx, dy = crater + (spread - crater) * s, peak + (foot + 0.05 * S - peak) * (1 - (1 - s) ** 2)
    jag = 0.012 * S * rng.normal(size=(2, 14)) * s
    dip = [(vx - 0.4 * crater, peak + 0.35 * crater), (vx + 0.4 * crater, peak + 0.35 * crater)]
    img, d = _new_mask(S)
    d.polygon(list(zip(vx - dx + jag[0], dy + jag[1]))[::-1] + dip + list(zip(vx + dx + jag[1], dy + jag[0])), fill=255)
    side_lit = 1 + 0.35 * np.tanh((vx - x) / (0.05 * S) - (y - peak) / (0.2 * S))  # the flank facing the sky glow
    _paint(c, p["rock"] * side_lit[..., None], _arr(img))
    _light(c, p["lava"], 0.8 * _radial(S, vx, peak, 0.07 * S) + 0.3 * _radial(S, vx, peak, 0.2 * S))
    img, d = _new_mask(S)  # lava streams down the flank, widening as they go
    for _ in range(rng.integers(2, 5)):
        reach, drift, wobble = rng.uniform(0.4, 0.95), rng.uniform(-0.8, 0.8), rng.uniform(0, 6)
        ys = peak + 0.3 * crater + (foot - peak) * reach * s
        cone = crater + (spread - crater) * (1 - np.sqrt(np.clip(1 - (ys - peak) / (foot + 0.05 * S - peak), 0, 1)))
        _band(d, vx + cone * (drift * s + 0.12 * np.sin(6 * s + wobble)), ys, 1 + 0.006 * S * s * reach)
    flows = _arr(img)
    _paint(c, p["lava"], flows)
    _light(c, p["core"], 0.6 * _blur(flows, 1.5) + 0.5 * _blur(flows, 0.02 * S))
    # a dark plain with rivers of lava meandering toward the viewer, widening with perspective
    _paint(c, _mix(p["far"] * 0.7, p["near"], np.clip((y - 0.74 * S) / (0.12 * S), 0, 1)),
           _below(_ridge(rng, S, 0.75, 0.015, 0.3, 3), S))
    river, dr = _new_mask(S)
    core, dc = _new_mask(S)
    t = np.linspace(0, 1, 40)
    for _ in range(rng.integers(1, 3)):
        xs = vx + rng.uniform(-0.3, 0.3) * spread + S * rng.uniform(-0.3, 0.3) * t
        xs += 0.1 * S * t * np.sin(t * rng.uniform(5, 9) + rng.uniform(0, 6))
        ys, half = 0.76 * S + 0.29 * S * t, S * (0.004 + 0.06 * t ** 2)
        _band(dr, xs, ys, half)
        _band(dc, xs, ys, 0.4 * half)  # the hottest, brightest middle of the stream
    river, core = _arr(river), _blur(_arr(core), 0.006 * S)
    _light(c, p["lava"], 0.6 * _blur(river, 0.03 * S) + 0.3 * _blur(river, 0.1 * S))
    _paint(c, _mix(p["lava"], p["core"], core), river)
    _light(c, p["core"], 0.5 * _blur(river, 0.01 * S))
    n = rng.integers(30, 70)  # embers thrown up from the crater
    ex, ey = vx + S * rng.normal(0, 0.12, n), peak - S * rng.uniform(-0.1, 0.35, n)
    _sparks(c, rng, ex, ey, _mix(p["lava"], p["core"], 0.5), 1.5, 0.01)
    return c


# ------------------------------------------------------------------ 5. frozen peaks under an aurora

def _aurora(c, rng, low_col, high_col):
    """An aurora curtain: a wavy, sharp lower hem and fine vertical rays fading upward, one colour
    at the hem turning into the other at the top."""
    S = c.shape[0]
    y, _ = _grid(S)
    hem = S * (rng.uniform(0.22, 0.42) + 0.14 * _noise(rng, S, 0.4 * S, 3, 0.6))
    height = S * rng.uniform(0.08, 0.18)
    rays = np.clip(0.7 + 0.6 * _noise(rng, S, 0.03 * S, 3, 0.6), 0.2, 1)
    span = np.exp(-(((np.arange(S) - S * rng.uniform(0.2, 0.8)) / (S * rng.uniform(0.3, 0.6))) ** 4))
    above = hem - y  # positive above the hem
    profile = np.where(above > 0, np.exp(-np.maximum(above, 0) / height), np.exp(np.minimum(above, 0) / (0.012 * S)))
    amount = profile * rays * span * rng.uniform(0.6, 0.9)
    _light(c, _mix(low_col, high_col, np.clip(above / (1.5 * height), 0, 1)), amount)
    _light(c, low_col, 0.3 * _blur(amount, 0.03 * S))


def _mountains(c, rng, base, height, n, p, haze, light):
    """A range of n peaks rising up to `height` above row `base` (fractions of the image). Faces
    toward the light (light=+1: from the left) are lit, the others shaded; snow caps with ragged
    lower edges; mist thickens toward the foot."""
    S = c.shape[0]
    y, x = _grid(S)
    px, py = np.sort(rng.uniform(-0.1, 1.1, n)) * S, S * (base - height * rng.uniform(0.45, 1.0, n))
    slope, skew = rng.uniform(0.5, 1.1, n), rng.uniform(-0.4, 0.4, n)
    cones = py[:, None] + slope[:, None] * np.abs(np.arange(S)[None, :] - px[:, None])
    owner = cones.argmin(0)  # which peak forms the skyline at each column
    h = cones.min(0) + 0.012 * S * _noise(rng, S, 0.04 * S, 4, 0.6)
    split = px[owner] + skew[owner] * (y - py[owner])  # the arete between a peak's two faces
    face = np.clip((split - x) * light / 2 + 0.5, 0, 1)
    snowline = S * height * rng.uniform(0.3, 0.55) * (1 + 0.5 * _noise(rng, S, 0.02 * S, 3, 0.7))
    snow = np.clip((snowline - (y - h)) / 2, 0, 1)
    col = _mix(_mix(p["rock_dark"], p["rock"], face), _mix(p["snow_dark"], p["snow"], face), snow)
    _paint(c, _mix(col, p["haze"], np.clip(haze + 1.5 * (y - h) / S, 0, 1)), _below(h, S))


def _scene_frozen(rng, S):
    p = _palette(rng, "top mid low aurora_low aurora_high snow snow_dark rock rock_dark near", [
        "#020617 #07203f #1c5274 #3dffa0 #b05cff #e6eeff #6f86b8 #3a4870 #151c34 #0a1020",  # green and violet
        "#06041a #1a1446 #433f86 #45f0e0 #ff5ab4 #efe8ff #7a74b4 #453c78 #1a1434 #0c0a1e",  # teal and pink
        "#010c12 #062a30 #186464 #8aff5a #4a8cff #e8fff8 #5f8fa0 #2e5460 #0e2028 #06121a",  # lime and blue
    ], hue=0.02)
    y, _ = _grid(S)
    c = _sky(S, [(0, p["top"]), (0.55, p["mid"]), (0.8, p["low"]), (1, p["low"])])
    _stars(c, rng, 0.75 * S, p["top"])
    for _ in range(rng.integers(1, 3)):
        _aurora(c, rng, p["aurora_low"], p["aurora_high"])
    p["snow"] = _mix(p["snow"], p["aurora_low"], 0.12)  # the snow catches the aurora's light
    light = rng.choice((-1, 1))
    p["haze"] = _mix(p["low"], p["aurora_low"], 0.1)
    _mountains(c, rng, 0.66, 0.28, rng.integers(4, 7), p, 0.5, light)
    p["haze"] = p["low"] * 0.8
    _mountains(c, rng, 0.84, 0.38, rng.integers(2, 5), p, 0.05, light)
    if rng.random() < 0.5:  # a frozen lake mirrors the sky
        _reflect(c, rng, S * rng.uniform(0.8, 0.86), p["mid"], tint=0.4)
    ground = _ridge(rng, S, 0.93, 0.03, 0.5, 3)
    snowfield = _mix(p["snow"] * 0.8, p["snow_dark"] * 0.6, np.clip((y - 0.88 * S) / (0.12 * S), 0, 1))
    _paint(c, snowfield, _below(ground, S))
    img, d = _new_mask(S)  # snowy pines on the near slopes
    for _ in range(rng.integers(3, 12)):
        tx = _flank(rng, S)
        _pine(d, rng, tx, _at(ground, tx) + 3, S * rng.uniform(0.08, 0.22))
    pines = _arr(img)
    _paint(c, _mix(p["near"], p["snow"], 0.8 * _blur(_rim(pines, (-1, 0), 0.006 * S), 1)), pines)
    return c


# ------------------------------------------------------------------ 6. desert ruins under two moons

def _dunes(c, rng, base, amp, p, haze, light):
    """A dune layer: smooth crests, slopes facing the light (light=+1: from the left) bright and
    the others in shadow, evening out further below the crest. Returns the crest line."""
    S = c.shape[0]
    y, _ = _grid(S)
    h = _ridge(rng, S, base, amp, 0.35, 2, 0.35)
    lit = 0.5 + 0.5 * np.tanh(light * np.gradient(h) * 3)
    fade = np.exp(-(y - h) / (0.08 * S))
    col = _mix(p["sand_dark"], p["sand"], lit * fade + 0.45 * (1 - fade))
    _paint(c, _mix(col, p["haze"], haze), _below(h, S))
    return h


def _ruins(rng, d, runes, ground, S):
    """One or two obelisks (some carved with runes, drawn into `runes`), broken columns and perhaps
    an arch, half sunk into the dune line `ground`."""
    def foot(x):
        return _at(ground, x) + 0.015 * S

    for _ in range(rng.integers(1, 3)):
        ox, ow, oh = S * rng.uniform(0.1, 0.9), S * rng.uniform(0.06, 0.09), S * rng.uniform(0.3, 0.48)
        gy = foot(ox)
        d.polygon([(ox - ow / 2, gy), (ox - 0.35 * ow, gy - oh), (ox, gy - oh - 0.5 * ow), (ox + 0.35 * ow, gy - oh),
                   (ox + ow / 2, gy)], fill=255)
        if rng.random() < 0.6:
            for ry in np.arange(gy - oh + 0.4 * ow, gy - 0.2 * oh, 0.5 * ow):
                runes.rectangle((ox - 0.12 * ow, ry, ox + 0.12 * ow, ry + 0.22 * ow), fill=255)
    # columns as (x, top row, may be broken); the two columns of an arch stay whole to carry the lintel
    xs = S * rng.uniform(0.05, 0.95, rng.integers(3, 7))
    columns = [(x, foot(x) - S * rng.uniform(0.12, 0.32), True) for x in xs]
    if rng.random() < 0.5:
        ax, span = S * rng.uniform(0.2, 0.8), S * rng.uniform(0.14, 0.24)
        top = min(foot(ax - span / 2), foot(ax + span / 2)) - S * rng.uniform(0.2, 0.3)
        d.rectangle((ax - span / 2 - 0.03 * S, top - 0.035 * S, ax + span / 2 + 0.03 * S * rng.uniform(-1, 1), top),
                    fill=255)
        columns += [(ax - span / 2, top, False), (ax + span / 2, top, False)]
    for cx, top, breakable in columns:
        cw, gy = S * rng.uniform(0.035, 0.055), foot(cx)
        d.rectangle((cx - 0.7 * cw, gy - 0.4 * cw, cx + 0.7 * cw, gy), fill=255)  # plinth
        if breakable and rng.random() < 0.6:  # broken off: a jagged top
            jag = top + cw * rng.uniform(-0.6, 0.8, 4)
            d.polygon([(cx - cw / 2, gy), (cx - cw / 2, jag[0]), (cx - cw / 6, jag[1]), (cx + cw / 6, jag[2]),
                       (cx + cw / 2, jag[3]), (cx + cw / 2, gy)], fill=255)
        else:
            d.rectangle((cx - cw / 2, top, cx + cw / 2, gy), fill=255)
            d.rectangle((cx - 0.75 * cw, top - 0.35 * cw, cx + 0.75 * cw, top), fill=255)  # capital


def _scene_desert(rng, S):
    p = _palette(rng, "top mid low sand sand_dark stone stone_dark moon moon2 rune", [
        "#0a0a2c #2c2c6e #7060a0 #9a86c0 #3a3066 #8a7ab8 #241c44 #f4f0ff #ffb48a #6af0ff",  # violet night
        "#1a1442 #a4507e #ffb274 #f0b078 #7a4054 #d09878 #3a2030 #fff4e4 #a8e4ff #ffe27a",  # dusk
        "#041a2a #0f4a5c #4e9c9c #c8b494 #3c5462 #a8b0a8 #1e2a34 #eafff4 #ff8a6a #7affc0",  # teal night
    ])
    c = _sky(S, [(0, p["top"]), (0.45, p["mid"]), (0.72, p["low"]), (1, p["low"])])
    _stars(c, rng, 0.65 * S, p["top"])
    # two moons of different size and colour; the big one sets the light direction
    mx, my, r = S * rng.uniform(0.15, 0.85), S * rng.uniform(0.12, 0.35), S * rng.uniform(0.07, 0.12)
    _moon(c, rng, mx, my, r, p["moon"], 0.5)
    m2x = np.clip(mx + rng.choice((-1, 1)) * S * rng.uniform(0.2, 0.4), 0.1 * S, 0.9 * S)
    _moon(c, rng, m2x, S * rng.uniform(0.08, 0.3), S * rng.uniform(0.025, 0.045), p["moon2"], 0.4)
    light, p["haze"] = (1 if mx < S / 2 else -1), p["low"]
    _dunes(c, rng, 0.64, 0.03, p, 0.55, light)
    _dunes(c, rng, 0.7, 0.04, p, 0.3, light)
    ground = _dunes(c, rng, 0.76, 0.04, p, 0.12, light)
    img, d = _new_mask(S)
    runes_img, runes = _new_mask(S)
    _ruins(rng, d, runes, ground, S)
    stone = _arr(img)
    _paint(c, _mix(p["stone_dark"], p["stone"], 0.2 + 0.8 * _blur(_rim(stone, (0, -light), 0.018 * S), 1.5)), stone)
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
        for sign, tone in ((1, 235), (-1, 120)):  # the two long faces
            face = [tuple(q) for q in (b + sign * normal * w / 2, shoulder + sign * normal * w / 2, tip, shoulder, b)]
            dc.polygon(face, fill=255)
            dt.polygon(face, fill=tone)
        dt.line([tuple(b), tuple(shoulder), tuple(tip)], fill=255, width=2)
    cover, tone = _arr(cover_img), _arr(tone_img)
    col = colour * (0.25 + 0.9 * tone)[..., None] + 2.5 * np.clip(tone - 0.85, 0, 1)[..., None]
    _paint(c, _mix(col, haze_col, haze) if haze else col, cover)
    _light(c, colour, (1 - haze) * (0.6 * _blur(cover, 0.02 * S) + 0.35 * _blur(cover, 0.07 * S)))


def _scene_crystal(rng, S):
    p = _palette(rng, "deep back wall gem0 gem1 gem2", [
        "#07041a #2a1a5a #0e0a1e #6ef2ff #b47cff #ff7ad6",  # amethyst
        "#020f0c #0f4a3c #06120f #5affb4 #b4ff7a #5ad4ff",  # emerald
        "#140606 #5a2a1a #140807 #ffa05a #ffd87a #ff5a8c",  # fire opal
        "#030a1c #1a3a6a #070e1e #8ad4ff #e0f4ff #7a9cff",  # ice
    ])
    y, x = _grid(S)
    gems = [p["gem0"], p["gem1"], p["gem2"]]
    c = _mix(p["deep"], p["back"], _radial(S, S * rng.uniform(0.35, 0.65), S * rng.uniform(0.4, 0.55), 0.45 * S))
    # back chamber: a far rock floor with stalagmites, hazy, dotted with small crystals
    h = _ridge(rng, S, 0.62, 0.04, 0.4, 4)
    for _ in range(rng.integers(3, 8)):
        sx, sh, sw = S * rng.uniform(0.1, 0.9), S * rng.uniform(0.05, 0.2), S * rng.uniform(0.02, 0.05)
        h = np.minimum(h, _at(h, sx) - sh * np.clip(1 - np.abs(np.arange(S) - sx) / sw, 0, 1) ** 1.5)
    _paint(c, _mix(p["wall"], p["back"], 0.55), _below(h, S))
    for _ in range(rng.integers(3, 7)):
        bx = S * rng.uniform(0.15, 0.85)
        _crystals(c, rng, bx, _at(h, bx) + 4, S * rng.uniform(0.04, 0.08), gems[rng.integers(3)], p["back"], 0.45)
    # the cave mouth framing the view: walls that close in at top and bottom, a ceiling, stalactites
    bulge = 0.2 * ((np.arange(S) / S - 0.45) / 0.55) ** 2
    left = S * (0.05 + bulge + 0.04 * _noise(rng, S, 0.2 * S, 4))
    right = S * (0.95 - bulge + 0.04 * _noise(rng, S, 0.2 * S, 4))
    ceiling = S * (0.04 + 0.16 * (2 * np.arange(S) / S - 1) ** 2 + 0.03 * _noise(rng, S, 0.15 * S, 4))
    img, d = _new_mask(S)
    for _ in range(rng.integers(6, 13)):
        sx, length = S * rng.uniform(0.1, 0.9), S * rng.uniform(0.04, 0.2)
        top, w = _at(ceiling, sx) - 2, length * rng.uniform(0.12, 0.25)
        d.polygon([(sx - w, top), (sx + w, top), (sx + rng.normal(0, 0.2 * w), top + length)], fill=255)
    frame = np.maximum.reduce([np.clip(left[:, None] - x + 0.5, 0, 1), np.clip(x - right[:, None] + 0.5, 0, 1),
                               np.clip(ceiling[None, :] - y + 0.5, 0, 1), _arr(img)])
    edge = np.clip(2 * (frame - _blur(frame, 0.015 * S)), 0, 1)  # rock edges catch the crystal light
    _paint(c, _mix(p["wall"], gems[0] * 0.5, 0.6 * edge), frame)
    # the main clusters on the shore of an underground pool that mirrors the cave
    shore = S * rng.uniform(0.7, 0.78)
    for bx in np.sort(rng.uniform(0.2, 0.8, rng.integers(2, 5))) * S:
        _crystals(c, rng, bx, shore, S * rng.uniform(0.15, 0.32), gems[rng.integers(3)])
    _reflect(c, rng, shore, p["deep"], tint=0.35)
    for bx in (S * rng.uniform(-0.02, 0.15), S * rng.uniform(0.85, 1.02)):  # small crystals in the near corners
        if rng.random() < 0.6:
            _crystals(c, rng, bx, S * 1.02, S * rng.uniform(0.1, 0.18), gems[rng.integers(3)])
    n = rng.integers(20, 50)  # motes of light drifting in the air
    _sparks(c, rng, S * rng.uniform(0.1, 0.9, n), S * rng.uniform(0.15, 0.8, n), _mix(gems[0], WHITE, 0.5), 1.5, 0.01)
    return c


# ------------------------------------------------------------------ 8. wizard's tower on a lake

def _spire(c, rng, tx, base, height, width, light, p):
    """A round stone tower standing on row `base`, lit from the side `light` (+1: right): cylinder
    shading, masonry courses, maybe a balcony, a crooked wizard's-hat roof, a door and glowing
    windows (the top one always lit). Returns the roof tip."""
    S = c.shape[0]
    y, x = _grid(S)
    top = base - height
    half = 0.5 * width * (1 - 0.15 * np.clip((base - y) / height, 0, 1))  # a slight taper
    u = (x - tx) / half
    body = np.clip(half - np.abs(x - tx) + 0.5, 0, 1) * (y >= top) * (y <= base)
    lambert = np.clip(0.55 * light * u + 0.85 * np.sqrt(np.clip(1 - u * u, 0, 1)), 0, 1)
    courses = 1 - 0.12 * (((y - top) / (0.028 * S)) % 1 < 0.15)
    _paint(c, p["stone"] * (0.25 + 0.85 * lambert * courses)[..., None], body)
    img, d = _new_mask(S)
    d.rectangle((tx - 0.62 * width, top - 0.02 * S, tx + 0.62 * width, top + 0.012 * S), fill=255)  # eaves
    if rng.random() < 0.6:  # a balcony with a railing part-way up
        by, rail = top + height * rng.uniform(0.25, 0.45), 0.025 * S
        d.rectangle((tx - 0.75 * width, by, tx + 0.75 * width, by + 0.012 * S), fill=255)
        for bx in np.linspace(tx - 0.7 * width, tx + 0.7 * width, 7):
            d.line([(bx, by), (bx, by - rail)], fill=255, width=2)
        d.line([(tx - 0.75 * width, by - rail), (tx + 0.75 * width, by - rail)], fill=255, width=3)
    rh, bend = width * rng.uniform(1.8, 2.8), width * rng.uniform(-0.8, 0.8)
    tip = (tx + bend, top - rh)  # the hat: wide brim, tall cone, crooked tip
    d.polygon([(tx - 0.8 * width, top + 0.01 * S), (tx - 0.45 * width, top - 0.1 * rh),
               (tx - 0.2 * width + 0.3 * bend, top - 0.55 * rh), tip, (tx + 0.15 * width + 0.45 * bend, top - 0.5 * rh),
               (tx + 0.45 * width, top - 0.1 * rh), (tx + 0.8 * width, top + 0.01 * S)], fill=255)
    roof = _arr(img)
    _paint(c, _mix(p["roof"] * 0.6, p["roof"] * 1.4, _blur(_rim(roof, (0, light), 0.35 * width), 1)), roof)
    img, d = _new_mask(S)
    _window(d, tx, base - 0.05 * S, 0.2 * width)
    _paint(c, p["shore"], _arr(img))  # the door
    img, d = _new_mask(S)
    for k, wy in enumerate(np.arange(top + 0.05 * S, base - 0.05 * S, rng.uniform(0.07, 0.11) * S)):
        if k == 0 or rng.random() < 0.5:
            _window(d, tx + rng.uniform(-0.15, 0.15) * width, wy, 0.12 * width)
    win = _arr(img)
    _paint(c, p["window"], win)
    _light(c, p["window"], 0.9 * _blur(win, 0.012 * S) + 0.4 * _blur(win, 0.04 * S))
    return tip


def _scene_tower(rng, S):
    p = _palette(rng, "top mid low water far stone roof window magic shore", [
        "#17285a #6c6cac #f2b4a2 #2c3c70 #5a5a94 #6a6688 #3a2a6a #ffd27a #9affff #1a1a3a",  # twilight
        "#040716 #121c46 #34447a #0c1430 #1e2a52 #4a4e70 #2a1a4a #ffc860 #c08aff #080a1a",  # deep night
        "#36285a #d2705c #ffd28a #3a2a48 #8a5a72 #7a6468 #5a2030 #fff0a0 #ffb0f0 #2a1a2a",  # sunset
        "#123434 #4e8a7c #d2e4b4 #18302e #4a7a6e #7a7060 #2a4a3a #fff2a0 #a0ffb0 #0e1e1c",  # misty green
    ])
    horizon = S * rng.uniform(0.6, 0.68)
    c = _sky(S, [(0, p["top"]), (0.45, p["mid"]), (horizon / S, p["low"]), (1, p["low"])])
    _stars(c, rng, horizon, p["top"])
    mx, my, moon = S * rng.uniform(0.1, 0.9), S * rng.uniform(0.1, 0.35), _mix(p["low"], WHITE, 0.7)
    _moon(c, rng, mx, my, S * rng.uniform(0.03, 0.055), moon, 0.45)
    _clouds(c, rng, rng.integers(1, 4), 0.15, 0.4, 0.25, p["mid"], _mix(p["low"], WHITE, 0.3), squash=0.3, alpha=0.5)
    for i in range(2):  # distant mountains, lighter and hazier the further away
        ridge = _ridge(rng, S, horizon / S - 0.1 + 0.05 * i, 0.06, 0.4)
        _paint(c, _mix(p["far"], p["low"], 0.45 - 0.3 * i), _below(ridge, S))
    if rng.random() < 0.7:  # a wooded shore on one side
        side, reach = rng.choice((-1, 1)), S * rng.uniform(0.2, 0.35)
        img, d = _new_mask(S)
        xs = np.arange(0, reach, 0.025 * S)
        for px in xs + rng.uniform(-4, 4, len(xs)):
            _pine(d, rng, px if side < 0 else S - px, horizon + 2, S * rng.uniform(0.04, 0.1) * (1 - 0.6 * px / reach))
        _paint(c, p["shore"], _arr(img))
    # the islet and the tower, perhaps with a smaller turret at its side
    tx, light = S * rng.uniform(0.3, 0.7), 1 if mx > S / 2 else -1
    img, d = _new_mask(S)
    rx, ry = S * rng.uniform(0.1, 0.18), S * rng.uniform(0.03, 0.05)
    d.ellipse((tx - rx, horizon - ry, tx + rx, horizon + ry), fill=255)
    islet = _arr(img)
    _paint(c, _mix(p["shore"], p["far"], 0.6 * _blur(_rim(islet, (-1, 0), 0.01 * S), 2)), islet)
    height, width, base = S * rng.uniform(0.28, 0.4), S * rng.uniform(0.08, 0.11), horizon - 0.6 * ry
    if rng.random() < 0.5:
        tur = tx + rng.choice((-1, 1)) * 0.6 * width
        _spire(c, rng, tur, base + 0.3 * ry, height * rng.uniform(0.45, 0.6), 0.6 * width, light, p)
    tip = _spire(c, rng, tx, base, height, width, light, p)
    if rng.random() < 0.6:  # a magic light crowning the roof
        _light(c, p["magic"], _disc(S, tip[0], tip[1] - 0.015 * S, 0.012 * S) + 0.7 * _radial(S, *tip, 0.05 * S))
    _reflect(c, rng, horizon, p["water"])
    img, d = _new_mask(S)  # moonlight glitter on the water, widening toward the viewer
    for gy in rng.uniform(horizon + 2, S, 40):
        near = (gy - horizon) / (S - horizon)
        gx, gw = mx + rng.normal(0, 0.01 * S + 0.05 * S * near), S * (0.004 + 0.02 * near)
        d.ellipse((gx - gw, gy - 1, gx + gw, gy + 1 + 1.5 * near), fill=int(255 * rng.uniform(0.3, 0.9)))
    _light(c, moon, 0.7 * _blur(_arr(img), 1))
    return c


# ------------------------------------------------------------------ public API

_SCENES = {"islands": _scene_islands, "castle": _scene_castle, "forest": _scene_forest, "volcano": _scene_volcano,
           "frozen": _scene_frozen, "desert": _scene_desert, "crystal": _scene_crystal, "tower": _scene_tower}


def make_scene(family: str, rng: np.random.Generator, size: int = 256) -> Image.Image:
    """Paint one size x size RGB image of the given family, using only `rng` for randomness."""
    if family not in _SCENES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return _finish(_SCENES[family](rng, 2 * size), size)


def make_demo(out_dir, count: int = 80, seed: int = 0) -> list[Path]:
    """Write `count` images cycling through the families (image k is family FAMILIES[k % 8], index
    k // 8 within it) as out_dir/{family}_{index:02d}.png and return their paths in order. Each
    image has its own generator seeded by (seed, family, index), so it does not depend on `count`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        family_index, index = k % len(FAMILIES), k // len(FAMILIES)
        family = FAMILIES[family_index]
        path = out_dir / f"{family}_{index:02d}.png"
        make_scene(family, np.random.default_rng([seed, family_index, index])).save(path)
        paths.append(path)
    return paths


def _font(size):
    """PIL's built-in font at a readable size; Pillow < 10.1 only has the small fixed bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def contact_sheet(paths, out_png, columns: int = 10, thumb: int = 128) -> None:
    """Save a grid of thumbnails, each captioned with its file stem, under a title line, on a dark
    neutral background (used for imgs/dataset.png)."""
    paths = [Path(q) for q in paths]
    pad, caption, title = 8, 18, 34
    rows = max(1, math.ceil(len(paths) / columns))
    sheet = Image.new("RGB", (pad + columns * (thumb + pad), title + rows * (thumb + caption + pad)), (28, 28, 30))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 9), f"Built-in fantasy places: {len(paths)} images, 8 families", fill=(235, 235, 235),
              font=_font(16))
    font = _font(13)
    for i, path in enumerate(paths):
        x0, y0 = pad + (i % columns) * (thumb + pad), title + (i // columns) * (thumb + caption + pad)
        with Image.open(path) as im:
            sheet.paste(im.convert("RGB").resize((thumb, thumb), Image.Resampling.LANCZOS), (x0, y0))
        width = draw.textlength(path.stem, font=font)
        draw.text((x0 + (thumb - width) / 2, y0 + thumb + 2), path.stem, fill=(190, 190, 190), font=font)
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png)
