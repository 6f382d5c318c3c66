"""Measures of what the eye sees, with no downloaded weights: detail at each scale, and how far a set of
images lies from real ones in the features of a small network trained on the demo domain.

    python realism.py --train                                  # the network, from scratch (deterministic)
    python realism.py --train --out saves/fantasy_features.pt  # the file test.py loads (shipped)

PSNR and SSIM reward blur: the average of every image a code could mean scores better than any one sharp
guess. These measures do not:

- Detail at each scale: the power of the images' luminance spectrum in bands of wavelength, as a ratio to the
  originals' (1: as much structure at that scale as the real images; 0.1: a tenth of it), and one distance
  over all bands, the root mean square of log2 of the ratios, which counts too little and too much alike
  (noise and grid artefacts are not detail).
- Bright points: the pixels brighter than their surroundings by a margin, one per star or lit window;
  how many a decoder draws against the originals, how many of them lie where the originals have one, and
  how many of the originals' it draws. Small points carry little power, so the spectrum hardly sees them.
- Grid: the power at a period of about 2 pixels along either axis, as a ratio to the originals'. A decoder
  that upsamples by repeating pixels and then convolves can leave a fine axis-aligned grid on flat regions,
  which the finest band counts as detail; this number tells the two apart (1: as much as real images).
- Newness: whether generated images are copies of training images or new ones, by the data-copying test of
  Meehan et al. 2020: how close each lies to its nearest training image, against real images no model trained on.
  A Fréchet distance alone rewards a model that draws its training images again.
- The Fréchet distance (FD) and the kernel inception distance (KID) of Heusel et al. 2017 and Bińkowski et al.
  2018, computed in the features of `FeatureNet` instead of Inception's (which cannot be downloaded here), as
  the Fréchet LeNet distance does for MNIST. FeatureNet learns to tell the 8 families of `fantasy.py` apart
  on images whose seeds are disjoint from the demo set's (0) and the held-out set's (7); its features are the
  mean activations of every stage, from the edges of the first to the scene of the last, so that both what a
  picture shows and how its fine texture looks count. The distances are only meaningful on the demo domain.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.stats import mannwhitneyu

import fantasy
from checkpoint import CheckpointError, load_strict, safe_load, save_atomic
from losses import lift, luminance

FORMAT = "fantasy-features/1"
WIDTHS = (16, 32, 64, 128, 128)  # one stage each, every stage halves the image
TRAIN_SEED, VALID_SEED = 1000, 1001  # demo seeds of its images: the demo set is 0, the held-out set 7
TRAIN_PER_FAMILY, VALID_PER_FAMILY = 300, 30
# Bands of wavelength in pixels of a 256x256 image (in cycles per image width: 256 / wavelength), coarse to fine.
BANDS = ((40, None), (20, 40), (10, 20), (5, 10), (2, 5))


def band_names():
    return [f"{lo}+ px" if hi is None else f"{lo}-{hi} px" for lo, hi in BANDS]


# ----------------------------------------------------------------------------------------------------------------
# Detail at each scale


def power_spectrum(x):
    """(N, S, S) power of each image's luminance spectrum (torch.fft order). The image minus its mean is
    Hann-windowed first, so that its borders (a sky above a sea) do not spread power over every frequency."""
    grey = luminance(x)
    window = torch.hann_window(grey.shape[-1], periodic=False)
    grey = (grey - grey.mean((1, 2), keepdim=True)) * window[:, None] * window[None, :]
    return torch.fft.fft2(grey, norm="ortho").abs().square()


def band_power(power):
    """(N, len(BANDS)) power in each band, of spectra (N, S, S) from power_spectrum."""
    s = power.shape[-1]
    f = torch.fft.fftfreq(s) * s  # cycles per image width
    radius = (f[:, None].square() + f[None, :].square()).sqrt()  # (S, S)
    bands = []
    for lo, hi in BANDS:  # a wavelength of w px at 256 is 256 / w cycles per image, at any size
        inside = (radius >= 1) & (radius <= s / 2) & (radius < 256 / lo)
        if hi is not None:
            inside &= radius >= 256 / hi
        bands.append((power * inside).sum((1, 2)))
    return torch.stack(bands, 1)


def grid_power(power):
    """(N,) power of spectra (N, S, S) at 0.47-0.5 cycles per pixel (a period of 2 to 2.13 pixels) along one
    axis and at most 0.02 along the other: the lines of a grid of 2x2 blocks, not the diagonal texture of real
    detail at that scale."""
    f = torch.fft.fftfreq(power.shape[-1]).abs()  # cycles per pixel
    near, flat = f >= 0.47, f <= 0.02
    axes = (near[:, None] & flat[None, :]) | (flat[:, None] & near[None, :])
    return (power * axes).sum((1, 2))


def detail(images, originals):
    """{band name: mean power of images / mean power of originals, ..., "distance": RMS of log2 of the ratios,
    "grid": the same ratio of grid_power}. A band finer than the images can hold (below 2 pixels of theirs) is
    None and left out of the distance; the grid is not in it either (it lies inside the finest band)."""
    spectrum, real_spectrum = power_spectrum(images), power_spectrum(originals)
    real = band_power(real_spectrum).mean(0)
    ratio = band_power(spectrum).mean(0) / real.clamp_min(1e-20)
    held = real > 0
    out = {name: r if h else None for name, r, h in zip(band_names(), ratio.tolist(), held.tolist())}
    out["distance"] = ratio[held].clamp_min(1e-6).log2().square().mean().sqrt().item()
    out["grid"] = (grid_power(spectrum).mean() / grid_power(real_spectrum).mean().clamp_min(1e-20)).item()
    return out


# ----------------------------------------------------------------------------------------------------------------
# Bright points: stars, lit windows, sparks


POINT_CONTRAST, POINT_RADIUS = 0.06, 2  # grey levels above the 7x7 mean; pixels (chessboard distance)


def bright_points(x):
    """(N, S, S) bool: the pixels of images (N, 3, S, S) that are the brightest of their 3x3 neighbourhood and
    more than POINT_CONTRAST above the mean of their 7x7 one. A star or a lit window is one; a smooth
    gradient, an edge or a flat sky is none."""
    lifted = lift(x)
    peak = (lifted == F.max_pool2d(lifted, 3, stride=1, padding=1)) & (lifted > POINT_CONTRAST)
    return peak[:, 0]


def points(images, originals):
    """How the bright points of images (N, 3, S, S) match those of their originals: {"count": as many as the
    originals' (1: as many), "placed": the share within POINT_RADIUS px of an original's point, "chance": the
    same share for points placed at random (the share of the image that near an original's point), "drawn":
    the share of the originals' points with one of the images' that near}. A decoder that draws stars as a
    texture, anywhere, has "placed" near "chance"."""
    mine, real = bright_points(images), bright_points(originals)

    def near(p):  # within the radius of a point of p
        return F.max_pool2d(p[:, None].float(), 2 * POINT_RADIUS + 1, stride=1, padding=POINT_RADIUS)[:, 0] > 0
    n_mine, n_real, near_real = mine.sum().item(), real.sum().item(), near(real)
    return {"count": n_mine / max(n_real, 1), "placed": (mine & near_real).sum().item() / max(n_mine, 1),
            "chance": near_real.float().mean().item(), "drawn": (real & near(mine)).sum().item() / max(n_real, 1)}


# ----------------------------------------------------------------------------------------------------------------
# The feature network


class FeatureNet(nn.Module):
    """A small classifier of the 8 families: strided conv stages, global average pooling, a linear layer. Its
    features are every stage's mean activation, standardised with the training images' statistics."""

    def __init__(self, classes=len(fantasy.FAMILIES)):
        super().__init__()
        stages, c_in = [], 3
        for i, c in enumerate(WIDTHS):
            stages.append(nn.Sequential(nn.Conv2d(c_in, c, 5 if i == 0 else 3, stride=2, padding=2 if i == 0 else 1,
                                                  bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.2)))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(c_in, classes)
        self.register_buffer("feature_mean", torch.zeros(sum(WIDTHS)))
        self.register_buffer("feature_std", torch.ones(sum(WIDTHS)))

    def forward(self, x):  # x: (B, 3, S, S) in [0, 1] -> (family logits (B, 8), raw features (B, sum(WIDTHS)))
        pooled = []
        for stage in self.stages:
            x = stage(x)
            pooled.append(x.mean((2, 3)))
        return self.head(pooled[-1]), torch.cat(pooled, 1)


@torch.no_grad()
def embed(net, images, batch_size=32):
    """Standardised features and family probabilities of images (N, 3, S, S) in [0, 1] or uint8, resized to
    256x256 (the size the network learned), on the CPU: (N, D), (N, 8)."""
    feats, probs = [], []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].float()
        x = x / 255 if images.dtype == torch.uint8 else x
        if x.shape[-1] != 256:
            x = F.interpolate(x, size=(256, 256), mode="bicubic", align_corners=False).clamp(0, 1)
        logits, f = net(x)
        feats.append((f - net.feature_mean) / net.feature_std)
        probs.append(logits.softmax(1))
    return torch.cat(feats).double(), torch.cat(probs)


def load_net(path):
    """The FeatureNet saved by `--train`, through the project's one safe loading path."""
    state = safe_load(path)
    if state.get("format") != FORMAT or not isinstance(state.get("weights"), dict):
        raise CheckpointError(f"{path} is not a feature network of this project")
    net = FeatureNet()
    load_strict(net, state["weights"], path)
    return net.eval()


# ----------------------------------------------------------------------------------------------------------------
# Distances between two sets of features


def frechet_distance(a, b):
    """||m_a - m_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) of two sets of features (N, D), as FID. Tr((C_a C_b)^(1/2))
    is the sum of the square roots of the eigenvalues of C_a^(1/2) C_b C_a^(1/2), which is symmetric."""
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(ca)
    root_a = (v * w.clamp_min(0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root_a @ cb @ root_a).clamp_min(0).sqrt().sum()
    return ((ma - mb).square().sum() + ca.trace() + cb.trace() - 2 * cross).item()


def kid(a, b):
    """The unbiased estimate of the squared MMD with the kernel (x.y / D + 1)^3, as KID: 0 in expectation for
    two samples of one distribution, whatever their sizes."""
    d = a.shape[1]
    k_aa, k_bb, k_ab = [(x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b))]
    m, n = len(a), len(b)
    return ((k_aa.sum() - k_aa.trace()) / (m * (m - 1)) + (k_bb.sum() - k_bb.trace()) / (n * (n - 1))
            - 2 * k_ab.mean()).item()


def distances(features, reference):
    return {"fd": frechet_distance(features, reference), "kid": kid(features, reference)}


def coverage(probs):
    """Which families a set of images is assigned to, and how confidently: {"families": {name: count}, "present":
    how many of the 8, "confidence": mean probability of the assigned family}."""
    top, assigned = probs.max(1)
    counts = torch.bincount(assigned, minlength=len(fantasy.FAMILIES)).tolist()
    return {"families": dict(zip(fantasy.FAMILIES, counts)), "present": sum(c > 0 for c in counts),
            "confidence": top.mean().item()}


# ----------------------------------------------------------------------------------------------------------------
# Newness: copies, or images as new as real ones


COPYING_SIDE = 64  # pixel distances are taken between images shrunk to 64x64 (area averaging): layout and colour


def pixels(images):
    """Images (N, 3, S, S) in [0, 1] as points (N, 3 * 64 * 64) for the pixel distances of `copying`."""
    return F.interpolate(images.float(), size=(COPYING_SIDE, COPYING_SIDE), mode="area").flatten(1).double()


def nearest_distances(points, reference):
    """(N,) the Euclidean distance of each row of points (N, D) to its nearest row of reference (M, D)."""
    return torch.cdist(points.double(), reference.double()).min(1).values


def copying(points, new, training):
    """The data-copying test of Meehan, Chaudhuri and Dasgupta (AISTATS 2020), in one cell: how far each generated
    point lies from its nearest training point, against the same distance for real points no model trained on (new),
    as the z-score of the Mann-Whitney U statistic. z << 0: the points sit closer to training points than new real
    ones do (copies); z near 0: as new as new real images; z >> 0: farther than real images ever are (not like the
    data at all, e.g. mush). Points (N, D), new (M, D), training (K, D) in one space. Returns z and the median
    distances to the nearest training point of the points and of the new real ones."""
    mine, theirs = nearest_distances(points, training), nearest_distances(new, training)
    m, n = len(mine), len(theirs)
    u = mannwhitneyu(mine.numpy(), theirs.numpy()).statistic  # pairs where the point lies farther, ties half
    z = (u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12)
    return {"z": float(z), "median": mine.median().item(), "median_new": theirs.median().item()}


def crossfade(middles, a, b):
    """How a decoder fills the way between two images: middles (N, 3, S, S), each decoded halfway between the codes
    of the images a and b (N, 3, S, S), against the pixel cross-fade (a + b) / 2, in the pixels of `copying`.
    share: the median of |m - a| / (|m - a| + |m - b|), 0.5 when both ends are as near (0 or 1: one end again);
    off: the median of |m - (a + b) / 2| / |a - b|, 0 for the cross-fade itself (a double exposure), 0.5 for
    either end again; a new image between them lies far from both the ends and their fade."""
    m, a, b = pixels(middles), pixels(a), pixels(b)
    to_a, to_b = (m - a).norm(dim=1), (m - b).norm(dim=1)
    off = (m - (a + b) / 2).norm(dim=1) / (a - b).norm(dim=1).clamp_min(1e-12)
    return {"share": (to_a / (to_a + to_b).clamp_min(1e-12)).median().item(), "off": off.median().item()}


# ----------------------------------------------------------------------------------------------------------------
# Training the network (python realism.py --train)


def demo_images(seed, per_family, log):
    """uint8 (N, 3, 256, 256) demo images of one seed and their family indices, drawn in memory."""
    images, labels, start = [], [], time.perf_counter()
    for k in range(per_family * len(fantasy.FAMILIES)):
        family, index = k % len(fantasy.FAMILIES), k // len(fantasy.FAMILIES)
        scene = fantasy.make_scene(fantasy.FAMILIES[family], np.random.default_rng([seed, family, index]))
        images.append(torch.from_numpy(np.array(scene.convert("RGB"))).permute(2, 0, 1))
        labels.append(family)
        if (k + 1) % 400 == 0:
            log(f"  {k + 1} images of seed {seed} ({time.perf_counter() - start:.0f} s)")
    return torch.stack(images), torch.tensor(labels)


def train(out, training, validation, epochs=8, batch_size=32, lr=2e-3, log=print):
    """Train FeatureNet on (images, families), check it on the validation pair, store the feature statistics of the
    training images, save. Seeded and with deterministic algorithms: the same images give the same network."""
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    (x, y), (vx, vy) = training, validation
    net = FeatureNet()
    opt = torch.optim.Adam(net.parameters(), lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * math.ceil(len(x) / batch_size))
    g = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        net.train()
        order, total = torch.randperm(len(x), generator=g), 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            batch = x[idx].float() / 255
            flip = torch.rand(len(idx), 1, 1, 1, generator=g) < 0.5  # mirror images are the same places
            batch = torch.where(flip, batch.flip(-1), batch)
            loss = F.cross_entropy(net(batch)[0], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        net.eval()
        accuracy = (embed(net, vx)[1].argmax(1) == vy).float().mean().item()
        log(f"epoch {epoch + 1}/{epochs}: training loss {total / len(x):.4f}, validation accuracy {accuracy:.3f}")
    net.eval()
    with torch.no_grad():
        raw = torch.cat([net(x[i:i + batch_size].float() / 255)[1] for i in range(0, len(x), batch_size)])
    net.feature_mean.copy_(raw.mean(0))
    net.feature_std.copy_(raw.std(0).clamp_min(1e-6))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_atomic({"format": FORMAT, "weights": net.state_dict(), "validation_accuracy": accuracy,
                 "seeds": [TRAIN_SEED, VALID_SEED]}, out, keep_previous=False)
    log(f"wrote {out} (validation accuracy {accuracy:.3f})")
    return net, accuracy


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", action="store_true", help="train the feature network on freshly drawn demo images")
    p.add_argument("--out", default="runs/fantasy_features.pt", help="where --train writes it (default %(default)s; "
                   "test.py loads saves/fantasy_features.pt)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default %(default)s)")
    args = p.parse_args(argv)
    if not args.train:
        p.error("nothing to do: pass --train")
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    def log(line):
        print(line, flush=True)
    log(f"drawing {TRAIN_PER_FAMILY * 8} training and {VALID_PER_FAMILY * 8} validation images (seeds {TRAIN_SEED}, "
        f"{VALID_SEED})")
    training = demo_images(TRAIN_SEED, TRAIN_PER_FAMILY, log)
    validation = demo_images(VALID_SEED, VALID_PER_FAMILY, log)
    train(args.out, training, validation, epochs=args.epochs, log=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
