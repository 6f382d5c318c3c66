"""Train AS-IntroVAE on a folder of images (the algorithm: docs/ALGORITHM.md).

    python train.py --preset small --epochs 5                  # a first run on a CPU, minutes: runs/fantasy
    python test.py --model runs/fantasy/model.pt --out runs/fantasy/test   # its latent map and metrics
    python train.py --data ~/my_places                         # your own images, full model, 540 epochs (GPU)
    echo '{"beta_neg": 64}' > runs/my_places/control.json      # change beta_neg while it runs
    python train.py --data ~/my_places --resume --epochs 600   # go on where it stopped, to epoch 600
    python train.py --data ~/my_places --overwrite             # delete that run and start again
    torchrun --standalone --nproc_per_node=4 train.py --data ~/my_places   # DistributedDataParallel, 4 GPUs

A run folder (--out, default runs/<name of the data folder>) belongs to one run. It receives
checkpoint.pt (everything, for --resume; the one before is kept as checkpoint.prev.pt), model.pt
(encoder, decoder and config, for test.py and the notebook), samples/, history.csv, losses.png
and TensorBoard's event files (tensorboard --logdir runs). A second train.py on a folder in use is
refused, and so is a new run in a folder that holds one (any of checkpoint.pt, checkpoint.prev.pt,
model.pt, history.csv) unless --resume goes on with it or --overwrite starts again in its place.
Under torchrun, rank 0 holds the folder.
"""
import argparse
import copy
import math
import os
import signal
import socket
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

try:
    import fcntl  # the run folder's lock; Windows has none, and runs there are not locked
except ImportError:
    fcntl = None

import distributed
from board import EVENTS, Board
from checkpoint import CheckpointError, export_model, host, load_strict, load_with_fallback, save_atomic
from control import AutoBetaNeg, ControlFile, DivergenceGuard
from cli import Parser
from dataset import DatasetError, ImageBatches, check_folder, load_folder
from losses import image_scale, transition_coefficient
from models import DOWNSAMPLING, PRESETS, UPSAMPLING, ModelConfig, build_model, count_parameters, preset_config, reparameterize
from report import History, plot_history, save_grid
from step import FAKES, Hyper, draw_noise, fake_sources, fast_step, reference_step

GRID = 8  # images per row of the sample grids
RUN_FILES = ("checkpoint.pt", "checkpoint.prev.pt", "model.pt", "history.csv")  # a folder with one holds a run
# what --overwrite deletes: the run's files and what it drew and read (other files in the folder stay)
OVERWRITTEN = (*RUN_FILES, "checkpoint.pt.tmp", "model.pt.tmp", "losses.png", "control.json", "samples/epoch_*.png",
               EVENTS)
# The official AS-IntroVAE's settings (this project's seed); --official puts them back. The defaults differ
# by the study (docs/STUDY.md): reconstruction weighed 10x the KL instead of 1/2, 540 epochs of which the first
# 300 a plain VAE, tanh only inside the AS distance, no moving average of the decoder, the encoder's feature
# distance added to the decoder's reconstruction term (docs/ALGORITHM.md, Defaults).
OFFICIAL = {"epochs": 400, "lr_drop_epoch": 350, "beta_rec": 0.5, "beta_kl": 1.0, "beta_adv": None, "beta_neg": 256.0,
            "gamma_r": 1e-8, "tanh": "all", "method": "as", "vae_epochs": 0, "augment": 0.0, "rec_loss": "mse",
            "fakes": "prior", "ema_decay": 0.999}
# What a checkpoint written before a flag existed ran with (--resume keeps it): the official behaviour.
BEFORE_FLAG = {"vae_epochs": 0, "beta_adv": None, "tanh": "all", "augment": 0.0, "rec_loss": "mse", "fakes": "prior",
               "feature_weight": 1.0, "contrast_weight": 0.0}


class RunError(Exception):
    """A problem the user can fix (a flag, a file); reported as one line."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped the run after saving it; --resume goes on."""


