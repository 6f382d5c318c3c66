"""Train AS-IntroVAE on a folder of images (the algorithm: docs/ALGORITHM.md), then finish its decoder.

    python train.py --epochs 5 --finish-steps 50               # a first run on a CPU: runs/fantasy
    python test.py --model runs/fantasy/model.pt --out runs/fantasy/test   # its latent map and metrics
    python train.py --data ~/my_places                         # your own images: 540 epochs, then the finishing
    echo '{"beta_neg": 64}' > runs/my_places/control.json      # change beta_neg while it runs
    python train.py --data ~/my_places --resume --epochs 600   # go on where it stopped, to epoch 600
    python train.py --data ~/my_places --overwrite             # delete that run and start again
    torchrun --standalone --nproc_per_node=4 train.py --data ~/my_places   # DistributedDataParallel, 4 GPUs

The model is the small preset (3.8 M parameters, 256x256, the one whose pictures are measured) on every device
unless --preset says otherwise. After the epochs the run finishes its decoder: --finish-steps steps (600; 0
leaves the phase out, as --official does) of the decoder alone on the training images' fixed codes, the
encoder frozen, each pixel's error weighed by the image's local contrast (--finish-weight), so that it draws
the stars and lit windows the game leaves out (docs/ALGORITHM.md, "Finishing the decoder"). On the demo
images and two CPU cores, 5 epochs take minutes and the 600 finishing steps about 25 min.

A run folder (--out, default runs/<name of the data folder>) belongs to one run. It receives
checkpoint.pt (everything, for --resume; the one before is kept as checkpoint.prev.pt), model.pt
(encoder, decoder and config, for test.py and the notebook; its meta says how far the finishing went),
samples/, history.csv, losses.png and TensorBoard's event files (tensorboard --logdir runs). A second
train.py on a folder in use is refused, and so is a new run in a folder that holds one (any of
checkpoint.pt, checkpoint.prev.pt, model.pt, history.csv) unless --resume goes on with it or --overwrite
starts again in its place. Under torchrun, rank 0 holds the folder.

This file reads top to bottom: the arguments, then the loop (the epochs, then the finishing). The run's state
and steps are trainer.py's, the run folder's bookkeeping (lock, resume, saves, control.json, recovery, rows,
grids, signals) runfolder.py's.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import distributed
from checkpoint import CheckpointError, load_exported
from cli import Parser, file_in_the_way
from dataset import DatasetError, check_folder
from models import DOWNSAMPLING, PRESETS, UPSAMPLING, ModelConfig, preset_config
from runfolder import Meter, Run, RunError
from step import FAKES, FINISH_BATCH, FINISH_STEPS, FINISH_WEIGHT, PRIORS, fake_sources, finish_order

# The official AS-IntroVAE's settings (this project's seed); --official puts them back. The defaults differ
# by the study (docs/STUDY.md): reconstruction weighed 10x the KL instead of 1/2, 540 epochs of which the first
# 300 a plain VAE, tanh only inside the AS distance, no moving average of the decoder, the encoder's feature
# distance added to the decoder's reconstruction term, and the decoder finished after the epochs (docs/ALGORITHM.md,
# Defaults).
OFFICIAL = {"epochs": 400, "lr_drop_epoch": 350, "beta_rec": 0.5, "beta_kl": 1.0, "beta_adv": None, "beta_neg": 256.0,
            "gamma_r": 1e-8, "tanh": "all", "method": "as", "vae_epochs": 0, "augment": 0.0, "rec_loss": "mse",
            "fakes": "prior", "ema_decay": 0.999, "finish_steps": 0,
            "head_norm": "off", "acai": 0.0, "prior": "normal"}
# What a checkpoint written before a flag existed ran with (--resume keeps it): the official behaviour.
BEFORE_FLAG = {"vae_epochs": 0, "beta_adv": None, "tanh": "all", "augment": 0.0, "rec_loss": "mse", "fakes": "prior",
               "feature_weight": 1.0, "contrast_weight": 0.0, "finish_steps": 0,
               "head_norm": "off", "acai": 0.0, "critic": "head", "prior": "normal"}


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped the run after saving it; --resume goes on."""


