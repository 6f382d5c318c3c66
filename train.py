"""Train AS-IntroVAE on a folder of images (../shared/AS_INTROVAE.md).

    python train.py                                       # the demo set data/fantasy, full model, GPU if any
    python train.py --preset small --epochs 3             # a first run on a laptop CPU (a few minutes)
    python train.py --data ~/my_places --out saves/mine   # your own folder
    python train.py --resume --epochs 500                 # go on from saves/fantasy/checkpoint.pt
    torchrun --standalone --nproc_per_node=4 train.py     # DistributedDataParallel over 4 GPUs
    echo '{"beta_neg": 64}' > saves/fantasy/control.json  # change beta_neg while it runs

A run directory receives checkpoint.pt (everything, for --resume), model.pt (encoder, EMA decoder and
config, for test.py and the notebook), samples/, history.csv and losses.png.
"""
import argparse
import copy
import math
import os
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

import distributed
from checkpoint import CheckpointError, export_model, load_strict, load_with_fallback, save_atomic
from control import ControlFile
from dataset import DatasetError, ImageBatches, load_folder
from losses import image_scale, transition_coefficient
from models import PRESETS, ModelConfig, build_model, count_parameters, preset_config, reparameterize
from report import History, plot_history, save_grid
from step import Hyper, draw_noise, fast_step, reference_step

GRID = 8  # images per row of the sample grids


