"""Finish the decoder of a model trained before train.py did it itself, so that it draws the stars and lit windows
the run left out.

    python finish.py --model runs/fantasy/model.pt --out runs/fantasy/finished.pt
    python test.py --model runs/fantasy/finished.pt --out runs/fantasy/test_finished

train.py finishes its decoder as its last phase (--finish-steps, --finish-weight), in the run folder, resumable;
a run with a checkpoint.pt that was trained before that, or with --finish-steps 0, is finished the same way by
`python train.py --out RUN --resume --finish-steps 600`. This script is for a model.pt alone (no checkpoint)
whose decoder is not finished (a finished one is refused): it takes the same steps (step.finish_step, in
step.finish_order's batches) with the same defaults, on the model's exported encoder and decoder, and writes
a model.pt as train.py writes it; --model is not changed.

Not part of AS-IntroVAE: a step after the run. The encoder is frozen and each training image keeps its
posterior mean mu as its code; only the decoder trains, --steps batches of D(mu) against their images, on
the run's reconstruction term (squared error, with the encoder-feature distance when the run used
--rec-loss features) plus the contrast-weighted error (--contrast-weight, docs/ALGORITHM.md). Squared
error pays little for a missing star, a few pixels of a sky; weighed by the original's local contrast, a
star 0.5 above its sky counts about 80 times at the default W = 160. The codes do not move, so the latent
map, the walks and the samples keep their places; what changes is what the decoder draws from each code.
docs/STUDY.md, "Finishing the decoder", measures it on the shipped run; the shipped saves/fantasy/model.pt is
that run after this script with these defaults.
"""
import argparse
import itertools
import math
import sys
from pathlib import Path

import torch

from checkpoint import CheckpointError, export_model, host, load_model
from cli import Parser, file_in_the_way
from dataset import DatasetError, check_folder, load_folder
from distributed import pick_device
from latent import encode
from losses import image_scale
from step import FINISH_BATCH, FINISH_LR, FINISH_STEPS, FINISH_WEIGHT, Hyper, finish_order, finish_step


def parse_args(argv=None):
    p = Parser(prog="finish.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--model", required=True, help="exported model written by train.py")
    a("--out", required=True, help="the finished model.pt to write (a new file unless --overwrite)")
    a("--data", help="the images the model trained on (default: the folder its run trained on)")
    a("--steps", type=int, default=FINISH_STEPS, help="decoder steps (default %(default)s: 7.5 passes over 80 images)")
    a("--contrast-weight", type=float, default=FINISH_WEIGHT, help="weight W of the contrast-weighted error: a pixel's "
      "squared error counts 1 + W times the original's local contrast (default %(default)s)")
    a("--lr", type=float, default=FINISH_LR, help="Adam's learning rate (default %(default)s, train.py's)")
    a("--batch-size", type=int, default=FINISH_BATCH, help="images per step (default %(default)s)")
    a("--seed", type=int, default=0, help="order of the batches (default %(default)s)")
    a("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default %(default)s)")
    a("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    for name in ("steps", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not (math.isfinite(args.contrast_weight) and args.contrast_weight >= 0):
        p.error(f"--contrast-weight must be 0 or a positive number, got {args.contrast_weight}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        p.error(f"--lr must be a positive number, got {args.lr}")
    if not 0 <= args.seed < 2 ** 63:
        p.error(f"--seed must be between 0 and 2**63 - 1, got {args.seed}")
    if not Path(args.model).is_file():
        p.error(f"--model {args.model} does not exist; give a model.pt written by train.py")
    if Path(args.out).resolve() == Path(args.model).resolve():
        p.error(f"--out {args.out} is --model; the finished model goes to a file of its own")
    if Path(args.out).exists() and not args.overwrite:
        p.error(f"--out {args.out} exists; give another file, or --overwrite to replace it")
    blocked = file_in_the_way(Path(args.out).parent)
    if blocked:
        p.error(f"--out {args.out}: {blocked} is a file; give a file in a folder")
    try:
        args.device = pick_device(args.device)
        if args.data is not None:
            check_folder(args.data)
    except (ValueError, DatasetError) as err:
        p.error(str(err))
    return args


def finish(model, images, args, log=print):
    """Train model's decoder alone on the fixed posterior means of images (uint8, (N, 3, S, S)), in place.
    Returns the loss of each step."""
    meta = model.meta
    hp = Hyper(0.0, 1.0, 0.0, 0.0, image_scale(model.config.image_size),  # (the game's weights play no part)
               rec_loss=meta.get("rec_loss", "mse"), feature_weight=meta.get("feature_weight", 1.0),
               contrast_weight=args.contrast_weight)
    device = next(model.parameters()).device
    z, x = encode(model, images).to(device), images.to(device).float().div(255)
    E = model.encoder.eval().requires_grad_(False)  # the codes and the feature distance's judge stay as trained
    D = model.decoder.train()
    opt = torch.optim.Adam(D.parameters(), lr=args.lr, betas=(0.9, 0.999))
    losses = []
    for b in itertools.islice(finish_order(len(x), args.batch_size, args.seed), args.steps):
        b = b.to(device)
        losses.append(finish_step(E, D, opt, z[b], x[b], hp)["loss_finish"].item())
        if len(losses) % 50 == 0 or len(losses) == args.steps:
            log(f"step {len(losses)}/{args.steps}: loss {losses[-1]:.5f}")
    D.eval()
    return losses


def main(argv=None):
    args = parse_args(argv)
    try:
        model = load_model(args.model, args.device)
        if "finished" in model.meta:  # by train.py's last phase or by this script: this is for runs without it
            steps = model.meta["finished"].get("steps")
            raise CheckpointError(f"{args.model} has its decoder finished already ({steps} steps); more steps go on "
                                  "in its run folder: python train.py --out RUN --resume --finish-steps N")
        data = args.data or model.meta.get("data")
        if data is None:
            raise DatasetError(f"{args.model} does not name the folder it trained on; pass --data DIR")
        images, _ = load_folder(data, model.config.image_size)
    except (CheckpointError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"finishing the decoder of {args.model} on {len(images)} images: {args.steps} steps, contrast weight "
          f"{args.contrast_weight:g}, on {args.device}")
    finish(model, images, args)
    finished = {"steps": args.steps, "contrast_weight": args.contrast_weight, "lr": args.lr,
                "batch_size": args.batch_size, "seed": args.seed, "data": str(data), "from": str(args.model)}
    meta = {**model.meta, "finished": finished}  # the run's own record stays beside it
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    export_model(args.out, model.config.to_dict(), host(model.encoder.state_dict()), host(model.decoder.state_dict()),
                 meta)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
