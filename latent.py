"""Walks in the latent space of a trained model: encode, interpolate, decode, sample, and show.

Used by test.py (the t-SNE map) and img_interpolation.ipynb. Images go in as the uint8 tensors of
`dataset.load_folder` and come out as float tensors in [0, 1] on the CPU.
"""
import math
import textwrap

import imageio.v3 as iio
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import codes


def _device(model):
    return next(model.parameters()).device


@torch.no_grad()
def encode(model, images, batch_size=32):
    """The posterior means mu of uint8 images (N, 3, S, S), in batches: (N, z_dim) on the CPU."""
    mus = [model.encoder(images[i:i + batch_size].to(_device(model)).float().div(255))[0].cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(mus)


@torch.no_grad()
def decode(model, z, batch_size=32):
    """Images of latent codes (N, z_dim) by the model's decoder, clamped to [0, 1], on the CPU."""
    return torch.cat([model.decoder(z[i:i + batch_size].to(_device(model))).clamp(0, 1).cpu()
                      for i in range(0, len(z), batch_size)])


def pick(paths, names):
    """Indices in paths of the files named (stem, e.g. "castle_00", or file name)."""
    index = {**{p.stem: i for i, p in enumerate(paths)}, **{p.name: i for i, p in enumerate(paths)}}
    missing = [n for n in names if n not in index]
    if missing:
        raise KeyError(f"no image named {', '.join(missing)} among the {len(paths)} loaded")
    return [index[n] for n in names]


def _fractions(frames):
    """frames points from 0 to 1, both ends included, as a column (frames, 1) for codes.mix and codes.arc."""
    return torch.linspace(0, 1, frames).unsqueeze(1)


def lerp(z0, z1, frames):
    """frames codes on the straight line from z0 to z1, both ends included: (frames, z_dim)."""
    return codes.mix(z0, z1, _fractions(frames))


def slerp(z0, z1, frames):
    """frames codes on the great circle from z0 to z1 (codes.arc), both ends included: (frames, z_dim).

    With equal norms the norm stays constant, as for samples of N(0, I), which concentrate on a sphere.
    Nearly parallel (or opposite) codes have no unique great circle: then it is the straight line.
    """
    return codes.arc(z0, z1, _fractions(frames))


def shrunk(images, size=None):
    """Images (N, 3, S, S) shrunk to size x size by area averaging, as large as a page shows them; unchanged when
    size is None, 0 or not smaller than S."""
    return F.interpolate(images, size=(size, size), mode="area") if size and size < images.shape[-1] else images


def save_gif(path, images, frame_ms=80, hold_ms=600, size=None):
    """A looping ping-pong GIF of images (N, 3, S, S) in [0, 1]: forth and back, the two ends held longer; with
    size, each frame shrunk to size x size (`shrunk`).

    Returns the number of frames, 2N - 2 (the ends are not repeated).
    """
    frames = (shrunk(images, size).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1)  # (N, S, S, 3)
    frames = torch.cat([frames, frames.flip(0)[1:-1]]).numpy()
    ends = (0, len(images) - 1)
    durations = [hold_ms if i in ends else frame_ms for i in range(len(frames))]
    iio.imwrite(path, frames, extension=".gif", duration=durations, loop=0)
    return len(frames)


def nearest(z, bank):
    """For each code of z (F, z_dim), the index of its nearest row of bank (N, z_dim), Euclidean."""
    return torch.cdist(z, bank).argmin(dim=1)


# The laws of random codes (sample_codes). The default draws new codes: by the data-copying test (test.py;
# docs/STUDY.md, "New places") the samples of the posterior and of the mixes are the training images again; those of
# the middles and of the fitted Gaussian lie as far from every training image as real images no model saw do, and the
# middles are the more real of the two (though far less real than those images).
LAWS = {"middle": "the middle of the great circle between the codes of two random training images",
        "fitted": "the Gaussian fitted to the training codes",
        "posterior": "the posterior of a random training image (variations of the training images)",
        "mix": "a random point between the codes of two random training images",
        "prior": "z ~ N(0, I)",
        "exemplar": "a random training image's code plus N(0, I) (the prior of train.py --prior exemplar)"}
DEFAULT_LAW = "middle"
UNTEMPERED = {"middle"}  # the laws whose codes the temperature does not change (sample_codes)


def law_title(law, temperature):
    """What a figure of samples of a law says of their codes: the law, and the temperature where it applies."""
    return f"z from {LAWS[law]}" + ("" if law in UNTEMPERED else f" (x {temperature:g})")


@torch.no_grad()
def posteriors(model, images, batch_size=32):
    """(mu, logvar) of uint8 images (N, 3, S, S), in batches, on the CPU."""
    parts = [model.encoder(images[i:i + batch_size].to(_device(model)).float().div(255))
             for i in range(0, len(images), batch_size)]
    return torch.cat([p[0].cpu() for p in parts]), torch.cat([p[1].cpu() for p in parts])


def sample_codes(n, law="prior", z_dim=None, posterior=None, temperature=1.0, seed=0):
    """n latent codes (n, z_dim) of one law; temperature < 1 trades variety for fidelity.

    prior: z ~ N(0, I) x temperature.
    fitted: the Gaussian fitted to the training images' means (`fitted`), its spread x temperature.
    posterior: the aggregate posterior, the law of the codes the decoder trained on: the posterior
      N(mu_i, sigma_i^2) of a training image i drawn at random, its spread x temperature. A small beta_kl
      leaves each posterior narrow, so these are close to reconstructions of the training images.
    middle: the point halfway along the great circle (codes.arc) from the mean of a random training image to that
      of another: a slerp walk's middle frame, as far from both ends as a walk goes. Temperature does not apply:
      one pair has one middle (80 images have 3,160 pairs).
    mix: the point t ~ U(0, 1) of the way from the mean of a random training image to that of another
      (codes.mix): the frames of walks, where train.py --fakes mix trains the decoder; temperature x (t - 1/2)
      narrows t around the middle for temperature < 1, away from the two ends, which are training images.
    exemplar: the mean of a random training image plus N(0, I) x temperature: the exemplar prior (train.py --prior
      exemplar), whose fakes the decoder of such a run trained on.
    posterior: (mu, logvar) of the training images (`posteriors`), for all laws but the prior.
    """
    g = torch.Generator().manual_seed(seed)
    if law == "prior":
        return torch.randn(n, z_dim, generator=g) * temperature
    mu, logvar = posterior
    if law == "fitted":
        return codes.fitted(mu, torch.randn(n, len(mu), generator=g) * temperature)
    if law == "posterior":
        i = torch.randint(len(mu), (n,), generator=g)
        return mu[i] + torch.exp(0.5 * logvar[i]) * torch.randn(n, mu.shape[1], generator=g) * temperature
    if law == "middle":
        i, j = codes.pairs(len(mu), n, g)
        return codes.arc(mu[i], mu[j], torch.full((n, 1), 0.5))
    if law == "exemplar":
        i = torch.randint(len(mu), (n,), generator=g)
        return mu[i] + torch.randn(n, mu.shape[1], generator=g) * temperature
    if law == "mix":
        i, j = codes.pairs(len(mu), n, g)
        t = 0.5 + (torch.rand(n, 1, generator=g) - 0.5) * temperature
        return codes.mix(mu[i], mu[j], t)
    raise ValueError(f"unknown sampling law {law!r}: one of {', '.join(LAWS)}")


def sample(model, n, law="prior", posterior=None, temperature=1.0, seed=0):
    """n images decoded from codes of a law (`sample_codes`)."""
    return decode(model, sample_codes(n, law, model.config.z_dim, posterior, temperature, seed))


def _bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def rows_figure(rows, title, columns=8, inches=1.5):
    """Labelled rows of images, wrapped every `columns` images (e.g. originals over reconstructions).

    rows: [(label, images (N, 3, S, S) in [0, 1], N captions or None)], the same N in every row.
    """
    n = len(rows[0][1])
    columns = min(columns, n)
    blocks = math.ceil(n / columns)
    label, gap, caption = 0.3, 0.05, 0.2  # inches: row labels, between images, captions
    width = label + columns * (inches + gap)
    lines = wrapped(title, width, 11)
    head = 0.2 + 0.18 * len(lines)  # the title, 0.18 inch a line
    block = sum(inches + gap + (caption if r[2] else 0) for r in rows) + 2 * gap
    fig = plt.figure(figsize=(width, head + blocks * block))
    w, h = fig.get_size_inches()
    top = h - head
    for b in range(blocks):
        for name, images, captions in rows:
            top -= (caption if captions else 0) + inches
            for c in range(min(columns, n - b * columns)):
                i = b * columns + c
                ax = fig.add_axes(((label + c * (inches + gap)) / w, top / h, inches / w, inches / h))
                ax.imshow(images[i].permute(1, 2, 0).numpy())
                _bare(ax)
                if captions:
                    ax.set_title(captions[i], fontsize=8, pad=2)
                if c == 0:
                    ax.set_ylabel(name, fontsize=10)
            top -= gap
        top -= 2 * gap
    fig.suptitle("\n".join(lines), y=1 - 0.12 / h, va="top", fontsize=11)
    return fig


def tile(images, nrow=8, padding=2):
    """Images (N, 3, H, W) side by side, nrow to a row, on white with padding pixels around each: (3, H', W')."""
    n, c, h, w = images.shape
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    grid = images.new_ones(c, rows * (h + padding) + padding, cols * (w + padding) + padding)
    for i, image in enumerate(images):
        top, left = (i // cols) * (h + padding) + padding, (i % cols) * (w + padding) + padding
        grid[:, top:top + h, left:left + w] = image
    return grid


TITLE_POINTS = 13  # the font size of grid_figure's titles


def wrapped(title, inches, points):
    """The lines of title (its own line breaks kept) wrapped to a figure inches wide at a font of points."""
    width = int(inches * 72 / (0.55 * points))  # a character is about 0.55 em wide
    return [line for paragraph in title.split("\n") for line in textwrap.wrap(paragraph, width)]


def grid_figure(images, title, nrow=8, dpi=150, size=None):
    """A grid of images (N, 3, S, S) in [0, 1] at their pixel size (or larger, to fill 6 inches), under a title;
    with size, each image shrunk to size x size first (`shrunk`)."""
    grid = tile(shrunk(images, size), nrow).permute(1, 2, 0).numpy()
    h, w = grid.shape[:2]
    width = max(w / dpi, 6.0)
    lines = wrapped(title, width, TITLE_POINTS)
    height, head = width * h / w, 0.2 + 0.25 * len(lines)  # inches: the grid, the title
    fig = plt.figure(figsize=(width, height + head), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, height / (height + head)))
    ax.imshow(grid, interpolation="nearest")
    ax.axis("off")
    fig.suptitle("\n".join(lines), y=1 - 0.1 / (height + head), va="top", fontsize=TITLE_POINTS)
    return fig
