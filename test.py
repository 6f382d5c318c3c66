"""Evaluate a trained model: a 2-D map of its latent space, reconstructions, samples and their quality.

    python test.py --model runs/fantasy/model.pt --out runs/fantasy/test   # a model you trained
    python test.py --out imgs    # the shipped saves/fantasy/model.pt, and the README's figures redrawn

Without --model it evaluates the shipped saves/fantasy/model.pt (the shipped run, its decoder finished),
without --out it writes to runs/test.

The figures go into the folder --out: space_viz.png (the map), reconstructions.png and
samples_nearest.png; with --out NAME.png the map is NAME.png and the other figures go beside it.
Beside them, projector/ holds the codes with their thumbnails and families for TensorBoard's
projector, which turns PCA, t-SNE or UMAP of them (tensorboard --logdir OUT/projector).

Every image is encoded to its posterior mean mu (eval mode, deterministic). The map (t-SNE or PCA of
mu) draws each image as a thumbnail, framed in the colour of its family when the file names have the
form <family>_<NN> (at least two families). Reconstructions are D(mu) with the model's decoder.

Printed, for the training images and for a held-out set no run trained on (for the demo set:
data/fantasy_heldout, the same generator with another seed, made on first use):
  - PSNR and SSIM of the reconstructions (means over the images), and beside them the same for two
    baselines anyone can compute: each image shrunk to 8x8 (192 numbers, fewer than the 256 of the
    latent code) or 16x16 pixels (768 numbers) by area averaging and blown back up (bicubic);
  - for random samples D(z) of each law of latent.LAWS (the middle of the great circle between two training
    codes, the default; the Gaussian fitted to the training codes; the posterior of a random training image; a
    random point between two training codes; the prior N(0, I); a training code plus N(0, I)): the PSNR of
    each against its nearest training image (high: a copy of a training image; low: something else), and how
    many distinct training images are the nearest of some sample;
  - detail at each scale (realism.py) of the reconstructions, of the thumbnails, of the samples of each
    law and of the middle frames of straight walks between training images (the middle law's pairs);
  - on the demo domain, how far each of these sets lies from real images: the Fréchet distance and KID
    in the features of realism.py's network, beside real images no run trained on (the floor) and real
    images shrunk to 8x8, 16x16 and 32x32 and blown back up; and the families it assigns to samples.
    PSNR and SSIM reward blur; these do not. Samples and middles are also measured against those new real
    images;
  - newness, with new real images (the held-out set; on the demo domain its real images no run trained on):
    the data-copying test of Meehan et al. 2020 (realism.copying) of the samples of each law, of the middles
    and of the reconstructions (a copier, for reference), in pixels and in the domain network's features.
    A Fréchet distance alone rewards a model that draws its training images again; new real images score
    z = 0, copies far below;
  - with families, the leave-one-out k-nearest-neighbour family accuracy in latent space;
  - what drives the decoder, on one batch of training images and fakes in training mode (the decoder
    update with c = 1): the norm of its gradient from the adversarial KL terms over the norm from
    reconstruction, and the fraction of the fakes' posterior coordinates where tanh is flat.
The last line is all of it as one JSON object.
"""
import argparse
import copy
import json
import math
import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.lines import Line2D
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from skimage.metrics import structural_similarity
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors

import codes
import fantasy
import realism
from board import write_projector
from checkpoint import CheckpointError, load_model
from cli import Parser, file_in_the_way
from dataset import DatasetError, check_folder, load_folder
from distributed import pick_device
from latent import DEFAULT_LAW, LAWS, decode, encode, nearest, posteriors, rows_figure, sample
from losses import image_scale, kl_divergence, reconstruction_error, saturation, squash
from models import reparameterize

matplotlib.use("Agg")  # files only: no window, also without a display