class RunError(Exception):
    """A problem the user can fix (a flag, a file); reported as one line."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--data", default="data/fantasy", help="folder of training images, searched recursively (default %(default)s)")
    a("--out", default=None, help="run directory (default saves/<name of the data folder>)")
    a("--preset", default="full", choices=list(PRESETS),
      help="model size: full (42 M parameters, GPU), small (3.8 M, CPU), tiny (64x64, tests) (default %(default)s)")
    a("--image-size", type=int, default=None, choices=[64, 128, 256], help="image size (default: the preset's)")
    a("--z-dim", type=int, default=None, help="latent dimensions (default: the preset's, 256 for full and small)")
    a("--epochs", type=int, default=400, help="epochs to train in all, counting resumed ones (default %(default)s)")
    a("--batch-size", type=int, default=6, help="images per step and process (default %(default)s)")
    a("--lr", type=float, default=2e-4, help="Adam learning rate of encoder and decoder (default %(default)s)")
    a("--lr-drop-epoch", type=int, default=350, help="multiply the learning rates by 0.1 after this epoch "
      "(default %(default)s)")
    a("--beta-kl", type=float, default=1.0, help="weight of the KL of real images (default %(default)s)")
    a("--beta-rec", type=float, default=0.5, help="weight of the reconstruction error (default %(default)s)")
    a("--beta-neg", type=float, default=256.0, help="weight of the KL/AS of rec and fake images in expELBO; "
      "change it during the run through RUN_DIR/control.json (default %(default)s)")
    a("--gamma-r", type=float, default=0.0, help="weight of the decoder's rec-of-rec terms; the seed's 1e-8 "
      "changes no weight beyond float32 noise (bench.py), so 0 skips them (default %(default)s)")
    a("--ema-decay", type=float, default=0.999, help="decay of the decoder's moving average (default %(default)s)")
    a("--method", default="as", choices=["as", "soft"], help="as: AS-IntroVAE; soft: Soft-IntroVAE (c = 1, "
      "no tanh) for comparison (default %(default)s)")
    a("--seed", type=int, default=0, help="random seed (default %(default)s)")
    a("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default %(default)s: CUDA if present)")
    a("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt; flags given now override "
      "the saved ones")
    a("--save-every", type=int, default=10, help="write checkpoint.pt and model.pt every N epochs "
      "(default %(default)s; also at the end and on Ctrl-C)")
    a("--sample-every", type=int, default=5, help="write a sample grid every N epochs (default %(default)s)")
    a("--log-every", type=int, default=10, help="log and read control.json every N steps (default %(default)s)")
    a("--max-steps", type=int, default=None, help="stop (and save) after this many steps in all; the schedule "
      "still plans for --epochs")
    a("--step", default="fast", choices=["fast", "reference"], help="fast: the optimised step; reference: the "
      "spec's literal step, same mathematics (default %(default)s)")
    a("--compile", action="store_true", help="torch.compile the networks (first steps take longer)")
    args = p.parse_args(argv)
    # Which flags were given on this command line: on --resume they override the saved ones.
    for action in p._actions:
        action.default = argparse.SUPPRESS
    given = vars(p.parse_args(argv))
    for k in ("epochs", "batch_size", "save_every", "sample_every", "log_every"):
        if getattr(args, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be at least 1")
    if args.beta_neg <= 0:
        p.error("--beta-neg must be positive")
    return args, given


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
        self.sched_e = torch.optim.lr_scheduler.MultiStepLR(self.opt_e, [args.lr_drop_epoch], 0.1)
        self.sched_d = torch.optim.lr_scheduler.MultiStepLR(self.opt_d, [args.lr_drop_epoch], 0.1)
        self.hp = Hyper(args.beta_kl, args.beta_rec, args.beta_neg, args.gamma_r, image_scale(cfg.image_size),
                        args.method, args.ema_decay, bf16=fast and device.type == "cuda")
        self.step_fn = fast_step if fast else reference_step
        self.generator = torch.Generator(device).manual_seed(args.seed * 1000 + distributed.rank())
        self.epoch = self.step = 0

    def train_step(self, x, total_steps):
        noise = draw_noise(x.shape[0], self.cfg.z_dim, self.generator, self.device)
        c = transition_coefficient(self.step, total_steps, self.args.method)
        # EMA warm-up: the average spans about the steps taken so far (decay 0.1 at step 0, 0.9 at step 80,
        # 0.99 at step 890, --ema-decay from step 8990), so samples do not show the random initial decoder
        # for thousands of steps.
        self.hp.ema_decay = min(self.args.ema_decay, (1 + self.step) / (10 + self.step))
        stats = self.step_fn(self.E, self.D, self.ema, self.opt_e, self.opt_d, x, noise, self.hp, c)
        self.step += 1
        return stats, c

    def state(self):
        """Everything --resume needs; only tensors and plain data, so it loads with weights_only=True."""
        return {"config": self.cfg.to_dict(), "args": vars(self.args), "epoch": self.epoch, "step": self.step,
                "beta_neg": self.hp.beta_neg, "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer_e": self.opt_e.state_dict(), "optimizer_d": self.opt_d.state_dict(),
                "scheduler_e": self.sched_e.state_dict(), "scheduler_d": self.sched_d.state_dict(),
                "rng": {"generator": self.generator.get_state()}}  # the noise and flips; the rest is seeded

    def load_state(self, state, source):
        load_strict(self.model, state["model"], source)
        load_strict(self.ema, state["ema"], source)
        self.opt_e.load_state_dict(state["optimizer_e"])
        self.opt_d.load_state_dict(state["optimizer_d"])
        self.sched_e.load_state_dict(state["scheduler_e"])
        self.sched_d.load_state_dict(state["scheduler_d"])
        self.generator.set_state(state["rng"]["generator"])
        self.epoch, self.step, self.hp.beta_neg = state["epoch"], state["step"], state["beta_neg"]

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


def train(args, given):
    try:
        rank, world, device = distributed.setup(args.device)
    except ValueError as err:
        raise RunError(str(err))
    main = rank == 0
    log = tqdm.write if main else (lambda *a, **k: None)
    data_dir = Path(args.data)
    run_dir = Path(args.out or Path("saves") / data_dir.name)

    saved = None
    if args.resume:
        saved, source = load_with_fallback(run_dir / "checkpoint.pt", map_location="cpu", log=log)
        merged = {**saved["args"], "max_steps": None, **given}  # flags given now win over the saved ones
        merged.update(resume=True, out=str(run_dir))
        args = argparse.Namespace(**merged)
        cfg = ModelConfig.from_dict(saved["config"])
    else:
        try:
            cfg = preset_config(args.preset, args.image_size, args.z_dim)
        except ValueError as err:
            raise RunError(str(err))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)

    images, _ = load_folder(data_dir, cfg.image_size, min_images=args.batch_size * world, log=log)
    images = images.to(device)
    trainer = Trainer(args, cfg, device, world)
    if saved is not None:
        trainer.load_state(saved, source)
        log(f"resumed from {source}: epoch {trainer.epoch}, step {trainer.step}, beta_neg {trainer.hp.beta_neg:g}")
        if "beta_neg" in given:
            trainer.hp.beta_neg = args.beta_neg
    sampler = DistributedSampler(range(len(images)), num_replicas=world, rank=rank, shuffle=True,
                                 seed=args.seed, drop_last=True)
    batches = ImageBatches(images, args.batch_size, sampler, trainer.generator, trainer.memory_format)
    steps_per_epoch = len(batches)
    total_steps = args.epochs * steps_per_epoch
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "samples").mkdir(exist_ok=True)
        log(f"{args.preset} model, {count_parameters(trainer.model) / 1e6:.1f} M parameters, {cfg.image_size}px, "
            f"z_dim {cfg.z_dim}, on {device}" + (f" x {world} processes" if world > 1 else "")
            + f"; {steps_per_epoch} steps per epoch; run directory {run_dir}")
    history = History(run_dir / "history.csv", trainer.step if saved else None) if main else None
    control = ControlFile(run_dir / "control.json", log=log)
    if saved is None or "beta_neg" in given:
        control.poll()  # --beta-neg wins over what the file held before this start; later edits apply

    fixed_real = images[torch.linspace(0, len(images) - 1, min(GRID, len(images))).long()]  # spread over the set
    fixed_noise = torch.randn(len(fixed_real), cfg.z_dim, generator=torch.Generator().manual_seed(args.seed))

    def save():
        if not main:
            return
        state = trainer.state()
        save_atomic(state, run_dir / "checkpoint.pt")
        E, D = trainer.calibrated(images)
        export_model(run_dir / "model.pt", cfg.to_dict(), E, D,
                     {"epoch": trainer.epoch, "step": trainer.step, "data": str(data_dir), "preset": args.preset,
                      "beta_neg": trainer.hp.beta_neg, "method": args.method})
        plot_history(run_dir / "history.csv", run_dir / "losses.png")

    @torch.no_grad()
    def samples():
        E, D = trainer.calibrated(images)
        real = fixed_real.float().div(255).contiguous(memory_format=trainer.memory_format)
        rec = D(E(real)[0])
        sample = D(fixed_noise.to(device))
        save_grid(run_dir / "samples" / f"epoch_{trainer.epoch:04d}.png", real.cpu(), rec.cpu(), sample.cpu())

    meter, last_log, t_log, n_img = {}, None, time.perf_counter(), 0
    good = copy.deepcopy(trainer.state())  # the last state known to be finite, kept in memory
    t_start, t_first, done = time.perf_counter(), None, False
    try:
        while trainer.epoch < args.epochs and not done:
            skip = trainer.step - trainer.epoch * steps_per_epoch  # batches done before an interruption
            bar = tqdm(batches.epoch(trainer.epoch, skip), total=steps_per_epoch, initial=skip, leave=False,
                       desc=f"epoch {trainer.epoch + 1}/{args.epochs}", disable=not main, dynamic_ncols=True)
            for x in bar:
                stats, c = trainer.train_step(x, total_steps)
                n_img += x.shape[0] * world
                for k, v in stats.items():
                    meter[k] = meter.get(k, 0) + v
                meter["n"] = meter.get("n", 0) + 1
                if device.type == "cpu" and t_first is None:
                    t_first = time.perf_counter()  # the first step warms up: time the next ones
                    first_step = trainer.step
                elif device.type == "cpu" and trainer.step == first_step + 3:
                    per_step = (time.perf_counter() - t_first) / 3
                    hint = {"full": "; --preset small is about 10x faster", "small": ""}.get(args.preset, "")
                    log(f"on the CPU: about {per_step:.1f} s per step, {per_step * steps_per_epoch / 60:.1f} min "
                        f"per epoch{hint}")
                done = trainer.step == args.max_steps
                if trainer.step % args.log_every == 0 or trainer.step % steps_per_epoch == 0 or done:
                    row = {k: (v / meter["n"]).item() for k, v in meter.items() if k != "n"}
                    now = time.perf_counter()
                    row.update(step=trainer.step, epoch=trainer.epoch + 1, beta_neg=trainer.hp.beta_neg, c=c,
                               img_per_s=n_img / (now - t_log))
                    meter, t_log, n_img = {}, now, 0
                    if not all(math.isfinite(v) for v in row.values() if isinstance(v, float)):
                        trainer.load_state(good, "the last good state")
                        save()
                        raise RunError(f"a loss is not finite near step {row['step']} (beta_neg "
                                       f"{row['beta_neg']:g}, beta_kl {args.beta_kl:g}, beta_rec {args.beta_rec:g}); "
                                       f"saved the last good state (step {trainer.step}) to {run_dir}/checkpoint.pt. "
                                       f"Raise beta_neg (--beta-neg) and --resume")
                    good = copy.deepcopy(trainer.state())
                    last_log = row
                    if main:
                        history.append(row)
                        bar.set_postfix(rec=f"{row['rec']:.4f}", kl_real=f"{row['kl_real']:.1f}",
                                        kl_fake=f"{row['kl_fake']:.1f}", diff_kl=f"{row['diff_kl']:.1f}",
                                        beta_neg=f"{row['beta_neg']:g}", img_s=f"{row['img_per_s']:.1f}")
                    new = control.poll() if main else None
                    beta_neg = distributed.broadcast(new["beta_neg"] if new else trainer.hp.beta_neg, device)
                    if beta_neg != trainer.hp.beta_neg:
                        log(f"step {trainer.step}: beta_neg {trainer.hp.beta_neg:g} -> {beta_neg:g} (control.json)")
                        trainer.hp.beta_neg = beta_neg
                        if main:
                            history.append({"step": trainer.step, "epoch": trainer.epoch + 1, "beta_neg": beta_neg,
                                            "event": f"beta_neg {beta_neg:g} from control.json"})
                if done:
                    break
            bar.close()
            if trainer.step % steps_per_epoch:  # stopped inside an epoch (--max-steps)
                log(f"stopped at step {trainer.step} (--max-steps)")
                break
            trainer.epoch += 1
            trainer.sched_e.step()
            trainer.sched_d.step()
            if main and last_log:
                log(f"epoch {trainer.epoch}/{args.epochs}  step {trainer.step}  rec {last_log['rec']:.5f}  "
                    f"kl_real {last_log['kl_real']:.1f}  kl_fake {last_log['kl_fake']:.1f}  "
                    f"diff_kl {last_log['diff_kl']:.1f}  beta_neg {trainer.hp.beta_neg:g}  c {c:.3f}  "
                    f"{last_log['img_per_s']:.1f} img/s")
            if main and (trainer.epoch % args.sample_every == 0 or trainer.epoch == args.epochs):
                samples()
            if trainer.epoch % args.save_every == 0 and trainer.epoch < args.epochs and not done:
                save()
    except KeyboardInterrupt:
        save()
        log(f"interrupted at step {trainer.step}; saved {run_dir}/checkpoint.pt (continue with --resume)")
        return trainer
    save()
    log(f"done: {trainer.epoch} epochs, {trainer.step} steps in {(time.perf_counter() - t_start) / 60:.1f} min; "
        f"{run_dir}/model.pt")
    return trainer


def main(argv=None):
    args, given = parse_args(argv)
    try:
        train(args, given)
    except (RunError, DatasetError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