def parse_args(argv=None):
    p = Parser(prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--data", default="data/fantasy", help="folder of training images, searched recursively (default %(default)s)")
    a("--out", default=None, help="run folder (default runs/<name of the data folder>)")
    a("--preset", default="small", choices=list(PRESETS),
      help="model size: small (3.8 M parameters, the one whose pictures are measured, on every device), full (42 M, "
      "x4 the widths; worse at the same steps so far, docs/STUDY.md), tiny (64x64, tests) (default %(default)s)")
    a("--image-size", type=int, default=None, choices=[64, 128, 256], help="image size (default: the preset's)")
    a("--z-dim", type=int, default=None, help="latent dimensions (default: the preset's, 256 for full and small)")
    a("--upsample", default="nearest", choices=list(UPSAMPLING), help="the decoder's x2 upsamplings (default "
      "%(default)s, official)")
    a("--downsample", default="average", choices=list(DOWNSAMPLING), help="the encoder's /2 poolings: average, a 2x2 "
      "box (official), or blur, StyleGAN2's anti-aliased [1, 3, 3, 1] blur before every second pixel (with --upsample "
      "bilinear, StyleGAN2's resampling) (default %(default)s)")
    a("--head-norm", default="auto", choices=["auto", "on", "off"], help="on: the encoder's last layer reads its "
      "features normalised per image, scaled down where it is wider than the small preset's, which keeps the full "
      "preset's KL bounded on photographs (docs/TRAINING.md); auto: on for the full preset (default %(default)s; "
      "official off)")
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
    a("--acai", type=float, default=0.0, help="weight of an interpolation critic in the game (ACAI, Berthelot et al. "
      "2019): in the introspective steps the encoder also learns to guess, from a decoded mix of two real images' "
      "codes, how far between them it lay, and the decoder to draw mixes that it takes for real images; the encoder "
      "grows a one-output head for it (default %(default)s: none, official)")
    a("--critic", default="head", choices=["head", "net"], help="with --acai, what the critic is: head: one output "
      "read from the encoder's features; net: a network of its own, the encoder's convolutions again, so that its "
      "terms cost the encoder nothing, as ACAI's (default %(default)s)")
    a("--prior", default="normal", choices=list(PRIORS), help="the prior of the KL terms and of the fakes: "
      + "; ".join(f"{k}: {v}" for k, v in PRIORS.items()) + " (default %(default)s)")
    a("--rec-loss", default="features", choices=["mse", "ffl", "features"], help="reconstruction term of real "
      "images: mse: the squared error R; ffl: R plus the focal frequency loss; features: R plus, in the decoder "
      "update, the distance in the encoder's first feature maps (default %(default)s; official mse)")
    a("--feature-weight", type=float, default=1.0, help="with --rec-loss features: the weight of the "
      "feature distance beside the squared error, both in the units of R (default %(default)s)")
    a("--contrast-weight", type=float, default=0.0, help="weigh the squared error of each pixel of a real "
      "image's reconstruction by 1 + W times the image's local contrast there (its luminance less its 7x7 mean), so "
      "that a star or a lit window counts more than its few pixels; in both updates (default %(default)s: R as "
      "the official code)")
    a("--finish-steps", type=int, default=FINISH_STEPS, help="after the epochs, finish the decoder: this many steps of "
      f"the decoder alone, {FINISH_BATCH} images each, on the training images' fixed codes, the encoder frozen "
      "(docs/ALGORITHM.md); 0: leave it out (default %(default)s; official 0: not part of AS-IntroVAE)")
    a("--finish-weight", type=float, default=FINISH_WEIGHT, help="the finishing's contrast weight: a pixel's "
      "squared error counts 1 + W times the image's local contrast there (as --contrast-weight) (default "
      "%(default)s)")
    a("--official", action="store_true", help="the official AS-IntroVAE's settings instead of this project's "
      "defaults: " + ", ".join(official_flag(k, v) for k, v in OFFICIAL.items()) + " (flags given beside it win)")
    a("--seed", type=int, default=0, help="random seed (default %(default)s)")
    a("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default %(default)s: CUDA if present)")
    a("--init", default=None, metavar="MODEL", help="start the encoder and decoder from the weights of a model.pt (e.g. "
      "saves/fantasy/model.pt, to fine-tune the shipped model on your own folder); the model's shape is the file's, "
      "everything else starts new: optimisers, schedule (--vae-epochs 0 skips the plain VAE epochs) (default: "
      "weights drawn at random)")
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
    a("--capture", default="auto", choices=["auto", "off"], help="auto: on one CUDA device, without --compile, the "
      "fast step is recorded as CUDA graphs after a few eager steps and replayed, one launch a step (graphs.py); "
      "off: every step eager (default %(default)s)")
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
    for k in ("vae_epochs", "finish_steps"):
        if getattr(args, k) < 0:
            yield f"--{k.replace('_', '-')} must be at least 0, got {getattr(args, k)}"
    for k in ("lr", "beta_rec"):
        if not 0 < getattr(args, k) < math.inf:
            yield f"--{k.replace('_', '-')} must be a positive number, got {getattr(args, k)}"
    for k in ("beta_kl", "gamma_r", "feature_weight", "contrast_weight", "finish_weight", "acai"):
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
    if args.resume and "init" in given:
        yield "--init starts a new run from a model's weights, --resume goes on with the run in the folder: give one"
    if "init" in given and not Path(args.init).expanduser().is_file():
        yield f"--init {args.init}: no such file; give a model.pt (e.g. saves/fantasy/model.pt)"
    out, blocked = Path(args.out), file_in_the_way(args.out)
    if blocked:
        yield f"--out {out}{'' if blocked == out else f': {blocked}'} is a file; give a folder for the run"
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
    if "finish_weight" in given and not args.finish_steps:
        yield "--finish-weight weighs the finishing's error, which --finish-steps 0 leaves out"
    if args.acai and args.method == "vae":
        yield "--acai weighs a term of the introspective game, which --method vae does not play"
    if args.prior == "exemplar" and args.method == "as" and args.tanh != "as-only":
        yield (f"--prior exemplar: the KL terms must see the raw posteriors (--tanh as-only), not the tanh of --tanh "
               f"{args.tanh}, whose codes lie in [-1, 1] away from the exemplars")
    if args.prior == "exemplar" and args.batch_size < 2:
        yield "--prior exemplar leaves each real image out of its own prior: it needs --batch-size 2 at least"


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


def resumed(args, given, saved, source):
    """The arguments and model config of the run saved in source, resumed: its saved flags, over them the flags
    given now; flags newer than the checkpoint take their defaults, except those that change the training: a run
    from before them ran without them (BEFORE_FLAG). A flag given now that the saved run makes meaningless is
    refused."""
    folder = source.parent
    merged = {**vars(args), **BEFORE_FLAG, **saved["args"], "max_steps": None, **given}
    merged.update(resume=True, overwrite=False, out=str(folder))
    args = argparse.Namespace(**merged)
    for message in conflicts(args, given):
        raise RunError(f"{message}: the run in {folder} was saved so")
    if (args.max_steps or math.inf) <= saved["step"]:  # else it would train to the last epoch
        raise RunError(f"--max-steps {args.max_steps}: {source} is at step {saved['step']} already")
    if saved.get("finish", {}).get("step") and args.epochs > saved["epoch"]:
        raise RunError(f"--epochs {args.epochs}: the run in {folder} is finishing its decoder after its "
                       f"{saved['epoch']} epochs; --resume can give it more finishing steps (--finish-steps), "
                       "not more epochs")
    cfg = ModelConfig.from_dict(saved["config"])
    check_shape(args, given, saved["args"]["preset"], cfg, f"the run in {folder}", "--resume")
    return args, cfg


def check_shape(args, given, preset, cfg, what, flag):
    """Refuse flags given now that would change the shape of the saved model cfg (what: its source, flag: the flag
    that reads it): a run goes on, or starts from a model's weights, with the networks those weights fit."""
    shape = {"preset": preset, "image_size": cfg.image_size, "z_dim": cfg.z_dim, "upsample": cfg.upsample,
             "downsample": cfg.downsample, "head_norm": "on" if cfg.head_norm else "off"}
    changed = [f"--{k.replace('_', '-')} {given[k]}" for k, v in shape.items() if given.get(k, v) not in (v, "auto")]
    if changed:
        raise RunError(f"{', '.join(changed)}: {what} is a {preset} model, {cfg.image_size}px, z_dim {cfg.z_dim}, "
                       f"{cfg.upsample} upsampling, {cfg.downsample} downsampling, head norm {shape['head_norm']}; "
                       f"{flag} cannot change its shape")
    if args.acai and not cfg.critic:  # a run with a critic may go on without it (--acai 0), not the other way
        raise RunError(f"--acai {args.acai:g}: {what} was trained without --acai, so its encoder has no critic; "
                       f"{flag} cannot add one")
    if cfg.critic and given.get("critic", cfg.critic) != cfg.critic:
        raise RunError(f"--critic {given['critic']}: {what} has a critic {cfg.critic}; {flag} cannot change it")


def initial(args, given):
    """--init: the exported model whose weights the new run starts from, and its config, which the run keeps."""
    model = load_exported(Path(args.init).expanduser())
    try:
        cfg = ModelConfig.from_dict(model["config"])
    except (TypeError, ValueError) as err:
        raise RunError(f"--init {args.init}: a model configuration this project cannot build ({err})") from None
    # the preset whose widths the file's are (the name in its meta may be absent from older files)
    args.preset = next((name for name in PRESETS if preset_config(name, cfg.image_size).widths == cfg.widths),
                       "custom")
    check_shape(args, given, args.preset, cfg, args.init, "--init")
    return model, cfg


def start(args, given):
    """A Run ready for its first step: the run folder taken, on --resume the checkpoint read, the data loaded."""
    run = Run(args)
    try:
        saved, source = run.checkpoint() if args.resume else (None, None)
        init = None
        if saved:
            args, cfg = resumed(args, given, saved, source)
        elif args.init:
            init, cfg = initial(args, given)
        else:
            try:
                cfg = preset_config(args.preset, args.image_size, args.z_dim, args.upsample, args.downsample,
                                    {"auto": None, "on": True, "off": False}[args.head_norm],
                                    critic=args.critic if args.acai > 0 else "")
            except ValueError as err:
                raise RunError(str(err))
        run.prepare(args, cfg, given, saved, source, init)
    except BaseException:
        run.release()
        raise
    return run


def train(args, given):
    """The run: its epochs, then the finishing of its decoder, from the start or from its checkpoint; saved at the
    end, also when Ctrl-C or SIGTERM stops it (Interrupted). Returns its Trainer."""
    run = start(args, given)
    try:
        with run.stopped_by_signals():
            try:
                seconds = loop(run)
            except KeyboardInterrupt:
                run.save(wait=True)
                run.log(f"interrupted at step {run.trainer.step}; saved {run.dir}/checkpoint.pt (continue with "
                        "--resume)")
                raise Interrupted from None
        if not run.save(wait=True):
            raise RunError(f"could not write the final checkpoint to {run.dir}; the previous one is kept")
        t = run.trainer
        if run.board:
            run.board.end(t.step)
        run.log(f"done: at epoch {t.epoch} of {args.epochs}, step {t.step}"
                + (f", {t.finished} of {run.args.finish_steps} finishing steps" if run.args.finish_steps else "")
                + f"; this process trained {seconds / 60:.1f} min; {run.dir}/model.pt")
        return t
    finally:
        run.release()


def loop(run):
    """The epochs, then the finishing, each step of them in turn; returns the seconds it trained. A row goes to
    history.csv and TensorBoard every --log-every steps (and at the end of each epoch and of the finishing),
    a save every --save-every epochs, a grid every --sample-every epochs (in the finishing: every as many steps
    as those epochs have); --max-steps stops the loop, and Ctrl-C at the next step (KeyboardInterrupt)."""
    t, args, per_epoch = run.trainer, run.args, run.steps_per_epoch
    start_time, meter, done = time.perf_counter(), Meter(), False
    while t.epoch < args.epochs:
        skip = t.step - t.epoch * per_epoch  # batches done before an interruption
        with run.progress(run.batches.epoch(t.epoch, skip), f"epoch {t.epoch + 1}/{args.epochs}", skip,
                          per_epoch) as batches:
            for x in batches:
                stats, c = t.train_step(x, run.total_steps, args.vae_epochs * per_epoch, run.c_steps)
                meter.add(stats, x.shape[0] * run.world)
                run.clock()
                done = t.step == args.max_steps
                logged = t.step % args.log_every == 0 or t.step % per_epoch == 0 or done
                if logged:
                    run.after_log(meter.row(step=t.step, epoch=t.epoch + 1, beta_neg=t.hp.beta_neg, c=c))
                run.stop_if_asked(logged)
                if done:
                    break
        if t.step % per_epoch:
            run.log(f"stopped at step {t.step} (--max-steps)")
            return time.perf_counter() - start_time
        t.epoch += 1
        t.set_rate()
        run.summary(f"epoch {t.epoch}/{args.epochs}", {**meter.last, "beta_neg": t.hp.beta_neg})
        if t.epoch % args.sample_every == 0 or t.epoch == args.epochs:
            run.samples(f"epoch_{t.epoch:04d}", f"epoch {t.epoch}")
        if done:
            return time.perf_counter() - start_time
        last = t.epoch == args.epochs and t.finished >= args.finish_steps  # the run's end: saved after the loop
        if (t.epoch % args.save_every == 0 or t.epoch == args.epochs) and not last:
            run.save()

    if t.finished < args.finish_steps:  # the finishing (Trainer.finishing): the same on every process
        E, codes, meter = *t.finishing(run.images), Meter()
        order = finish_order(len(codes), FINISH_BATCH, args.seed, t.finished)
        with run.progress(order, "finishing the decoder", t.finished, args.finish_steps) as batches:
            for b in batches:
                meter.add(t.finish_step(E, codes, run.images, b), len(b))
                if t.finished == 1:
                    run.event(f"finishing the decoder: {args.finish_steps} steps on the training images' codes, "
                              f"contrast weight {args.finish_weight:g}", epoch=t.epoch)
                end, done = t.finished == args.finish_steps, t.step == args.max_steps
                logged = t.step % args.log_every == 0 or end or done
                if logged:
                    run.record(meter.row(step=t.step, epoch=t.epoch))
                run.stop_if_asked(logged)
                if t.finished % (args.sample_every * per_epoch) == 0 or end:
                    run.samples(f"finish_{t.finished:04d}", f"finishing step {t.finished}")
                if end or done:
                    break
                if t.finished % (args.save_every * per_epoch) == 0:
                    run.save()
        run.summary(f"finishing {t.finished}/{args.finish_steps}", meter.last)
        if not end:
            run.log(f"stopped at step {t.step} (--max-steps)")
    return time.perf_counter() - start_time


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