DPI = 150
KNN = 5  # neighbours that vote for a family
RECON_SHOWN = 16  # images in reconstructions.png
THUMB_SIDES = (8, 16)  # the thumbnail baselines: 8x8x3 = 192 numbers, 16x16x3 = 768
REFERENCE_SIDES = (8, 16, 32)  # the thumbnails beside the realism and detail measures
SAMPLES = 64  # random samples whose nearest training images and families are counted
# Samples and interpolation middles whose realism and detail are measured. A Fréchet distance of a few dozen images
# mostly measures how many of each family the draw happened to hold; with 256 that noise is small.
DRAWN = 256
FEATURES = Path("saves/fantasy_features.pt")  # realism.py's network of the demo domain
DEMO, HELDOUT, HELDOUT_SEED = Path("data/fantasy"), Path("data/fantasy_heldout"), 7


def parse_args(argv=None):
    p = Parser(prog="test.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--model", default="saves/fantasy/model.pt",
      help="model.pt written by train.py or finish.py (default %(default)s)")
    a("--data", default=str(DEMO), help="folder of training images to encode, searched recursively "
      "(default %(default)s)")
    a("--heldout", default="auto", help="folder of images no run trained on, measured the same way; auto: "
      f"{HELDOUT} with --data {DEMO} (made on first use: the demo generator with seed {HELDOUT_SEED}), else none; "
      "none: skip (default %(default)s)")
    a("--method", default="tsne", choices=["tsne", "pca"], help="2-D embedding of the latent means "
      "(default %(default)s)")
    a("--out", default="runs/test", help="folder for the figures: space_viz.png, reconstructions.png, "
      "samples_nearest.png, and projector/ for TensorBoard's projector (default %(default)s; --out imgs redraws the "
      "README's); a name ending in .png is the map's, and the other figures go beside it")
    a("--features", default=str(FEATURES), help="the demo domain's feature network for the realism measures "
      "(realism.py; default %(default)s)")
    a("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default %(default)s: CUDA, then MPS, "
      "then CPU)")
    a("--batch-size", type=int, default=32, help="images per forward pass (default %(default)s)")
    a("--seed", type=int, default=0, help="random state of t-SNE and of the samples (default %(default)s)")
    a("--drawn", type=int, default=DRAWN, help="random samples of each law and interpolation middles to draw and "
      f"measure; the first {SAMPLES} of each are also counted for nearest images and families (default %(default)s; "
      "fewer is faster, and their Fréchet distances noisier and higher)")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.drawn < 2:
        p.error(f"--drawn must be at least 2 (a Fréchet distance needs two images), got {args.drawn}")
    if not 0 <= args.seed < 2 ** 32:
        p.error(f"--seed must be between 0 and 2**32 - 1, got {args.seed}")
    if not Path(args.model).exists():
        p.error(f"--model {args.model} does not exist; give a model.pt written by train.py")
    try:
        args.device = pick_device(args.device)
        check_folder(args.data)
        if args.heldout not in ("auto", "none"):
            check_folder(args.heldout, "--heldout")
    except (ValueError, DatasetError) as err:
        p.error(str(err))
    out = Path(args.out)
    if out.suffix.lower() == ".png":  # the map's file: the other figures go beside it
        args.out, args.map_out = out.parent, out
    else:
        args.out, args.map_out = out, out / "space_viz.png"
    blocked = file_in_the_way(args.out)
    if blocked:
        p.error(f"--out {out}{'' if blocked == out else f': {blocked}'} is a file; give a folder for the figures")
    return args


def families_of(paths):
    """The family of each file (its stem without the trailing _NN), or None unless all have one and
    there are at least two families."""
    matches = [re.fullmatch(r"(.+)_(\d+)", p.stem) for p in paths]
    if not all(matches):
        return None
    families = [m.group(1) for m in matches]
    return families if len(set(families)) >= 2 else None


def knn_accuracy(mu, families, k=KNN):
    """Leave-one-out k-NN: how often the majority family of an image's k nearest others is its own.
    Ties go to the family of the nearest of the tied neighbours."""
    _, idx = NearestNeighbors(n_neighbors=k).fit(mu).kneighbors()  # no X: a point is not its own neighbour
    labels = np.asarray(families)
    votes = [Counter(row).most_common(1)[0][0] for row in labels[idx]]  # most_common keeps neighbour order
    return float(np.mean(np.asarray(votes) == labels))


