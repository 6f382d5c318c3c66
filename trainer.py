"""The state of a training run and its steps: networks, optimisers, schedule, noise, and the finishing of the
decoder after the epochs (docs/ALGORITHM.md); what a checkpoint saves of them. train.py drives it, runfolder.py
keeps its files."""
import copy
import warnings
from dataclasses import replace

import torch
from torch.nn.parallel import DistributedDataParallel

import distributed
import graphs
from checkpoint import load_strict
from losses import image_scale, transition_coefficient
from models import build_model, reparameterize
from step import FINISH_LR, Hyper, bare, draw_noise, fast_step, finish_step, reference_step


class Trainer:
    """The state of a run (networks, optimisers, schedule, noise generator, finishing) and what it saves."""

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
        # --acai's critic (head or net) idles in the plain VAE epochs and under --acai 0: those steps take a wrapper that
        # finds unused parameters. The critic's own steps cannot: there the last of the encoder's passes before the
        # backward (the critic's) does not reach fc, which that wrapper would then take for unused.
        self.E_idle = E
        if world > 1 and cfg.critic:
            self.E_idle = DistributedDataParallel(bare(E), broadcast_buffers=False, find_unused_parameters=True)
        fused = fast and device.type in ("cuda", "cpu")  # one kernel for all tensors instead of a loop
        captured = graphs.wanted(args, device, world)  # the step replayed from CUDA graphs (graphs.py)
        adam = dict(betas=(0.9, 0.999), fused=fused)
        self.opt_e = torch.optim.Adam(self.model.encoder.parameters(), args.lr, capturable=captured, **adam)
        self.opt_d = torch.optim.Adam(self.model.decoder.parameters(), args.lr, capturable=captured, **adam)
        self.opt_f = torch.optim.Adam(self.model.decoder.parameters(), FINISH_LR, **adam)  # the finishing's own
        self.hp = Hyper(args.beta_kl, args.beta_rec, initial_beta_neg(args), args.gamma_r, image_scale(cfg.image_size),
                        args.method, args.ema_decay, bf16=fast and use_bf16(args.precision, device), tanh=args.tanh,
                        beta_adv=args.beta_adv, augment=args.augment, rec_loss=args.rec_loss, fakes=args.fakes,
                        feature_weight=args.feature_weight, contrast_weight=args.contrast_weight, acai=args.acai,
                        prior=args.prior)
        # --beta-neg START:END; it ends when beta_neg is set otherwise (control.json, a recovery)
        self.schedule = args.beta_neg if isinstance(args.beta_neg, tuple) else None
        self.step_fn = graphs.GraphedStep() if captured else fast_step if fast else reference_step
        self.generator = torch.Generator(device).manual_seed(args.seed * 1000 + distributed.rank())
        self.epoch = self.step = 0
        self.finished = 0  # steps of the finishing done; they count in self.step too, after the epochs' steps

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
                           fakes=self.args.fakes, acai=self.args.acai > 0)
        self.hp.method = "vae" if self.step < vae_steps else self.args.method
        t, total = max(self.step - vae_steps, 0), total_steps - vae_steps
        c = transition_coefficient(t, c_steps or total, self.args.method)
        self.hp.ema_decay = self.ema_decay()
        if self.schedule:
            self.hp.beta_neg = scheduled_beta_neg(self.schedule, t, total)
        self.hp.probe = (self.step + 1) % self.args.log_every == 0  # gradient norms for the logged row
        E = self.E_idle if self.hp.method == "vae" or not self.hp.acai else self.E
        stats = self.step_fn(E, self.D, self.ema, self.opt_e, self.opt_d, x, noise, self.hp, c)
        self.step += 1
        return stats, c

    def ema_decay(self):
        """The moving average's decay at this step. It warms up, for a nonzero --ema-decay: the average spans about
        a ninth of the steps taken so far (decay 0.1 at step 0, 0.9 at step 80, 0.99 at step 890, 0.999 at step
        8990), so samples do not show the random initial decoder for thousands of steps."""
        return min(self.args.ema_decay, (1 + self.step) / (10 + self.step))

    @torch.no_grad()
    def finishing(self, images):
        """What the finishing's steps take: the encoder as exported (calibrated, eval mode), frozen, which judges
        the feature distance, and the codes it gives the images (uint8, (N, 3, S, S)): their posterior means.
        The encoder does not change after the epochs, so a resumed finishing gets the same ones."""
        E = self.calibrated(images)[0].requires_grad_(False)
        codes = torch.cat([E(self.batch(images[i:i + self.args.batch_size]))[0].float()
                           for i in range(0, len(images), self.args.batch_size)])
        return E, codes

    def finish_step(self, E, codes, images, b):
        """One step of the finishing on the images of indices b (a batch of step.finish_order): the decoder alone,
        in train mode, on their fixed codes, at the contrast weight --finish-weight; its moving average follows
        it. Under torchrun every process takes the same step on the same batch, without synchronising."""
        b = b.to(self.device)
        hp = replace(self.hp, contrast_weight=self.args.finish_weight, ema_decay=self.ema_decay())
        stats = finish_step(E, bare(self.D), self.opt_f, codes[b], self.batch(images[b]), hp, self.ema)
        self.step += 1
        self.finished += 1
        return stats

    def batch(self, images):
        """uint8 images as the networks take them: floats in [0, 1], in the step's memory format."""
        return images.float().div(255).contiguous(memory_format=self.memory_format)

    def state(self):
        """Everything --resume needs; only tensors and plain data, so it loads with weights_only=True."""
        return {"config": self.cfg.to_dict(), "args": vars(self.args), "epoch": self.epoch, "step": self.step,
                "beta_neg": self.hp.beta_neg, "schedule": self.schedule,
                "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer_e": self.opt_e.state_dict(), "optimizer_d": self.opt_d.state_dict(),
                "finish": {"step": self.finished, "optimizer": self.opt_f.state_dict()},
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
        if "finish" in state:  # (absent from checkpoints of earlier versions, which never finished)
            self.opt_f.load_state_dict(state["finish"]["optimizer"])
            self.finished = state["finish"]["step"]

    def load_weights(self, model, source):
        """--init: the weights of an exported model (export_model's dict); the optimisers start new."""
        load_strict(self.model.encoder, model["encoder"], source)
        load_strict(self.model.decoder, model["decoder"], source)
        self.ema.load_state_dict(self.model.decoder.state_dict())

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
            mu, logvar = E(self.batch(images[i:i + bs]))
            D(reparameterize(mu, logvar, torch.randn(mu.shape, generator=g, device=self.device)))
        return E.eval(), D.eval()


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