def parse_args(argv=None):
    p = Parser(prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--data", default="data/fantasy", help="folder of training images, searched recursively (default %(default)s)")
    a("--out", default=None, help="run folder (default runs/<name of the data folder>)")
    a("--preset", default="full", choices=list(PRESETS),
      help="model size: full (42 M parameters, GPU), small (3.8 M, CPU), tiny (64x64, tests) (default %(default)s)")
    a("--image-size", type=int, default=None, choices=[64, 128, 256], help="image size (default: the preset's)")
    a("--z-dim", type=int, default=None, help="latent dimensions (default: the preset's, 256 for full and small)")
    a("--upsample", default="nearest", choices=list(UPSAMPLING), help="the decoder's x2 upsamplings (default "
      "%(default)s, official)")
    a("--downsample", default="average", choices=list(DOWNSAMPLING), help="the encoder's /2 poolings: average, a 2x2 "
      "box (official), or blur, StyleGAN2's anti-aliased [1, 3, 3, 1] blur before every second pixel (with --upsample "
      "bilinear, StyleGAN2's resampling) (default %(default)s)")
    a("--epochs", type=int, default=540, help="epochs to train in all, counting resumed ones (default %(default)s; "
      "official 400)")
    a("--batch-size", type=int, default=6, help="images per step and process (default %(default)s)")
    a("--lr", type=float, default=2e-4, help="Adam learning rate of encoder and decoder (default %(default)s)")
    a("--lr-drop-epoch", type=int, default=None, help="multiply the learning rates by 0.1 after this epoch "
      "(default: --epochs less its eighteenth, 510 of 540; official 350 of 400)")
    a("--beta-kl", type=float, default=0.1, help="weight of the KL of real images (default %(default)s; the "
      "official 1.0 blurs reconstructions, see docs/STUDY.md)")
    a("--beta-rec", type=float, default=1.0, help="weight of the reconstruction error (default %(default)s; "
      "official 0.5)")
    a("--beta-adv", type=float, default=None, help="weight of the decoder's adversarial terms (the KL or AS of rec "
      "and fake); the official code ties it to --beta-kl, which then also sets how much the codes carry (default: "
      "--beta-kl)")
    a("--beta-neg", type=beta_neg_value, default=256.0, help="weight of the KL/AS of rec and fake images in "
      "expELBO: a number, START:END (geometric from START at the first step to END at the last), or auto (see "
      "docs/TRAINING.md); change it during the run through the run folder's control.json (default %(default)s)")
    a("--beta-neg-min", type=float, default=4.0, help="lower bound of --beta-neg auto (default %(default)s)")
    a("--beta-neg-max", type=float, default=256.0, help="upper bound of --beta-neg auto and of the raises after "
      "a divergence; auto starts there (default %(default)s)")
    a("--gamma-r", type=float, default=0.0, help="weight of the decoder's rec-of-rec terms; the seed's 1e-8 "
      "changes no weight beyond float32 noise (bench.py), so 0 skips them (default %(default)s)")
    a("--ema-decay", type=float, default=0.0, help="decay of the moving average of the decoder's weights, which "
      "sample grids and model.pt use; 0: no average, the decoder as trained (default %(default)s: on 80 images the "
      "official 0.999 spans much of the run and its decoder is blurrier, see docs/STUDY.md; official 0.999)")
    a("--method", default="as", choices=["as", "soft", "vae"], help="as: AS-IntroVAE; soft: Soft-IntroVAE (c = 1, "
      "no tanh); vae: a plain VAE, no introspection (a baseline) (default %(default)s)")
    a("--vae-epochs", type=int, default=None, help="train the first N epochs as a plain VAE, then introspectively "
      "(Soft-IntroVAE's num_vae; a VAE step costs about a third of an introspective one) (default: five "
      "ninths of --epochs, 300 of 540; official 0)")
    a("--c-epochs", type=int, default=None, help="plan c(t) = min(1, tanh(5t/T)) over the first N introspective "
      "epochs, so that it reaches 0.96 after 0.4 N of them (default: over all of them, as the official code over "
      "its run; fixed N also keeps c(t) when --resume changes --epochs)")
    a("--tanh", default="as-only", choices=["all", "both", "as-only"], help="with --method as, where the encoder "
      "outputs of rec and fake pass through tanh: all: in AS and the decoder's KL terms, as the official code; "
      "both: also in the encoder's KL terms; as-only: in AS only, the KL terms see the raw posteriors "
      "(default %(default)s: the decoder's adversarial terms keep their slope; official all; --method soft has "
      "no tanh anywhere)")
    a("--augment", type=float, default=0.0, help="probability that an image the encoder judges (real, rec, fake) is "
      "augmented: colour, translation and cutout, differentiable, in both updates (default %(default)s: never)")
    a("--fakes", default="prior", type=fakes_value, help="where the codes of the fakes come from: "
      + "; ".join(f"{k}: {v}" for k, v in FAKES.items()) + "; sources joined by + (prior+mix) share the batch "
      "equally (default %(default)s)")
    a("--rec-loss", default="features", choices=["mse", "ffl", "features"], help="reconstruction term of real "
      "images: mse: the squared error R; ffl: R plus the focal frequency loss; features: R plus, in the decoder "
      "update, the distance in the encoder's first feature maps (default %(default)s; official mse)")
    a("--feature-weight", type=float, default=1.0, help="with --rec-loss features: the weight of the "
      "feature distance beside the squared error, both in the units of R (default %(default)s)")
    a("--contrast-weight", type=float, default=0.0, help="weigh the squared error of each pixel of a real "
      "image's reconstruction by 1 + W times the image's local contrast there (its luminance less its 7x7 mean), so "
      "that a star or a lit window counts more than its few pixels; in both updates (default %(default)s: R as "
      "the official code)")
    a("--official", action="store_true", help="the official AS-IntroVAE's settings instead of this project's "
      "defaults: " + ", ".join(official_flag(k, v) for k, v in OFFICIAL.items()) + " (flags given beside it win)")
    a("--seed", type=int, default=0, help="random seed (default %(default)s)")
    a("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default %(default)s: CUDA if present)")
    a("--resume", action="store_true", help="go on with the run in the run folder from its checkpoint.pt (or "
      "checkpoint.prev.pt); flags given now override the saved ones")
    a("--overwrite", action="store_true", help="start a new run in a run folder that holds one, deleting that run's "
      "files first")
    a("--save-every", type=int, default=10, help="write checkpoint.pt and model.pt every N epochs "
      "(default %(default)s; also at the end and on Ctrl-C)")
    a("--sample-every", type=int, default=5, help="write a sample grid every N epochs (default %(default)s)")
    a("--log-every", type=int, default=10, help="log and read control.json every N steps (default %(default)s)")
    a("--max-steps", type=int, default=None, help="stop (and save) after this many steps in all; the schedule "
      "still plans for --epochs")
    a("--step", default="fast", choices=["fast", "reference"], help="fast: the optimised step; reference: the "
      "spec's literal step, same mathematics (default %(default)s)")
    a("--compile", action="store_true", help="torch.compile the networks (first steps take longer)")
    a("--precision", default="auto", choices=["auto", "bf16", "fp32"], help="the fast step's networks under "
      "bf16 autocast (KL, AS, expELBO and errors stay float32) or in float32; auto: bf16 on CUDA and on CPUs "
      "with AMX or AVX512-BF16, where it is native, else fp32 (default %(default)s; the reference step is always fp32)")
    args = p.parse_args(argv)
    # Which flags were given on this command line: on --resume they override the saved ones.
    for action in p._actions:
        action.default = argparse.SUPPRESS
    given = vars(p.parse_args(argv))
    if args.official:
        for k, v in OFFICIAL.items():
            if k not in given:
                setattr(args, k, v)
    if args.vae_epochs is None:  # the shipped model's schedule, scaled to --epochs
        args.vae_epochs = args.epochs * 5 // 9
    if args.lr_drop_epoch is None:
        args.lr_drop_epoch = args.epochs - args.epochs // 18
    if args.out is None:
        args.out = str(Path("runs") / Path(args.data).expanduser().resolve().name)
    for message in impossible(args, given):
        p.error(message)
    return args, given


def impossible(args, given):
    """What is wrong with the arguments, one message each; checked before any work is done."""
    for k in ("epochs", "batch_size", "save_every", "sample_every", "log_every", "z_dim", "max_steps", "lr_drop_epoch",
              "c_epochs"):
        value = getattr(args, k)
        if value is not None and value < 1:
            yield f"--{k.replace('_', '-')} must be at least 1, got {value}"
    if args.vae_epochs < 0:
        yield f"--vae-epochs must be at least 0, got {args.vae_epochs}"
    for k in ("lr", "beta_rec"):
        if not 0 < getattr(args, k) < math.inf:
            yield f"--{k.replace('_', '-')} must be a positive number, got {getattr(args, k)}"
    for k in ("beta_kl", "gamma_r", "feature_weight", "contrast_weight"):
        if not 0 <= getattr(args, k) < math.inf:
            yield f"--{k.replace('_', '-')} must be 0 or a positive number, got {getattr(args, k)}"
    if args.beta_adv is not None and not 0 <= args.beta_adv < math.inf:
        yield f"--beta-adv must be 0 or a positive number, got {args.beta_adv}"
    if not 0 <= args.augment <= 1:
        yield f"--augment is a probability: between 0 and 1, got {args.augment}"
    if not 0 <= args.ema_decay <= 1:
        yield f"--ema-decay must be between 0 and 1, got {args.ema_decay}"
    if not 0 < args.beta_neg_min <= args.beta_neg_max < math.inf:
        yield "need 0 < --beta-neg-min <= --beta-neg-max"
    yield from conflicts(args, given)
    if args.resume and args.overwrite:
        yield "--resume goes on with the run in the folder, --overwrite deletes it: give one of them"
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        yield f"--out {out} is a file; give a folder for the run"
    elif args.resume and not any((out / name).is_file() for name in ("checkpoint.pt", "checkpoint.prev.pt")):
        yield (f"nothing to resume: {out / 'checkpoint.pt'} does not exist; start the run without --resume "
               f"(python train.py --out {out})")
    if not args.resume or "data" in given:  # on --resume the data folder comes from the checkpoint
        try:
            check_folder(args.data)
        except DatasetError as err:
            yield str(err)


def conflicts(args, given):
    """Flags given now that the run's other settings make meaningless; checked again on --resume, where those
    settings are the saved ones."""
    if "feature_weight" in given and args.rec_loss != "features":
        yield f"--feature-weight weighs the feature distance of --rec-loss features, not of --rec-loss {args.rec_loss}"
    if args.method == "vae" and args.beta_neg == "auto":
        yield "--beta-neg auto reads the fake terms, which --method vae does not have"


def claim(folder, args):
    """Make folder the run's own: lock it for as long as this process lives (the kernel releases the lock
    when the process ends, even by kill -9), then check that --resume, --overwrite or an empty folder
    agree with what it holds. Returns the open lock file."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = open(folder / "train.lock", "a+")
    if fcntl:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise RunError(f"{folder} is in use by {holder}; wait for it to end or give another --out") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"train.py, process {os.getpid()} on {socket.gethostname()}\n")
    lock.flush()
    held = [name for name in RUN_FILES if (folder / name).exists()]
    if held and not (args.resume or args.overwrite):
        lock.close()
        raise RunError(f"{folder} holds a run ({', '.join(held)}); go on with it with --resume, start again in "
                       f"its place with --overwrite, or give another --out")
    if args.overwrite:
        for pattern in OVERWRITTEN:
            for path in folder.glob(pattern):
                path.unlink()
    return lock


def official_flag(key, value):
    flag = "--" + key.replace("_", "-")
    if value is None:
        return f"{flag} equal to --beta-kl"
    return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"


def fakes_value(text):
    """--fakes: sources of step.FAKES joined by +."""
    try:
        fake_sources(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err))
    return text


def beta_neg_value(text):
    """--beta-neg: a positive number, START:END (a schedule) or 'auto'."""
    if text == "auto":
        return text
    try:
        values = [float(v) for v in text.split(":")]
    except ValueError:
        values = [-1.0]
    if len(values) > 2 or not all(0 < v < math.inf for v in values):
        raise argparse.ArgumentTypeError(f"expected a positive number, START:END or auto, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def initial_beta_neg(args):
    if args.beta_neg == "auto":
        return args.beta_neg_max  # auto starts high, as the seed
    return args.beta_neg[0] if isinstance(args.beta_neg, tuple) else args.beta_neg


def scheduled_beta_neg(schedule, t, total):
    """--beta-neg START:END: geometric from START at step 0 to END at the last step."""
    start, end = schedule
    return start * (end / start) ** min(1.0, t / max(total - 1, 1))


def use_bf16(precision, device):
    """--precision auto: bf16 where the hardware computes it natively (CUDA since Ampere, CPUs with AMX or with
    AVX512-BF16's dot products, e.g. AMD Zen 4: a small 128x128 step took 0.61-0.66 s against 1.11-1.14 s in
    float32 on one such core); elsewhere bf16 would be emulated and slower than float32."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    # private functions: where a torch release lacks one, it counts as absent (fp32)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return device.type == "cpu" and any(getattr(torch.cpu, name, lambda: False)() for name in checks)


FORMATS = {"rec": ".5f", "beta_neg": "g", "c": ".3f", "grad_rec": ".2g", "grad_adv": ".2g", "sat_fake": ".2f"}


def shown(row, *keys):
    """The keys of a logged row that it has (--method vae has no fake terms; gradient norms are measured
    every --log-every steps), formatted for the console."""
    return {k.replace("img_per_s", "img/s"): format(row[k], FORMATS.get(k, ".1f")) for k in keys if k in row}


class Trainer:
    """The state of a run (networks, optimisers, schedule, noise generator) and what it saves."""

    def __init__(self, args, cfg, device, world):
        self.args, self.cfg, self.device = args, cfg, device
        fast = args.step == "fast"
        self.memory_format = torch.channels_last if fast else torch.contiguous_format
        self.model = build_model(cfg).to(device, memory_format=self.memory_format)
        self.ema = copy.deepcopy(self.model.decoder).requires_grad_(False)  # samples and figures use it
        E, D = self.model.encoder, self.model.decoder
        if args.compile:
            E, D = torch.compile(E), torch.compile(D)
        if world > 1:
            # Buffers (BatchNorm running statistics) stay per process: training uses batch statistics,
            # and exported models recompute them. (torch 2.14 suggests forward_sync_buffers, which
            # older releases lack; broadcast_buffers=False means the same here.)
            warnings.filterwarnings("ignore", "`broadcast_buffers` is deprecated", FutureWarning)
            E = DistributedDataParallel(E, broadcast_buffers=False)
            D = DistributedDataParallel(D, broadcast_buffers=False)
        self.E, self.D = E, D
        fused = fast and device.type in ("cuda", "cpu")  # one kernel for all tensors instead of a loop
        self.opt_e = torch.optim.Adam(self.model.encoder.parameters(), args.lr, betas=(0.9, 0.999), fused=fused)
        self.opt_d = torch.optim.Adam(self.model.decoder.parameters(), args.lr, betas=(0.9, 0.999), fused=fused)
        self.hp = Hyper(args.beta_kl, args.beta_rec, initial_beta_neg(args), args.gamma_r, image_scale(cfg.image_size),
                        args.method, args.ema_decay, bf16=fast and use_bf16(args.precision, device), tanh=args.tanh,
                        beta_adv=args.beta_adv, augment=args.augment, rec_loss=args.rec_loss, fakes=args.fakes,
                        feature_weight=args.feature_weight, contrast_weight=args.contrast_weight)
        # --beta-neg START:END; it ends when beta_neg is set otherwise (control.json, a recovery)
        self.schedule = args.beta_neg if isinstance(args.beta_neg, tuple) else None
        self.step_fn = fast_step if fast else reference_step
        self.generator = torch.Generator(device).manual_seed(args.seed * 1000 + distributed.rank())
        self.epoch = self.step = 0

    def set_rate(self):
        """The learning rate of the next epoch: --lr, a tenth of it once --lr-drop-epoch epochs are done. It
        depends on the epoch and the arguments only, so a --resume with another --lr or --lr-drop-epoch takes
        effect from the saved epoch on, and a checkpoint needs no scheduler state."""
        for opt in (self.opt_e, self.opt_d):
            opt.param_groups[0]["lr"] = self.args.lr * 0.1 ** (self.epoch >= self.args.lr_drop_epoch)

    def train_step(self, x, total_steps, vae_steps=0, c_steps=None):
        """One step; the first vae_steps (--vae-epochs) train a plain VAE, and c(t) and a beta_neg schedule run
        over the introspective steps after them (c(t) over the first c_steps of them, --c-epochs, if given)."""
        noise = draw_noise(x.shape[0], self.cfg.z_dim, self.generator, self.device, augment=self.args.augment > 0,
                           fakes=self.args.fakes)
        self.hp.method = "vae" if self.step < vae_steps else self.args.method
        t, total = max(self.step - vae_steps, 0), total_steps - vae_steps
        c = transition_coefficient(t, c_steps or total, self.args.method)
        # EMA warm-up, for a nonzero --ema-decay: the average spans about a ninth of the steps taken so far (decay
        # 0.1 at step 0, 0.9 at step 80, 0.99 at step 890, 0.999 at step 8990), so samples do not show the random
        # initial decoder for thousands of steps.
        self.hp.ema_decay = min(self.args.ema_decay, (1 + self.step) / (10 + self.step))
        if self.schedule:
            self.hp.beta_neg = scheduled_beta_neg(self.schedule, t, total)
        self.hp.probe = (self.step + 1) % self.args.log_every == 0  # gradient norms for the logged row
        stats = self.step_fn(self.E, self.D, self.ema, self.opt_e, self.opt_d, x, noise, self.hp, c)
        self.step += 1
        return stats, c

    def state(self):
        """Everything --resume needs; only tensors and plain data, so it loads with weights_only=True."""
        return {"config": self.cfg.to_dict(), "args": vars(self.args), "epoch": self.epoch, "step": self.step,
                "beta_neg": self.hp.beta_neg, "schedule": self.schedule,
                "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer_e": self.opt_e.state_dict(), "optimizer_d": self.opt_d.state_dict(),
                "rng": {"generator": self.generator.get_state()}}  # the noise and flips; the rest is seeded

    def recovery_tensors(self):
        """What a recovery from divergence puts back: weights, BatchNorm statistics, EMA, Adam's moments."""
        moments = [v for opt in (self.opt_e, self.opt_d) for st in opt.state.values() for v in st.values()
                   if isinstance(v, torch.Tensor)]
        return [*self.model.state_dict().values(), *self.ema.state_dict().values(), *moments]

    def load_state(self, state, source):
        load_strict(self.model, state["model"], source)
        load_strict(self.ema, state["ema"], source)
        self.opt_e.load_state_dict(state["optimizer_e"])
        self.opt_d.load_state_dict(state["optimizer_d"])
        self.generator.set_state(state["rng"]["generator"])
        self.epoch, self.step, self.hp.beta_neg = state["epoch"], state["step"], state["beta_neg"]
        self.set_rate()  # the saved optimisers hold the rate of the saved arguments
        self.schedule = state.get("schedule")  # (absent from checkpoints of earlier versions)

    @torch.no_grad()
    def calibrated(self, images):
        """Eval-mode copies of the encoder and EMA decoder whose BatchNorm statistics are recomputed over
        the training images (a train-mode pass, cumulative averages), so that eval-mode outputs match
        train-mode ones. The copies leave the training state untouched."""
        E, D = copy.deepcopy(self.model.encoder), copy.deepcopy(self.ema)
        for m in [*E.modules(), *D.modules()]:
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
        E.train(), D.train()
        g = torch.Generator(self.device).manual_seed(self.args.seed)
        bs = max(self.args.batch_size, 2)
        for i in range(0, len(images), bs):
            x = images[i:i + bs].float().div(255).contiguous(memory_format=self.memory_format)
            mu, logvar = E(x)
            D(reparameterize(mu, logvar, torch.randn(mu.shape, generator=g, device=self.device)))
        return E.eval(), D.eval()


class Writer:
    """One background thread that draws the figures and writes the files of a run, in order, while the
    device trains on. Jobs get host copies of what they need."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer")
        self.jobs = []

    def submit(self, fn, *args):
        self.jobs.append(self.pool.submit(fn, *args))
        return self.jobs[-1]

    def wait(self):
        """Until every job is done; a job's exception (a bug, not a full disk) is raised here."""
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job.result()


class Snapshot:
    """A copy of the tensors a recovery restores, on their own device: taking one after every healthy logged
    step allocates nothing and does not wait for the device (one foreach copy)."""

    def __init__(self):
        self.live, self.saved = [], []

    def take(self, live):
        if len(live) != len(self.live) or any(a.data_ptr() != b.data_ptr() for a, b in zip(live, self.live)):
            self.live, self.saved = live, [t.detach().clone() for t in live]  # first time, or new optimiser state
        else:
            torch._foreach_copy_(self.saved, live)

    def restore(self):
        torch._foreach_copy_(self.live, self.saved)


class Run:
    """One training run: the Trainer plus what surrounds the steps (data, logs, control, recovery, saving)."""

    def __init__(self, args, given):
        try:
            self.rank, self.world, self.device = distributed.setup(args.device)
        except ValueError as err:
            raise RunError(str(err))
        self.main = self.rank == 0
        self.log = tqdm.write if self.main else (lambda *a, **k: None)
        self.data_dir = Path(args.data)
        self.dir = Path(args.out)
        error, self.lock, self.board = None, None, None
        if self.main:  # rank 0 holds the folder; every rank learns whether it could
            try:
                self.lock = claim(self.dir, args)
            except RunError as err:
                error = err
        if distributed.any_rank(error is not None, self.device):
            raise error or RunError(f"rank 0 could not take the run folder {self.dir}")
        try:
            self.prepare(args, given)
        except BaseException:
            self.release()
            raise

    def release(self):
        """Let go of the run folder (the process's end would too)."""
        if self.lock:
            self.lock.close()
            self.lock = None
        if self.board:
            self.board.close()

    def prepare(self, args, given):
        """Everything before the first step: the saved state on --resume, the model, the data, the logs."""
        saved = None
        self.keep_previous = True  # a save moves the checkpoint it replaces to checkpoint.prev.pt
        if args.resume:
            saved, source = load_with_fallback(self.dir / "checkpoint.pt", log=self.log)
            self.keep_previous = source.name == "checkpoint.pt"  # else the first save must not make the
            # unusable checkpoint.pt the previous copy: the good checkpoint.prev.pt stays
            # Flags given now win over the saved ones; flags newer than the checkpoint take their defaults,
            # except those that change the training: a run from before them ran without them.
            merged = {**vars(args), **BEFORE_FLAG, **saved["args"], "max_steps": None, **given}
            merged.update(resume=True, overwrite=False, out=str(self.dir))
            args = argparse.Namespace(**merged)
            for message in conflicts(args, given):
                raise RunError(f"{message}: the run in {self.dir} was saved so")
            if (args.max_steps or math.inf) <= saved["step"]:  # else it would train to the last epoch
                raise RunError(f"--max-steps {args.max_steps}: {source} is at step {saved['step']} already")
            self.data_dir = Path(args.data)  # the saved run's data unless --data is given now
            cfg = ModelConfig.from_dict(saved["config"])
            shape = {"preset": saved["args"]["preset"], "image_size": cfg.image_size, "z_dim": cfg.z_dim,
                     "upsample": cfg.upsample, "downsample": cfg.downsample}
            changed = [f"--{k.replace('_', '-')} {given[k]}" for k, v in shape.items() if k in given and given[k] != v]
            if changed:
                raise RunError(f"{', '.join(changed)}: the run in {self.dir} is a {shape['preset']} model, "
                               f"{cfg.image_size}px, z_dim {cfg.z_dim}, {cfg.upsample} upsampling, {cfg.downsample} "
                               "downsampling; --resume cannot "
                               "change its shape")
        else:
            try:
                cfg = preset_config(args.preset, args.image_size, args.z_dim, args.upsample, args.downsample)
            except ValueError as err:
                raise RunError(str(err))
        self.args, self.cfg = args, cfg
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(args.seed)

        images, _ = load_folder(self.data_dir, cfg.image_size, min_images=args.batch_size * self.world, log=self.log)
        self.images = images.to(self.device)
        self.trainer = trainer = Trainer(args, cfg, self.device, self.world)
        self.guard = DivergenceGuard()
        self.auto = AutoBetaNeg(args.beta_neg_min, args.beta_neg_max) if args.beta_neg == "auto" else None
        if saved is not None:
            trainer.load_state(saved, source)
            control = saved.get("control") or {}  # (absent from checkpoints of earlier versions)
            if control.get("guard"):
                self.guard.load_state_dict(control["guard"])
            if self.auto and control.get("auto"):
                self.auto.load_state_dict(control["auto"])
            self.log(f"resumed from {source}: epoch {trainer.epoch}, step {trainer.step}, "
                     f"beta_neg {trainer.hp.beta_neg:g}")
            if "beta_neg" in given:
                trainer.hp.beta_neg = initial_beta_neg(args)
                trainer.schedule = args.beta_neg if isinstance(args.beta_neg, tuple) else None
        sampler = DistributedSampler(range(len(images)), num_replicas=self.world, rank=self.rank, shuffle=True,
                                     seed=args.seed, drop_last=True)
        self.batches = ImageBatches(self.images, args.batch_size, sampler, trainer.generator, trainer.memory_format)
        self.steps_per_epoch = len(self.batches)
        self.total_steps = args.epochs * self.steps_per_epoch
        self.c_steps = args.c_epochs and args.c_epochs * self.steps_per_epoch
        if self.main:
            (self.dir / "samples").mkdir(parents=True, exist_ok=True)
            self.log(f"{args.preset} model, {count_parameters(trainer.model) / 1e6:.1f} M parameters, "
                     f"{cfg.image_size}px, z_dim {cfg.z_dim}, on {self.device}"
                     + (f" x {self.world} processes" if self.world > 1 else "")
                     + f" in {'bf16' if trainer.hp.bf16 else 'fp32'} (--precision)"
                     + f"; {self.steps_per_epoch} step{'s' * (self.steps_per_epoch != 1)} per epoch; "
                     f"run directory {self.dir}")
        self.history = History(self.dir / "history.csv", trainer.step if saved else None) if self.main else None
        settings = {**vars(args), **cfg.to_dict()}
        self.board = Board(self.dir, settings, trainer.step if saved else None) if self.main else None
        self.control = ControlFile(self.dir / "control.json", log=self.log)
        if saved is None or "beta_neg" in given:
            self.control.poll()  # --beta-neg wins over what the file held before this start; later edits apply
        # one per family
        self.fixed_real = self.images[torch.linspace(0, len(images) - 1, min(GRID, len(images))).long()]
        self.fixed_noise = torch.randn(len(self.fixed_real), cfg.z_dim,
                                       generator=torch.Generator().manual_seed(args.seed))
        self.writer = Writer()
        self.good = Snapshot()  # the last state known to be healthy, kept on the device
        self.good.take(trainer.recovery_tensors())
        self.stop_requested = False  # set by Ctrl-C or SIGTERM (request_stop)

    def event(self, text, **row):
        self.log(f"step {self.trainer.step}: {text}")
        if self.main:
            row = {"step": self.trainer.step, "epoch": self.trainer.epoch + 1, "beta_neg": self.trainer.hp.beta_neg,
                   "event": text, **row}
            self.history.append(row)
            self.board.log(row)

    def set_beta_neg(self, value, why):
        value = distributed.broadcast(value, self.device)  # rank 0's value (others pass None)
        self.trainer.schedule = None  # a value set by hand or by a recovery ends a --beta-neg schedule
        if value != self.trainer.hp.beta_neg:
            old, self.trainer.hp.beta_neg = self.trainer.hp.beta_neg, value
            if self.auto:
                self.auto.hold()
            self.event(f"beta_neg {old:g} -> {value:g} ({why})")

    def request_stop(self, signum, frame):
        """Ctrl-C or SIGTERM: stop after the current step. An exception raised at an arbitrary point could
        be swallowed by a destructor or leave a half-done step; a second signal stops at once."""
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True

    def stop_agreed(self, logged):
        """One process stops at the next step boundary; several agree at a logged step, where they sync."""
        if self.world == 1:
            return self.stop_requested
        return logged and distributed.any_rank(self.stop_requested, self.device)

    def after_log(self, row):
        """At every logged step: divergence check and recovery, history, progress bar, beta_neg."""
        t = self.trainer
        problem = self.guard.check(row)
        if distributed.any_rank(problem is not None, self.device):
            self.recover(problem or "another process diverged", row)
            return
        self.good.take(t.recovery_tensors())
        if self.main:
            self.history.append(row)
            self.board.log(row)
            self.bar.set_postfix(shown(row, "rec", "kl_real", "kl_fake", "diff_kl", "beta_neg", "img_per_s"))
        # Rank 0 reads the file and runs the controller; set_beta_neg gives its value to every rank.
        new = self.control.poll() if self.main else None
        if distributed.any_rank(new is not None, self.device):
            self.set_beta_neg(new["beta_neg"] if new else None, "control.json")
        elif self.auto:
            change = self.auto.update(row, t.hp.beta_neg) if self.main else None
            if distributed.any_rank(change is not None, self.device):
                self.set_beta_neg(*(change or (None, None)))

    def recover(self, problem, row):
        """Back to the last healthy weights, beta_neg x 2, go on; stop when it happens too often."""
        t = self.trainer
        self.good.restore()
        too_many = self.guard.recovered(t.step)
        if self.main:
            diverged = {**row, "event": f"diverged: {problem}"}
            self.history.append(diverged)
            self.board.log(diverged)
        self.set_beta_neg(min(self.args.beta_neg_max, 2 * t.hp.beta_neg),
                          f"recovered from divergence ({problem}): back to the last healthy weights")
        if too_many:
            self.save(wait=True)
            raise RunError(f"the run diverged {len(self.guard.recoveries)} times within "
                           f"{self.guard.recovery_window} steps (last: {problem} at step {t.step}, beta_neg "
                           f"{row['beta_neg']:g}, beta_kl {self.args.beta_kl:g}, beta_rec {self.args.beta_rec:g}); "
                           f"saved the last healthy state to {self.dir}/checkpoint.pt. Try a higher --beta-neg "
                           f"or a lower --lr, then --resume")

    def save(self, wait=False):
        """checkpoint.pt (everything), model.pt (for test.py) and losses.png, written by the writer thread from
        host copies taken now. A failed write warns and keeps the last one. With wait: whether this save was
        written, once every write before it is done."""
        if not self.main:
            return True
        t = self.trainer
        state = host({**t.state(), "control": {"guard": self.guard.state_dict(),
                                               "auto": self.auto.state_dict() if self.auto else None}})
        E, D = t.calibrated(self.images)
        model = host({"encoder": E.state_dict(), "decoder": D.state_dict()})
        meta = {"epoch": t.epoch, "step": t.step, "data": str(self.data_dir), "preset": self.args.preset,
                "beta_neg": t.hp.beta_neg, "method": self.args.method, "tanh": self.args.tanh,
                "beta_rec": self.args.beta_rec, "beta_kl": self.args.beta_kl, "beta_adv": self.args.beta_adv,
                "augment": self.args.augment, "fakes": self.args.fakes,
                "rec_loss": self.args.rec_loss, "feature_weight": self.args.feature_weight,
                "contrast_weight": self.args.contrast_weight,
                "ema_decay": self.args.ema_decay}
        self.writer.submit(self.board.flush)  # on disk before the checkpoint: after a kill -9 --resume loses no step
        job = self.writer.submit(self.write, state, model, meta, self.history.rows(), self.keep_previous)
        if wait:
            self.writer.wait()
        return job.result() if wait else True

    def write(self, state, model, meta, rows, keep_previous):
        """The writer thread's half of save(): True when every file was written."""
        try:
            save_atomic(state, self.dir / "checkpoint.pt", keep_previous=keep_previous)
            self.keep_previous = True
            export_model(self.dir / "model.pt", self.cfg.to_dict(), model["encoder"], model["decoder"], meta)
            plot_history(rows, self.dir / "losses.png", f"{self.dir.name}: training history (red lines: events)")
        except OSError as err:
            self.log(f"warning: could not write to {self.dir} at step {meta['step']} ({err}); the previous "
                     f"checkpoint is kept and training goes on")
            return False
        return True

    @torch.no_grad()
    def samples(self):
        E, D = self.trainer.calibrated(self.images)
        real = self.fixed_real.float().div(255).contiguous(memory_format=self.trainer.memory_format)
        rec, sample = D(E(real)[0]), D(self.fixed_noise.to(self.device))
        epoch = self.trainer.epoch
        self.writer.submit(save_grid, self.dir / "samples" / f"epoch_{epoch:04d}.png", real.cpu(), rec.cpu(),
                           sample.cpu(), f"epoch {epoch}; rows: real, reconstruction, sample")
        self.writer.submit(self.board.grid, self.trainer.step, real.cpu(), rec.cpu(), sample.cpu())

    def train(self):
        t, args = self.trainer, self.args
        meter, last, t_log, n_img = {}, None, time.perf_counter(), 0
        t_start, cpu_steps, done = time.perf_counter(), [], False
        while t.epoch < args.epochs and not done:
            skip = t.step - t.epoch * self.steps_per_epoch  # batches done before an interruption
            self.bar = tqdm(self.batches.epoch(t.epoch, skip), total=self.steps_per_epoch, initial=skip,
                            leave=False, desc=f"epoch {t.epoch + 1}/{args.epochs}", disable=not self.main,
                            dynamic_ncols=True)
            for x in self.bar:
                step_start = time.perf_counter()
                stats, c = t.train_step(x, self.total_steps, args.vae_epochs * self.steps_per_epoch, self.c_steps)
                n_img += x.shape[0] * self.world
                for k, v in stats.items():  # summed on the device: no host sync until the next log
                    total, n = meter.get(k, (0, 0))
                    meter[k] = (total + v, n + 1)  # a probed value is in some steps only
                if self.device.type == "cpu" and len(cpu_steps) < 4:  # the CPU step is synchronous: time it
                    cpu_steps.append(time.perf_counter() - step_start)
                    if len(cpu_steps) == 4:  # the first step warms up: the mean of the next three
                        per_step = sum(cpu_steps[1:]) / 3
                        small = "; --preset small takes about a fifth of the time (docs/SPEED.md)"
                        hint = small if args.preset == "full" else ""
                        self.log(f"on the CPU: about {per_step:.2g} s per step, "
                                 f"{per_step * self.steps_per_epoch / 60:.1f} min per epoch{hint}")
                done = t.step == args.max_steps
                logged = t.step % args.log_every == 0 or t.step % self.steps_per_epoch == 0 or done
                if logged:
                    now = time.perf_counter()
                    row = {k: (total / n).item() for k, (total, n) in meter.items()}
                    row.update(step=t.step, epoch=t.epoch + 1, beta_neg=t.hp.beta_neg, c=c,
                               img_per_s=n_img / (now - t_log))
                    meter, t_log, n_img, last = {}, now, 0, row
                    self.after_log(row)
                if self.stop_agreed(logged):
                    raise KeyboardInterrupt  # between steps: the checkpoint holds a whole step
                if done:
                    break
            self.bar.close()
            if t.step % self.steps_per_epoch:  # stopped inside an epoch (--max-steps)
                self.log(f"stopped at step {t.step} (--max-steps)")
                break
            t.epoch += 1
            t.set_rate()
            if last:
                line = shown({**last, "beta_neg": t.hp.beta_neg}, "rec", "kl_real", "kl_fake", "diff_kl", "beta_neg",
                             "c", "grad_rec", "grad_adv", "sat_fake", "img_per_s")
                self.log(f"epoch {t.epoch}/{args.epochs}  step {t.step}  "
                         + "  ".join(f"{k} {v}" for k, v in line.items()))
            if self.main and (t.epoch % args.sample_every == 0 or t.epoch == args.epochs):
                self.samples()
            if t.epoch % args.save_every == 0 and t.epoch < args.epochs and not done:
                self.save()
        return time.perf_counter() - t_start


def train(args, given):
    run = Run(args, given)
    try:
        return train_to_end(run)
    finally:
        run.release()


def train_to_end(run):
    in_main_thread = threading.current_thread() is threading.main_thread()  # (tests run it in a thread)
    stop_signals = (signal.SIGINT, signal.SIGTERM) if in_main_thread else ()
    previous_handlers = {s: signal.signal(s, run.request_stop) for s in stop_signals}
    try:
        seconds = run.train()
    except KeyboardInterrupt:
        run.save(wait=True)
        run.log(f"interrupted at step {run.trainer.step}; saved {run.dir}/checkpoint.pt (continue with --resume)")
        raise Interrupted from None
    finally:
        for s, handler in previous_handlers.items():
            signal.signal(s, handler)
    if not run.save(wait=True):
        raise RunError(f"could not write the final checkpoint to {run.dir}; the previous one is kept")
    if run.board:
        run.board.end(run.trainer.step)
    run.log(f"done: at epoch {run.trainer.epoch} of {run.args.epochs}, step {run.trainer.step}; this process "
            f"trained {seconds / 60:.1f} min; {run.dir}/model.pt")
    return run.trainer


def main(argv=None):
    args, given = parse_args(argv)
    try:
        train(args, given)
    except (RunError, DatasetError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Interrupted:
        return 130  # the shell's code for Ctrl-C: a script (study.py, `train && test`) tells it from the end
    finally:
        distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