def knn_setting(families):
    """(k, None) when the leave-one-out family accuracy can mean something, else (None, why not)."""
    if families is None:
        return None, "the file names do not have the form <family>_<NN> with at least two families"
    alone = sorted(f for f, count in Counter(families).items() if count < 2)
    if alone:
        return None, f"{len(alone)} families have a single image ({', '.join(alone[:3])}), which no neighbour can share"
    return min(KNN, len(families) - 1), None


def thumbnail(x, side):
    """The baseline: x (N, 3, S, S) shrunk to side x side by area averaging, blown back up (bicubic)."""
    small = F.interpolate(x, size=(side, side), mode="area")
    return F.interpolate(small, size=x.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)


def psnr(x, y):
    mse = (y - x).pow(2).flatten(1).mean(1).clamp_min(1e-10)  # the floor caps PSNR at 100 dB
    return (-10 * torch.log10(mse)).tolist()


def ssim(x, y):
    return [structural_similarity(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), channel_axis=2,
                                  data_range=1.0) for a, b in zip(x, y)]


def reconstruction_metrics(model, images, batch_size):
    """PSNR and SSIM of the reconstructions D(mu) and of the thumbnail baselines; the codes mu and the
    reconstructions."""
    mu = encode(model, images, batch_size)  # (N, z_dim)
    values, recs = {}, []
    for i in range(0, len(images), batch_size):  # a batch at a time: all at once may not fit
        x = images[i:i + batch_size].float().div(255)
        recs.append(decode(model, mu[i:i + batch_size], batch_size))
        pairs = {"": recs[-1], **{f"thumb{k}_": thumbnail(x, k) for k in THUMB_SIDES}}
        batch = {**{p + "psnr": psnr(x, y) for p, y in pairs.items()},
                 **{p + "ssim": ssim(x, y) for p, y in pairs.items()}}
        for k, v in batch.items():
            values[k] = values.get(k, []) + v
    return {k: float(np.mean(v)) for k, v in values.items()}, mu, torch.cat(recs)


def sample_metrics(model, images, law, posterior, seed=0, n=DRAWN):
    """n random samples of a law (latent.LAWS); for the first SAMPLES of them the PSNR of each against its
    nearest training image (mean) and how many training images are nearest to some sample (few: the samples look
    alike). Returns those, the samples and the index of each counted one's nearest training image."""
    samples = sample(model, n, law, posterior, seed=seed)
    train = images.float().div(255)
    idx = nearest(samples[:SAMPLES].flatten(1), train.flatten(1))  # Euclidean: the highest PSNR
    metrics = {"nearest_psnr": float(np.mean(psnr(train[idx], samples[:SAMPLES]))),
               "nearest_distinct": len(set(idx.tolist())), "counted": len(idx)}
    return metrics, samples, idx


def interpolation_middles(model, mu, n=DRAWN, seed=0):
    """The middle frames of n straight walks between random pairs of different training images, D((mu_i + mu_j) / 2):
    with the same seed, the pairs of the middle law, whose middles lie on the great circle instead."""
    i, j = codes.pairs(len(mu), n, torch.Generator().manual_seed(seed))
    return decode(model, (mu[i] + mu[j]) / 2)


def crossfades(originals, recs, new, generated, n, seed):
    """realism.crossfade of the middles of great circles (the middle law) and of straight walks, each against the
    reconstructions of the two training images at its ends: the pairs codes.pairs drew for both with the seed. Beside
    them, when there are new real images (else None), each against the two training images nearest to it in pixels:
    a new place between two that are alike, as far off their fade as a new place is."""
    i, j = codes.pairs(len(recs), n, torch.Generator().manual_seed(seed))
    out = {name: realism.crossfade(generated[name], recs[i], recs[j]) for name in ("samples middle", "middles")}
    if new is not None:
        near = torch.cdist(realism.pixels(new), realism.pixels(originals)).topk(2, largest=False).indices
        out["new real images"] = realism.crossfade(new, originals[near[:, 0]], originals[near[:, 1]])
    return out


