"""Evaluate a trained model: a 2-D map of its latent space, reconstructions and their quality.

    python test.py                                        # saves/fantasy/model.pt on data/fantasy
    python test.py --model saves/mine/model.pt --data ~/my_places --method pca

Every image is encoded to its posterior mean mu (eval mode, deterministic). The map (t-SNE or PCA of
mu) draws each image as a thumbnail, framed in the colour of its family when the file names have the
form <family>_<NN> (at least two families). Reconstructions are D(mu) with the EMA decoder. Printed:
PSNR and SSIM of the reconstructions (means over all images) and, with families, the leave-one-out
5-nearest-neighbour family accuracy in latent space; the last line is the same as one JSON object.
"""
import argparse
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
from skimage.metrics import structural_similarity
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors

from checkpoint import CheckpointError, load_model
from dataset import DatasetError, load_folder
from distributed import pick_device
from latent import decode, encode, rows_figure

matplotlib.use("Agg")  # files only: no window, also without a display

DPI = 150
KNN = 5  # neighbours that vote for a family
RECON_SHOWN = 16  # images in reconstructions.png


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--model", default="saves/fantasy/model.pt", help="exported model written by train.py (default %(default)s)")
    a("--data", default="data/fantasy", help="folder of images to encode, searched recursively (default %(default)s)")
    a("--method", default="tsne", choices=["tsne", "pca"], help="2-D embedding of the latent means "
      "(default %(default)s)")
    a("--out", default="imgs/space_viz.png", help="where to write the map (default %(default)s)")
    a("--recon-out", default="imgs/reconstructions.png", help="where to write the originals over their "
      "reconstructions (default %(default)s)")
    a("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="auto: CUDA, then MPS, then CPU "
      "(default %(default)s)")
    a("--batch-size", type=int, default=32, help="images per forward pass (default %(default)s)")
    a("--seed", type=int, default=0, help="random state of t-SNE (default %(default)s)")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    try:
        args.device = pick_device(args.device)
    except ValueError as err:
        p.error(str(err))
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
    k = min(k, len(mu) - 1)
    _, idx = NearestNeighbors(n_neighbors=k).fit(mu).kneighbors()  # no X: a point is not its own neighbour
    labels = np.asarray(families)
    votes = [Counter(row).most_common(1)[0][0] for row in labels[idx]]  # most_common keeps neighbour order
    return float(np.mean(np.asarray(votes) == labels))


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

    mu = encode(model, images, args.batch_size)  # (N, z_dim)
    psnr, ssim = [], []
    for i in range(0, n, args.batch_size):  # reconstructions a batch at a time: all at once may not fit
        x = images[i:i + args.batch_size].float().div(255)
        rec = decode(model, mu[i:i + args.batch_size], args.batch_size)
        mse = (rec - x).pow(2).flatten(1).mean(1).clamp_min(1e-10)  # the floor caps PSNR at 100 dB
        psnr += (-10 * torch.log10(mse)).tolist()
        ssim += [structural_similarity(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), channel_axis=2,
                                       data_range=1.0) for a, b in zip(x, rec)]
    metrics = {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)),
               "knn_accuracy": knn_accuracy(mu.numpy(), families) if families else None, "images": n}

    name = args.model if "epoch" not in model.meta else f"{args.model} (epoch {model.meta['epoch']})"
    xy, axis_names = embed(mu.numpy(), args.method, args.seed)
    label = {"tsne": "t-SNE", "pca": "PCA"}[args.method]
    fig = map_figure(xy, images, families, axis_names, f"{label} of the latent means: {name}, {n} images")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=DPI)
    plt.close(fig)
    print(f"wrote {args.out}")

    idx = shown(n, families)
    original = images[idx].float().div(255)
    captions = [paths[i].stem for i in idx]
    rows = [("original", original, captions), ("reconstruction", decode(model, mu[idx]), None)]
    fig = rows_figure(rows, f"Reconstructions D(\u03bc) by {name}; mean over all {n} images: "
                            f"PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}")
    Path(args.recon_out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.recon_out, dpi=DPI)
    plt.close(fig)
    print(f"wrote {args.recon_out}")

    knn = "" if families is None else f", {KNN}-NN family accuracy {metrics['knn_accuracy']:.3f} (leave one out)"
    print(f"{n} images: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}{knn}")
    return metrics


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
