"""Evaluate a trained model: a 2-D map of its latent space, reconstructions, samples and their quality.

    python test.py --model runs/fantasy/model.pt --out runs/fantasy/test   # a model you trained
    python test.py --out imgs    # the shipped saves/fantasy/model.pt, and the README's figures redrawn

Without --model it evaluates the shipped saves/fantasy/model.pt, without --out it writes to runs/test.

The figures go into the folder --out: space_viz.png (the map), reconstructions.png and
samples_nearest.png; with --out NAME.png the map is NAME.png and the other figures go beside it.

Every image is encoded to its posterior mean mu (eval mode, deterministic). The map (t-SNE or PCA of
mu) draws each image as a thumbnail, framed in the colour of its family when the file names have the
form <family>_<NN> (at least two families). Reconstructions are D(mu) with the EMA decoder.

Printed, for the training images and for a held-out set no run trained on (for the demo set:
data/fantasy_heldout, the same generator with another seed, made on first use):
  - PSNR and SSIM of the reconstructions (means over the images), and beside them the same for two
    baselines anyone can compute: each image shrunk to 8x8 (192 numbers, fewer than the 256 of the
    latent code) or 16x16 pixels (768 numbers) by area averaging and blown back up (bicubic);
  - the blur of the reconstructions and of the originals (scikit-image's blur_effect on grey levels:
    0 sharp, 1 blurry);
  - for random samples D(z), z ~ N(0, I), and z from the Gaussian fitted to the training images' codes:
    their blur, the PSNR of each against its nearest training image (high: a copy of a training
    image; low: something else), and how many distinct training images are the nearest of some sample;
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
import sys
from collections import Counter
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.lines import Line2D
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from skimage.color import rgb2gray
from skimage.measure import blur_effect
from skimage.metrics import structural_similarity
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors

import fantasy
from checkpoint import CheckpointError, load_model
from cli import Parser
from dataset import DatasetError, check_folder, load_folder
from distributed import pick_device
from latent import decode, encode, nearest, rows_figure, sample
from losses import image_scale, kl_divergence, reconstruction_error, saturation, squash
from models import reparameterize

matplotlib.use("Agg")  # files only: no window, also without a display

DPI = 150
KNN = 5  # neighbours that vote for a family
RECON_SHOWN = 16  # images in reconstructions.png
THUMB_SIDES = (8, 16)  # the thumbnail baselines: 8x8x3 = 192 numbers, 16x16x3 = 768
SAMPLES = 64  # random samples whose blur and nearest training image are measured
DEMO, HELDOUT, HELDOUT_SEED = Path("data/fantasy"), Path("data/fantasy_heldout"), 7


def parse_args(argv=None):
    p = Parser(prog="test.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--model", default="saves/fantasy/model.pt", help="exported model written by train.py (default %(default)s)")
    a("--data", default=str(DEMO), help="folder of training images to encode, searched recursively "
      "(default %(default)s)")
    a("--heldout", default="auto", help="folder of images no run trained on, measured the same way; auto: "
      f"{HELDOUT} with --data {DEMO} (made on first use: the demo generator with seed {HELDOUT_SEED}), else none; "
      "none: skip (default %(default)s)")
    a("--method", default="tsne", choices=["tsne", "pca"], help="2-D embedding of the latent means "
      "(default %(default)s)")
    a("--out", default="runs/test", help="folder for the figures: space_viz.png, reconstructions.png, "
      "samples_nearest.png (default %(default)s; --out imgs redraws the README's); a name ending in .png is the "
      "map's, and the other figures go beside it")
    a("--recon-out", help=argparse.SUPPRESS)  # older commands (study.py's) name the other two figures too
    a("--samples-out", help=argparse.SUPPRESS)
    a("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default %(default)s: CUDA, then MPS, "
      "then CPU)")
    a("--batch-size", type=int, default=32, help="images per forward pass (default %(default)s)")
    a("--seed", type=int, default=0, help="random state of t-SNE and of the samples (default %(default)s)")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {args.batch_size}")
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
    elif out.exists() and not out.is_dir():
        p.error(f"--out {out} is a file; give a folder for the figures")
    else:
        args.out, args.map_out = out, out / "space_viz.png"
    args.recon_out = args.recon_out or args.out / "reconstructions.png"
    args.samples_out = args.samples_out or args.out / "samples_nearest.png"
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


def blur(x):
    """scikit-image's blur_effect (Crete et al. 2007) of each image's grey levels: 0 sharp, 1 blurry."""
    return [blur_effect(rgb2gray(a.permute(1, 2, 0).numpy())) for a in x]


def reconstruction_metrics(model, images, batch_size):
    """PSNR, SSIM and blur of the reconstructions D(mu), of the thumbnail baselines, blur of the originals."""
    mu = encode(model, images, batch_size)  # (N, z_dim)
    values = {}
    for i in range(0, len(images), batch_size):  # a batch at a time: all at once may not fit
        x = images[i:i + batch_size].float().div(255)
        rec = decode(model, mu[i:i + batch_size], batch_size)
        pairs = {"": rec, **{f"thumb{k}_": thumbnail(x, k) for k in THUMB_SIDES}}
        batch = {**{p + "psnr": psnr(x, y) for p, y in pairs.items()}, **{p + "ssim": ssim(x, y) for p, y in pairs.items()},
                 "blur": blur(rec), "blur_original": blur(x)}
        for k, v in batch.items():
            values[k] = values.get(k, []) + v
    return {k: float(np.mean(v)) for k, v in values.items()}, mu


def sample_metrics(model, images, codes=None, n=SAMPLES, seed=0):
    """Blur of n random samples (of the prior, or of the Gaussian fitted to codes), the PSNR of each against its
    nearest training image (means) and how many training images are nearest to some sample (few: the samples
    look alike), plus the samples and the index of each one's nearest training image."""
    samples = sample(model, n, seed=seed, codes=codes)
    train = images.float().div(255)
    idx = nearest(samples.flatten(1), train.flatten(1))  # Euclidean: the highest PSNR
    prefix = "" if codes is None else "fitted_"
    metrics = {prefix + "sample_blur": float(np.mean(blur(samples))),
               prefix + "sample_nearest_psnr": float(np.mean(psnr(train[idx], samples))),
               prefix + "sample_nearest_distinct": len(set(idx.tolist()))}
    return metrics, samples, idx


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
    if meta["method"] == "as" and meta["tanh"] == "all":
        (mu_r, lv_r), (mu_f, lv_f) = squash(mu_r, lv_r), squash(mu_f, lv_f)
    s = image_scale(x.shape[-1])
    parts = [s * meta["beta_rec"] * reconstruction_error(x, rec).mean(),
             s * 0.5 * meta["beta_kl"] * (kl_divergence(mu_r, lv_r).mean() + kl_divergence(mu_f, lv_f).mean())]
    params = list(D.parameters())
    norms = [torch.sqrt(sum(g.square().sum() for g in torch.autograd.grad(p, params, retain_graph=True)))
             for p in parts]
    return (norms[1] / norms[0]).item(), saturated