def against_originals(measure, originals, recs, held):
    """measure(images, originals) of the reconstructions, of the reference thumbnails and of the held-out
    reconstructions, each against the originals they stand for."""
    out = {"reconstructions": measure(recs, originals),
           **{f"thumb{k}": measure(thumbnail(originals, k), originals) for k in REFERENCE_SIDES}}
    if held is not None:
        out["heldout_reconstructions"] = measure(held[1], held[0])
    return out


def detail_metrics(originals, recs, held, generated):
    """Detail at each scale (realism.detail): reconstructions and the reference thumbnails against their
    originals, samples and interpolation middles against the training images."""
    out = against_originals(realism.detail, originals, recs, held)
    out.update({name: realism.detail(images, originals) for name, images in generated.items()})
    return out


def realism_metrics(net, originals, recs, held, generated, floor):
    """FD and KID in the features of the domain network, each beside its reference points measured the same way
    on as many images. Reconstructions are measured against their originals, beside the same originals shrunk to
    8x8, 16x16 and 32x32 and blown back up, and real demo images no run trained on (the floor: `floor`, or the
    training images for the held-out set). Samples and middles (as many of each) are measured against the training
    images, beside as many floor images drawn at random, as a sampler draws, and their thumbnails. Also the
    families the network assigns to the first SAMPLES samples and middles. Samples and middles are also measured
    against the floor images, new real images: a copier of the training images is far from them too. Last, in the
    same features, the data-copying test (realism.copying) of the samples, the middles and the reconstructions
    against the floor images."""
    embedded = {}

    def features(x, side=None):
        """Features of x, or of its thumbnails side x side; each embedded once (the floor is the held-out set when
        that is the demo's, and its thumbnails serve both the held-out reconstructions and the samples)."""
        if (id(x), side) not in embedded:
            embedded[id(x), side] = realism.embed(net, x if side is None else thumbnail(x, side))[0]
        return embedded[id(x), side]

    def references(reference, others, thumbs_of, pick):
        """Distances of the floor images `others` and of the thumbnails of thumbs_of, both indexed by pick."""
        return {"floor": realism.distances(others[pick], reference),
                **{f"thumb{k}": realism.distances(features(thumbs_of, k)[pick], reference) for k in REFERENCE_SIDES}}

    (train_f, train_p), floor_f, recs_f = realism.embed(net, originals), features(floor), features(recs)
    out = {"reconstructions": {"value": realism.distances(recs_f, train_f),
                               **references(train_f, floor_f, originals, slice(len(recs)))}}
    if held is not None:
        held_f = features(held[0])
        out["heldout_reconstructions"] = {"value": realism.distances(features(held[1]), held_f),
                                          **references(held_f, train_f, held[0], slice(len(held[0])))}
    n = len(next(iter(generated.values())))
    drawn = torch.randint(len(floor), (n,), generator=torch.Generator().manual_seed(0))  # with replacement
    shared = references(train_f, floor_f, floor, drawn)  # each floor image embedded once, drawn as a sampler draws
    coverage, copying = {}, {"reconstructions": realism.copying(recs_f, floor_f, train_f)}
    for name, images in generated.items():
        f, p = realism.embed(net, images)
        out[name] = {"value": realism.distances(f, train_f), "value_new": realism.distances(f, floor_f), **shared}
        coverage[name] = realism.coverage(p[:SAMPLES])
        copying[name] = realism.copying(f, floor_f, train_f)
    coverage["training images"] = realism.coverage(train_p)
    return out, coverage, copying


def pixel_copying(originals, recs, new, generated):
    """The data-copying test (realism.copying) in pixels of the reconstructions and of the samples and middles, against
    new real images (the held-out set)."""
    train_p, new_p = realism.pixels(originals), realism.pixels(new)
    return {name: realism.copying(realism.pixels(images), new_p, train_p)
            for name, images in {"reconstructions": recs, **generated}.items()}