def heldout_folder(args):
    """The held-out folder to measure, or None; the demo set's is made on first use."""
    if args.heldout == "none" or (args.heldout == "auto" and Path(args.data) != DEMO):
        return None
    folder = HELDOUT if args.heldout == "auto" else Path(args.heldout)
    if args.heldout == "auto" and not folder.is_dir():
        print(f"making the held-out demo images in {folder} (seed {HELDOUT_SEED}, about 15 s)")
        fantasy.make_demo(folder, count=80, seed=HELDOUT_SEED)
    return folder


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
    metrics, mu = reconstruction_metrics(model, images, args.batch_size)
    k, no_knn = knn_setting(families)
    metrics.update(knn_accuracy=knn_accuracy(mu.numpy(), families, k) if k else None, knn_k=k, images=n)
    drawn = {"N(0, I)": sample_metrics(model, images, seed=args.seed),
             "fitted": sample_metrics(model, images, mu, seed=args.seed)}
    for sampled, _, _ in drawn.values():
        metrics.update(sampled)
    if model.meta.get("method") != "vae":
        metrics["grad_adv_over_rec"], metrics["sat_fake"] = decoder_drive(model, images, seed=args.seed)
    heldout = heldout_folder(args)
    if heldout is not None:
        held_images, _ = load_folder(heldout, model.config.image_size)
        metrics["heldout"] = {**reconstruction_metrics(model, held_images, args.batch_size)[0],
                              "images": len(held_images), "folder": str(heldout)}

    name = args.model if "epoch" not in model.meta else f"{args.model} (epoch {model.meta['epoch']})"
    xy, axis_names = embed(mu.numpy(), args.method, args.seed)
    label = {"tsne": "t-SNE", "pca": "PCA"}[args.method]
    save(map_figure(xy, images, families, axis_names, f"{label} of the latent means: {name}, {n} images"),
         args.map_out)

    idx = shown(n, families)
    original = images[idx].float().div(255)
    rows = [("original", original, [paths[i].stem for i in idx]), ("reconstruction", decode(model, mu[idx]), None),
            ("8x8 thumbnail", thumbnail(original, 8), None)]
    save(rows_figure(rows, f"Reconstructions D(\u03bc) by {name}; over all {n} images PSNR {metrics['psnr']:.2f} dB, "
                           f"SSIM {metrics['ssim']:.3f} (8x8: {metrics['thumb8_psnr']:.2f} dB, {metrics['thumb8_ssim']:.3f})"),
         args.recon_out)
    shown_samples = list(range(min(RECON_SHOWN // 2, SAMPLES)))  # one row of each law
    rows = [row for law, (_, samples, near) in drawn.items()
            for row in [(f"z ~ {law}", samples[shown_samples], None),
                        ("nearest", images[near[shown_samples]].float().div(255),
                         [paths[i].stem for i in near[shown_samples]])]]
    save(rows_figure(rows, f"Random samples D(z) by {name} over their nearest training images:\nz ~ N(0, I) "
                           f"(PSNR to the nearest {metrics['sample_nearest_psnr']:.2f} dB), z from the Gaussian "
                           f"fitted to the training codes ({metrics['fitted_sample_nearest_psnr']:.2f} dB)"),
         args.samples_out)

    report(metrics, k, no_knn)
    return metrics


def save(fig, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    print(f"wrote {path}")


def report(metrics, k, no_knn):
    """The metrics in words, each beside its baseline."""
    def line(m):
        return (f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, blur {m['blur']:.3f} (originals "
                f"{m['blur_original']:.3f}); baselines: 8x8 thumbnail {m['thumb8_psnr']:.2f} dB, SSIM "
                f"{m['thumb8_ssim']:.4f}; 16x16 thumbnail {m['thumb16_psnr']:.2f} dB, SSIM {m['thumb16_ssim']:.4f}")
    print(f"training images ({metrics['images']}): {line(metrics)}")
    if "heldout" in metrics:
        h = metrics["heldout"]
        print(f"held-out images ({h['images']}, {h['folder']}): {line(h)}")
    for prefix, law in ("", "z ~ N(0, I)"), ("fitted_", "z from the Gaussian fitted to the training codes"):
        print(f"random samples ({SAMPLES}, {law}): blur {metrics[prefix + 'sample_blur']:.3f}, PSNR to the "
              f"nearest training image {metrics[prefix + 'sample_nearest_psnr']:.2f} dB, "
              f"{metrics[prefix + 'sample_nearest_distinct']} distinct nearest images")
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