def decoder_drive(model, images, batch=6, seed=0):
    """The decoder update of a trained model with c = 1, on a batch of training images and of fakes, in training
    mode: (gradient norm of the adversarial terms / gradient norm of reconstruction, saturated fraction of the
    fakes' posterior coordinates). Weights and settings from the model's meta (the seed's for older files)."""
    meta = {"method": "as", "tanh": "all", "beta_rec": 0.5, "beta_kl": 1.0, **model.meta}
    E, D = copy.deepcopy(model.encoder).train(), copy.deepcopy(model.decoder).train()  # batch statistics
    g = torch.Generator(next(D.parameters()).device).manual_seed(seed)
    x = images[:batch].to(next(D.parameters()).device).float().div(255)
    mu, logvar = E(x)
    rec = D(reparameterize(mu, logvar, torch.randn(mu.shape, generator=g, device=mu.device)).detach())
    fake = D(torch.randn(mu.shape, generator=g, device=mu.device))
    (mu_r, lv_r), (mu_f, lv_f) = E(rec), E(fake)
    saturated = saturation(mu_f, lv_f).item()
    if meta["method"] == "as" and meta["tanh"] != "as-only":  # all and both squash the decoder's KL terms
        (mu_r, lv_r), (mu_f, lv_f) = squash(mu_r, lv_r), squash(mu_f, lv_f)
    s = image_scale(x.shape[-1])
    beta_adv = meta.get("beta_adv") or meta["beta_kl"]
    parts = [s * meta["beta_rec"] * reconstruction_error(x, rec).mean(),
             s * 0.5 * beta_adv * (kl_divergence(mu_r, lv_r).mean() + kl_divergence(mu_f, lv_f).mean())]
    params = list(D.parameters())
    norms = [torch.sqrt(sum(g.square().sum() for g in torch.autograd.grad(p, params, retain_graph=True)))
             for p in parts]
    return (norms[1] / norms[0]).item(), saturated


def heldout_folder(args):
    """The held-out folder to measure, or None; the demo set's is made on first use."""
    if args.heldout == "none" or (args.heldout == "auto" and Path(args.data) != DEMO):
        return None
    return demo_heldout() if args.heldout == "auto" else Path(args.heldout)


def demo_heldout(folder=HELDOUT):
    """data/fantasy_heldout: 80 demo images no run trains on, made on first use. They are made in a folder of
    another name (ignored by git) and renamed into place, so that a test.py stopped while making them, or a
    second one making them at the same time, never leaves or reads a half-made set."""
    if not folder.is_dir():
        print(f"making the held-out demo images in {folder} (seed {HELDOUT_SEED}, about 15 s)")
        part = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", suffix=".tmp", dir=folder.parent))
        fantasy.make_demo(part, count=80, seed=HELDOUT_SEED)
        try:
            part.rename(folder)
        except OSError:  # another test.py made it first: theirs is the same set
            shutil.rmtree(part)
    return folder


def realism_setting(path, families):
    """(the domain network, None) when the realism measures apply, else (None, why not): they need images of the
    demo domain (file names of its families) and the network file."""
    if families is None or not set(families) <= set(fantasy.FAMILIES):
        return None, ("the images are not of the demo domain (their file names are not <family>_<NN> with the "
                      f"families of fantasy.py), and the feature network knows only that domain")
    if not Path(path).is_file():
        return None, f"{path} is missing (python realism.py --train --out {path} makes it)"
    return realism.load_net(path), None


def embed(mu, method, seed):
    """2-D coordinates of mu (N, z_dim) and the names of the two axes."""
    if method == "pca":
        pca = PCA(n_components=2).fit(mu)
        ratio = pca.explained_variance_ratio_ * 100
        return pca.transform(mu), [f"PC {i + 1} ({r:.0f}% of variance)" for i, r in enumerate(ratio)]
    n = len(mu)
    perplexity = max(2.0, min(30.0, (n - 1) / 3))  # must stay below n; 30 (the usual value) from 91 images
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(mu)
    return xy, ["t-SNE 1", "t-SNE 2"]


def map_figure(xy, images, families, axis_names, title):
    """Each image as a thumbnail at its 2-D position, framed in its family's colour."""
    n = len(images)
    inches = float(np.clip(5.5 / math.sqrt(n), 0.12, 0.9))  # 80 images: 0.61 in; smaller as the map fills
    px = max(8, round(inches * DPI))
    thumbs = F.interpolate(images.float(), size=(px, px), mode="area").byte().permute(0, 2, 3, 1).numpy()
    names = sorted(set(families)) if families else []
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colour = {f: cmap(i % cmap.N) for i, f in enumerate(names)}

    fig, ax = plt.subplots(figsize=(10, 9), constrained_layout=True)
    ax.scatter(xy[:, 0], xy[:, 1], s=0)  # sets the data limits; the thumbnails do not
    for i in range(n):
        frame = dict(edgecolor=colour[families[i]], linewidth=min(2.0, 4 * inches)) if families else \
            dict(edgecolor="0.6", linewidth=0.6)
        box = AnnotationBbox(OffsetImage(thumbs[i], zoom=72 / DPI), xy[i], frameon=True, pad=0.12, bboxprops=frame)
        ax.add_artist(box)
    ax.margins(inches / 2 / 8 + 0.04)  # half a thumbnail (the axes are about 8 in wide and high) and a bit
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(title, fontsize=12)
    if families:
        handles = [Line2D([], [], marker="s", linestyle="", markersize=11, markerfacecolor="none",
                          markeredgewidth=2.5, markeredgecolor=colour[f], label=f) for f in names]
        ax.legend(handles=handles, title="family", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False,
                  ncol=math.ceil(len(names) / 25))
    return fig


def shown(n, families, count=RECON_SHOWN):
    """Indices of the images to show: one or two per family, else spread evenly over the set."""
    candidates = list(range(n))
    if families:
        names = sorted(set(families))
        per = max(1, min(2, count // len(names)))
        members = [[i for i in range(n) if families[i] == f] for f in names]
        candidates = [m[j * len(m) // per] for m in members for j in range(min(per, len(m)))]
    spread = np.linspace(0, len(candidates) - 1, min(count, len(candidates))).round().astype(int)
    return [candidates[k] for k in np.unique(spread)]


def evaluate(args):
    model = load_model(args.model, args.device)
    images, paths = load_folder(args.data, model.config.image_size)
    n = len(images)
    if n < 3:
        raise DatasetError(f"{args.data} has {n} usable images; a 2-D map needs at least 3")
    families = families_of(paths)
    metrics, mu, recs = reconstruction_metrics(model, images, args.batch_size)
    k, no_knn = knn_setting(families)
    metrics.update(knn_accuracy=knn_accuracy(mu.numpy(), families, k) if k else None, knn_k=k, images=n)
    posterior = posteriors(model, images, args.batch_size)
    drawn = {law: sample_metrics(model, images, law, posterior, args.seed, args.drawn) for law in LAWS}
    metrics["samples"] = {law: sampled for law, (sampled, _, _) in drawn.items()}
    if model.meta.get("method") != "vae":
        metrics["grad_adv_over_rec"], metrics["sat_fake"] = decoder_drive(model, images, seed=args.seed)
    heldout, held = heldout_folder(args), None
    if heldout is not None:
        held_images, _ = load_folder(heldout, model.config.image_size)
        held_metrics, _, held_recs = reconstruction_metrics(model, held_images, args.batch_size)
        metrics["heldout"] = {**held_metrics, "images": len(held_images), "folder": str(heldout)}
        held = (held_images.float().div(255), held_recs)

    originals = images.float().div(255)
    generated = {**{f"samples {law}": samples for law, (_, samples, _) in drawn.items()},
                 "middles": interpolation_middles(model, mu, args.drawn, args.seed)}
    metrics["detail"] = detail_metrics(originals, recs, held, generated)
    metrics["points"] = against_originals(realism.points, originals, recs, held)  # stars, lit windows
    net, no_realism = realism_setting(args.features, families)
    new = held[0] if held is not None else None  # real images no run trained on, for the data-copying test
    if net is not None:
        # the floor: real demo images no run trained on (the held-out set when it is the demo's)
        size = model.config.image_size
        new = held[0] if heldout == HELDOUT else load_folder(demo_heldout(), size)[0].float().div(255)
        metrics["realism"], metrics["coverage"], copying = realism_metrics(net, originals, recs, held, generated, new)
    if new is not None:
        metrics["newness"] = {name: {"pixels": c, **({"features": copying[name]} if net else {})}
                              for name, c in pixel_copying(originals, recs, new, generated).items()}
    metrics["crossfade"] = crossfades(originals, recs, new, generated, args.drawn, args.seed)

    name = args.model if "epoch" not in model.meta else f"{args.model} (epoch {model.meta['epoch']})"
    xy, axis_names = embed(mu.numpy(), args.method, args.seed)
    label = {"tsne": "t-SNE", "pca": "PCA"}[args.method]
    save(map_figure(xy, images, families, axis_names, f"{label} of the latent means: {name}, {n} images"),
         args.map_out)
    projector = write_projector(args.out / "projector", mu, originals, [p.stem for p in paths], families)
    print(f"wrote {projector}: the {n} codes with their thumbnails{' and families' * bool(families)} for TensorBoard's "
          f"projector (tensorboard --logdir {projector}, then its PROJECTOR tab)")

    idx = shown(n, families)
    original = images[idx].float().div(255)
    rows = [("original", original, [paths[i].stem for i in idx]), ("reconstruction", decode(model, mu[idx]), None),
            ("8x8 thumbnail", thumbnail(original, 8), None)]
    save(rows_figure(rows, f"Reconstructions D(\u03bc) by {name}; over all {n} images PSNR {metrics['psnr']:.2f} dB, "
                           f"SSIM {metrics['ssim']:.3f} "
                           f"(8x8: {metrics['thumb8_psnr']:.2f} dB, {metrics['thumb8_ssim']:.3f})"),
         args.out / "reconstructions.png")
    shown_samples = list(range(min(RECON_SHOWN // 2, args.drawn)))  # one row of each law
    rows = [row for law, (sampled, samples, near) in drawn.items()
            for row in [(f"{law} ({sampled['nearest_psnr']:.1f} dB)", samples[shown_samples], None),
                        ("nearest", images[near[shown_samples]].float().div(255),
                         [paths[i].stem for i in near[shown_samples]])]]
    laws = "; ".join(f"{law}, {what}" for law, what in LAWS.items())
    save(rows_figure(rows, f"Random samples D(z) by {name} over their nearest training images (PSNR to the "
                           f"nearest);\nz from: {laws}"),
         args.out / "samples_nearest.png")

    report(metrics, k, no_knn, no_realism)
    return metrics


def save(fig, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    print(f"wrote {path}")


SHOWN_AS = {"reconstructions": "training reconstructions", "heldout_reconstructions": "held-out reconstructions",
            **{f"thumb{k}": f"{k}x{k} thumbnails" for k in REFERENCE_SIDES}, "middles": "straight walks' middles"}


def report(metrics, k, no_knn, no_realism):
    """The metrics in words, each beside its baselines."""
    def line(m):
        return (f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}; baselines: 8x8 thumbnail {m['thumb8_psnr']:.2f} dB, "
                f"SSIM {m['thumb8_ssim']:.4f}; "
                f"16x16 thumbnail {m['thumb16_psnr']:.2f} dB, SSIM {m['thumb16_ssim']:.4f}")
    print(f"training images ({metrics['images']}): {line(metrics)}")
    if "heldout" in metrics:
        h = metrics["heldout"]
        print(f"held-out images ({h['images']}, {h['folder']}): {line(h)}")
    for law, m in metrics["samples"].items():
        default = ", the default law" if law == DEFAULT_LAW else ""
        print(f"random samples ({m['counted']}, {law}{default}: {LAWS[law]}): PSNR to the nearest training image "
              f"{m['nearest_psnr']:.2f} dB, {m['nearest_distinct']} distinct nearest images")

    print(f"detail at each scale: power of the luminance spectrum over the originals' (1: as much structure), at "
          f"wavelengths {' | '.join(realism.band_names())} of a 256x256 image; distance: RMS of log2 of the ratios "
          f"(0: every scale as the originals; samples and middles against the training images); grid: power at a "
          f"period of 2 px along the axes over the originals' (a block grid, not detail)")
    for name, d in metrics["detail"].items():
        bands = "  ".join("     -" if d[b] is None else f"{d[b]:6.3f}" for b in realism.band_names())
        print(f"  {SHOWN_AS.get(name, name):32s} {bands}   distance {d['distance']:.2f}   grid {d['grid']:.2f}")

    print(f"bright points (stars, lit windows: pixels the brightest of their 3x3 neighbourhood and "
          f"{realism.POINT_CONTRAST} above their 7x7 mean) against the originals': how many, the share within "
          f"{realism.POINT_RADIUS} px of an original's point (at random: chance), the share of the originals' drawn")
    for name, p in metrics["points"].items():
        print(f"  {SHOWN_AS.get(name, name):32s} {p['count']:5.2f} as many, {p['placed']:.2f} placed (chance "
              f"{p['chance']:.2f}), {p['drawn']:.2f} of the originals' drawn")

    if "realism" in metrics:
        print(f"realism: Fréchet distance / KID x 1000 in the features of the demo domain's network (lower: closer). "
              f"Reconstructions against their originals, samples and middles against the training images; beside "
              f"each: real images no run trained on (floor) and real images shrunk to NxN and blown back up, measured "
              f"the same way on as many images")
        for name, r in metrics["realism"].items():
            refs = ", ".join(f"{'floor' if ref == 'floor' else ref[5:] + 'x' + ref[5:]} {v['fd']:.1f} / "
                             f"{1000 * v['kid']:.1f}" for ref, v in r.items() if not ref.startswith("value"))
            value = r["value"]
            new = f"; against new real images {r['value_new']['fd']:.1f}" if "value_new" in r else ""
            print(f"  {SHOWN_AS.get(name, name):32s} {value['fd']:7.1f} / {1000 * value['kid']:.1f}   ({refs}){new}")
        print("families the network assigns (of 8), and its mean confidence:")
        for name, c in metrics["coverage"].items():
            counts = ", ".join(f"{f} {n}" for f, n in c["families"].items() if n)
            shown = SHOWN_AS.get(name, name)
            print(f"  {shown:32s} {c['present']} present, confidence {c['confidence']:.2f} ({counts})")
    else:
        print(f"no realism measures: {no_realism}")

    if "newness" in metrics:
        print("newness, the data-copying test (Meehan et al. 2020): z of the distances to the nearest training image "
              "against those of new real images (z << 0: copies of training images; near 0: as new as real images; "
              ">> 0: farther than real images), and the median distance, in pixels (64x64) and in the features; new "
              "real images: z 0 by construction, median " + ", ".join(
                  f"{space} {c['median_new']:.2f}" for space, c in next(iter(metrics["newness"].values())).items()))
        for name, spaces in metrics["newness"].items():
            cells = "   ".join(f"{space} z {c['z']:6.1f}, median {c['median']:.2f}" for space, c in spaces.items())
            print(f"  {SHOWN_AS.get(name, name):32s} {cells}")
    else:
        print("no newness measures: no real images no run trained on (--heldout DIR gives them)")

    print("between two codes: each end's share of the middle (0.5: as near to both; 0 or 1: one end again) and its "
          "distance from the pixel cross-fade of the two ends over theirs (0: a double exposure of the two; 0.5: one "
          "end again), medians; new real images: each between the two training images nearest to it")
    for name, c in metrics["crossfade"].items():
        print(f"  {SHOWN_AS.get(name, name):32s} share {c['share']:.2f}, off the cross-fade {c['off']:.2f}")

    if "sat_fake" in metrics:
        print(f"what drives the decoder: adversarial gradient / reconstruction gradient "
              f"{metrics['grad_adv_over_rec']:.2g}; fakes' posterior coordinates where tanh is flat "
              f"{metrics['sat_fake']:.0%}")
    if k:
        print(f"{k}-NN family accuracy in latent space (leave one out): {metrics['knn_accuracy']:.3f}")
    else:
        print(f"no family accuracy: {no_knn}")


def main(argv=None):
    args = parse_args(argv)
    try:
        metrics = evaluate(args)
    except (CheckpointError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
