"""The study behind the defaults: configurations trained at equal compute, two seeds each, measured by test.py.

    python study.py --stage screen --configs official,soft       # 128x128, 80 epochs (1,040 steps) per run
    python study.py --stage confirm --configs official,rec1-kl0.1   # 256x256, the same epochs
    python study.py --table                                       # the README's table of every finished run
    python study.py --table --results imgs/study/results.jsonl    # the same from the measurements committed

A run is `python train.py --preset small FLAGS --seed S --out runs/study/STAGE/NAME-sS` and then
`python test.py --model RUN/model.pt` (training images and the held-out demo set). Each finished run
appends one line (its commands, steps, wall time, metrics and the training signals of its last rows)
to runs/study/results.jsonl, so an interrupted study goes on where it stopped, and copies its last
sample grid to imgs/study/. Two runs go at a time with one CPU thread each: on 2 cores that trains
about 1.4x more steps per hour than one run on both, and every run gets the same share.
"""
import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent
RUNS = Path("runs/study")  # relative to the repository, as the commands in the table
RESULTS = ROOT / RUNS / "results.jsonl"
GRIDS = ROOT / "imgs" / "study"

# Every configuration starts from its stage's base, written out in full so that its command means the same
# under any defaults. The screen and confirm stages start from the official settings as they ran here (gamma_r 0
# skips two passes whose effect is below float32 resolution, see README, Speed); the game stage from the
# defaults the screen chose.
OFFICIAL_BASE = ["--beta-rec", "0.5", "--beta-kl", "1", "--beta-neg", "256", "--vae-epochs", "0", "--tanh", "all",
                 "--ema-decay", "0.999", "--lr-drop-epoch", "350"]
GAME_BASE = ["--beta-rec", "1", "--beta-kl", "0.1", "--beta-neg", "256", "--tanh", "all", "--augment", "0",
             "--rec-loss", "mse", "--ema-decay", "0.999"]
# The places stage: this project's defaults of the game, where new codes are decoded (docs/STUDY.md, "New places")
PLACES_BASE = ["--beta-rec", "1", "--beta-kl", "0.1", "--beta-neg", "256", "--tanh", "as-only", "--augment", "0",
               "--rec-loss", "features", "--feature-weight", "1", "--contrast-weight", "0", "--ema-decay", "0",
               "--fakes", "prior", "--upsample", "nearest"]
# name -> train.py flags on top of the stage's base (later flags win)
CONFIGS = {
    "official": [],
    "base": [],  # the stage's base alone (in the game stage: the defaults the screen chose)
    "tanh-both": ["--tanh", "both"],
    "augment": ["--augment", "1"],
    "ffl": ["--rec-loss", "ffl"],
    "features": ["--rec-loss", "features"],
    # the decoder's adversarial weight untied from beta_kl (0.1 in the game's base) and set to the official 1
    "adv1-all": ["--beta-adv", "1"],
    "adv1-both": ["--beta-adv", "1", "--tanh", "both"],
    "adv1-as-only": ["--beta-adv", "1", "--tanh", "as-only"],
    "adv1-soft": ["--beta-adv", "1", "--method", "soft"],
    # on the best of the game stage's first four (--tanh as-only): the reconstruction terms, augmentation, mixed fakes
    "as-only-ffl": ["--tanh", "as-only", "--rec-loss", "ffl"],
    "as-only-features": ["--tanh", "as-only", "--rec-loss", "features"],
    "as-only-augment": ["--tanh", "as-only", "--augment", "1"],
    "as-only-mix": ["--tanh", "as-only", "--fakes", "mix"],
    # the decoder as trained (no moving average, docs/STUDY.md), squared error: the defaults before --rec-loss features
    "as-only-trained": ["--tanh", "as-only", "--ema-decay", "0"],
    # the decoder as trained with the feature distance weighed 4x the squared error: does more of it give more detail?
    "features-w4-trained": ["--tanh", "as-only", "--rec-loss", "features", "--feature-weight", "4", "--ema-decay", "0"],
    # the decoder as trained, weight 1, its upsamplings bilinear: does the grid texture go, and detail with it?
    "features-bilinear-trained": ["--tanh", "as-only", "--rec-loss", "features", "--ema-decay", "0", "--upsample",
                                  "bilinear"],
    # a plain autoencoder (no KL, no game) for as many steps: what these networks can reconstruct at all
    "ae": ["--method", "vae", "--beta-kl", "0", "--ema-decay", "0"],
    "soft": ["--method", "soft"],
    "tanh-as-only": ["--tanh", "as-only"],
    "rec1-kl0.5": ["--beta-rec", "1", "--beta-kl", "0.5"],
    "rec1-kl0.1": ["--beta-rec", "1", "--beta-kl", "0.1"],
    "rec1-kl0.02": ["--beta-rec", "1", "--beta-kl", "0.02"],
    "rec1-kl0.1-tanh-as-only": ["--beta-rec", "1", "--beta-kl", "0.1", "--tanh", "as-only"],
    "rec1-kl0.1-soft": ["--beta-rec", "1", "--beta-kl", "0.1", "--method", "soft"],
    "rec1-kl0.1-neg1024": ["--beta-rec", "1", "--beta-kl", "0.1", "--beta-neg", "1024"],
    "rec1-kl0.1-neg32": ["--beta-rec", "1", "--beta-kl", "0.1", "--beta-neg", "32"],
    "rec1-kl0.1-neg1024to32": ["--beta-rec", "1", "--beta-kl", "0.1", "--beta-neg", "1024:32"],
    "rec1-kl0.1-auto": ["--beta-rec", "1", "--beta-kl", "0.1", "--beta-neg", "auto", "--beta-neg-max", "1024"],
    "vae-rec1-kl0.1": ["--beta-rec", "1", "--beta-kl", "0.1", "--method", "vae"],
    # the same compute as 80 introspective epochs (a VAE step costs about 0.3 of one): 120 VAE epochs, then 40;
    # this project's defaults, at 160 epochs
    "rec1-kl0.1-vae120of160": ["--beta-rec", "1", "--beta-kl", "0.1", "--epochs", "160", "--vae-epochs", "120"],
    # a plain VAE for about the wall time of the one above (80 VAE epochs took 3 min at the screen, it 10):
    # does the introspective quarter add anything at equal compute?
    "vae-rec1-kl0.1-240": ["--beta-rec", "1", "--beta-kl", "0.1", "--method", "vae", "--epochs", "240"],
    # the places stage: where the fakes' codes come from (instead of N(0, I), or beside it), and the resampling
    "mix": ["--fakes", "mix"],
    "arc": ["--fakes", "arc"],
    "fitted": ["--fakes", "fitted"],
    "prior+mix": ["--fakes", "prior+mix"],
    "antialias": ["--upsample", "bilinear", "--downsample", "blur"],
    # a prior the codes can keep: their KL weighed more, the decoder's adversarial weight left at the base's 0.1
    "kl0.5": ["--beta-kl", "0.5", "--beta-adv", "0.1"],
    "kl1": ["--beta-kl", "1", "--beta-adv", "0.1"],
    # on a CPU without bf16: the base in float32, and ACAI's interpolation critic beside it, its weight ACAI's 0.5 for
    # images in [-1, 1] carried to ours in [0, 1], whose squared errors are a quarter of those
    "base-fp32": ["--precision", "fp32"],
    "acai-fp32": ["--acai", "0.125", "--precision", "fp32"],
    # a quarter of that weight: 0.125 lost 0.66 dB; does a lighter critic keep the reconstructions and part of the gain?
    "acai0.03-fp32": ["--acai", "0.03", "--precision", "fp32"],
    # ACAI's critic as a network of its own, at ACAI's weight: does it move the middles off the cross-fade without
    # costing the codes, as the head did at this weight?
    "acai-net0.125-fp32": ["--acai", "0.125", "--critic", "net", "--precision", "fp32"],
    # the exemplar prior (Exemplar VAE): the codes' KL to their neighbours' codes, not to N(0, I), and the fakes drawn
    # around the real codes; does the decoder learn to draw new variations of a scene there?
    "exemplar-fp32": ["--prior", "exemplar", "--precision", "fp32"],
    # every law of fakes among the codes (mix, fitted, exemplar) lost the detail that the prior's far fakes keep: half
    # the fakes from the prior, half from walks between codes, the issue's "beside N(0, I)"
    "prior+mix-fp32": ["--fakes", "prior+mix", "--precision", "fp32"],
    # the two settings that passed the rule on two seeds: the mixed fakes kept the detail and the reconstructions' FD,
    # ACAI's critic made the middles real; does the pair keep both?
    "prior+mix-acai0.03-fp32": ["--fakes", "prior+mix", "--acai", "0.03", "--precision", "fp32"],
}
# stage -> (train.py flags, base); 13 steps of 6 images make an epoch of the 80 demo images
STAGES = {"screen": (["--preset", "small", "--image-size", "128", "--epochs", "80"], OFFICIAL_BASE),  # 1,040 steps
          "confirm": (["--preset", "small", "--image-size", "256", "--epochs", "80"], OFFICIAL_BASE),
          # long enough for the adversarial game: 68 VAE epochs (884 steps), then 232 introspective (3,016 steps),
          # the learning rate x0.1 for the last eighth as in the default 400-epoch run
          "game": (["--preset", "small", "--image-size", "128", "--epochs", "300", "--vae-epochs", "68",
                    "--lr-drop-epoch", "262"], GAME_BASE),
          "places": (["--preset", "small", "--image-size", "128", "--epochs", "300", "--vae-epochs", "68",
                      "--lr-drop-epoch", "262"], PLACES_BASE)}
SIGNALS = ["rec", "kl_real", "kl_fake", "grad_rec", "grad_adv", "sat_fake"]  # from the last rows of history.csv


def commands(stage, name, seed):
    run = RUNS / stage / f"{name}-s{seed}"
    stage_flags, base = STAGES[stage]
    flags = [*stage_flags, *base, *CONFIGS[name]]
    # a configuration interrupted before its result was written goes on from its checkpoint (or starts again
    # when it never saved one); --finish-steps 0: the runs measure the game alone, as before train.py finished the
    # decoder (its finishing is studied apart)
    saved = any((ROOT / run / f).is_file() for f in ("checkpoint.pt", "checkpoint.prev.pt"))
    train = ["python", "train.py", *flags, "--seed", str(seed), "--out", str(run), "--save-every", "25",
             "--sample-every", "20", "--resume" if saved else "--overwrite", "--finish-steps", "0"]
    data = flags[flags.index("--data"):][:2] if "--data" in flags else []  # test.py measures the same images
    test = ["python", "test.py", "--model", str(run / "model.pt"), *data, "--out", str(run)]
    return run, train, test


def last_signals(history, fraction=0.1):
    """Means of the training signals over the last tenth of the logged rows, and the decoder's adversarial over
    reconstruction gradient averaged over the introspective steps (the rows with fakes)."""
    with open(history, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["rec"]]
    tail = rows[-max(1, int(len(rows) * fraction)):]
    signals = {k: statistics.mean(float(r[k]) for r in tail if r.get(k)) for k in SIGNALS
               if any(r.get(k) for r in tail)}
    game = [float(r["grad_adv"]) / float(r["grad_rec"]) for r in rows if r.get("kl_fake") and r.get("grad_adv")]
    if game:
        signals["adv_over_rec_introspective"] = statistics.mean(game)
    return signals


def measure(test):
    """test.py's JSON line for a run."""
    out = subprocess.run([sys.executable, *test[1:]], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def one_run(stage, name, seed):
    run, train, test = commands(stage, name, seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    with open(ROOT / run.parent / (run.name + ".log"), "a") as log:  # the run's console, bars included
        subprocess.run([sys.executable, *train[1:]], cwd=ROOT, env=env, check=True, stdout=log, stderr=log)
    wall = time.perf_counter() - start
    metrics = measure(test)
    grid = sorted((ROOT / run / "samples").glob("epoch_*.png"))[-1]
    GRIDS.mkdir(parents=True, exist_ok=True)
    link = GRIDS / f"{stage}-{name}-s{seed}.jpg"  # a JPEG: a tenth of the PNG's size, for the repository
    Image.open(grid).convert("RGB").save(link, quality=85)
    with open(ROOT / run / "history.csv", newline="") as f:
        steps = int(list(csv.DictReader(f))[-1]["step"])
    return {"stage": stage, "config": name, "seed": seed, "train": shlex.join(train), "test": shlex.join(test),
            "steps": steps, "wall_s": round(wall), "grid": os.path.relpath(link, ROOT), "metrics": metrics,
            "signals": last_signals(ROOT / run / "history.csv")}


def remeasure(stage, names, seeds):
    """Measure finished runs again with today's test.py (their models are kept in runs/study)."""
    rows = done()
    for r in rows:
        if r["stage"] == stage and r["config"] in names and r["seed"] in seeds:
            run, _, test = commands(stage, r["config"], r["seed"])
            if (ROOT / run / "model.pt").is_file():
                r.update(test=shlex.join(test), metrics=measure(test), signals=last_signals(ROOT / run / "history.csv"))
                print(f"measured {stage} {r['config']} seed {r['seed']} again", flush=True)
    RESULTS.write_text("".join(json.dumps(r) + "\n" for r in rows))


def done(path=None):
    path = Path(path or RESULTS)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def study(stage, names, seeds, jobs):
    finished = {(r["stage"], r["config"], r["seed"]) for r in done()}
    todo = [(stage, n, s) for n in names for s in seeds if (stage, n, s) not in finished]
    (ROOT / RUNS / stage).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(jobs) as pool:
        for row in pool.map(lambda job: one_run(*job), todo):
            with open(RESULTS, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{row['stage']} {row['config']} seed {row['seed']}: {row['steps']} steps in {row['wall_s']} s; "
                  f"PSNR {row['metrics']['psnr']:.2f} dB", flush=True)


def label(name, stage):
    """A configuration as the tables show it: its flags on top of its stage's base."""
    base = "the official settings" if STAGES[stage][1] is OFFICIAL_BASE else "the base"
    return f"`{' '.join(CONFIGS[name])}`" if CONFIGS[name] else f"({base})"


def get(metrics, *keys):
    """metrics[k1][k2]... or None where a run was measured before that measure existed."""
    for k in keys:
        if not isinstance(metrics, dict) or metrics.get(k) is None:
            return None
        metrics = metrics[k]
    return metrics


def fmt(value, spec=".2f"):
    return "-" if value is None else format(value, spec)


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


FINE = ("10-20 px", "5-10 px")  # the scales of the towers' windows and the trees' trunks at 256x256


def columns(ms, signals):
    """The summary's measured cells of a configuration (ms: the metrics of its seeds)."""
    def m(*keys, spec=".2f"):
        return fmt(mean([get(x, *keys) for x in ms]), spec)
    psnr = [x["psnr"] for x in ms]
    held = [get(x, "heldout", "psnr") for x in ms]
    laws = ("prior", "fitted", "posterior")
    return [f"{statistics.mean(psnr):.2f} ({min(psnr):.2f}-{max(psnr):.2f})",
            "-" if None in held else f"{statistics.mean(held):.2f}",
            m("realism", "reconstructions", "value", "fd", spec=".1f"),
            " / ".join(m("detail", "reconstructions", b) for b in FINE),
            " / ".join(m("realism", f"samples {law}", "value", "fd", spec=".0f") for law in laws),
            f"{m('samples', 'posterior', 'nearest_distinct', spec='.0f')} / "
            f"{m('coverage', 'samples posterior', 'present', spec='.0f')}",
            f"{m('realism', 'middles', 'value', 'fd', spec='.0f')} / {m('detail', 'middles', FINE[0])}",
            fmt(mean([s.get("adv_over_rec_introspective") for s in signals]), ".2g")]


HEAD = ("| train PSNR (range) | held-out PSNR | FD rec | detail rec 10-20 / 5-10 px | FD samples prior / fitted / "
        "posterior | posterior: distinct nearest / families | middles: FD / detail 10-20 px | adv / rec gradient |")


def references(m):
    """The reference rows of a stage from one run's metrics: the thumbnails and real images no run trained on."""
    out = []
    for k in (8, 16, 32):
        ref = f"thumb{k}"
        cells = [fmt(m.get(f"{ref}_psnr")), "-", fmt(get(m, "realism", "reconstructions", ref, "fd"), ".1f"),
                 " / ".join(fmt(get(m, "detail", ref, b)) for b in FINE),
                 fmt(get(m, "realism", "samples prior", ref, "fd"), ".0f"), "-",
                 fmt(get(m, "realism", "middles", ref, "fd"), ".0f"), "-"]
        out.append((f"{k}x{k} thumbnails", cells))
    floor = ["-", "-", fmt(get(m, "realism", "reconstructions", "floor", "fd"), ".1f"), "-",
             fmt(get(m, "realism", "samples prior", "floor", "fd"), ".0f"), "-",
             fmt(get(m, "realism", "middles", "floor", "fd"), ".0f"), "-"]
    return out + [("real images no run trained on", floor)]


def summary(rows):
    """Markdown: per stage and configuration the mean of its seeds, under the stage's reference rows (thumbnails and
    real images, measured the same way on as many images)."""
    out = [f"| stage | configuration | seeds {HEAD}", "|---" * 11 + "|"]
    for stage in dict.fromkeys(r["stage"] for r in rows):
        runs = [r for r in rows if r["stage"] == stage]
        for name, cells in references(runs[0]["metrics"]):
            out.append(f"| {stage} | {name} | - | " + " | ".join(cells) + " |")
        groups = {}
        for r in runs:
            groups.setdefault(r["config"], []).append(r)
        for name, rs in groups.items():
            out.append(f"| {stage} | {label(name, stage)} | {len(rs)} | "
                       + " | ".join(columns([r["metrics"] for r in rs], [r["signals"] for r in rs])) + " |")
    return "\n".join(out)


# the sets the newness table shows
NEW = ("samples middle", "samples mix", "samples fitted", "samples prior", "samples exemplar", "samples posterior",
       "middles")


def newness(rows):
    """Markdown: per stage and configuration (the mean of its seeds) the training reconstructions, then for each law's
    samples and the walks' middles their Fréchet distance to the training images and the data-copying z in pixels
    and in features (test.py: z << 0 copies, near 0 as new as real images), for the runs measured with newness."""
    rows = [r for r in rows if "newness" in r["metrics"]]
    head = " | ".join(f"{name}: FD / z px / z feat" for name in NEW)
    out = [f"| stage | configuration | seeds | train PSNR | FD rec | grid rec | {head} |",
           "|---" * (6 + len(NEW)) + "|"]
    groups = {}
    for r in rows:
        groups.setdefault((r["stage"], r["config"]), []).append(r["metrics"])
    for (stage, name), ms in groups.items():
        def m(*keys, spec=".1f"):
            return fmt(mean([get(x, *keys) for x in ms]), spec)
        cells = [m("psnr", spec=".2f"), m("realism", "reconstructions", "value", "fd"),
                 m("detail", "reconstructions", "grid", spec=".2f")]
        cells += [f"{m('realism', s, 'value', 'fd', spec='.0f')} / {m('newness', s, 'pixels', 'z')} / "
                  f"{m('newness', s, 'features', 'z')}" for s in NEW]
        out.append(f"| {stage} | {label(name, stage)} | {len(ms)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def table(rows):
    """Markdown: one line per run, with its steps, wall time, training signals and sample grid."""
    out = [f"| stage | configuration | seed | steps | wall {HEAD} kl_real | kl_fake | sat. fake | grid |",
           "|---" * 16 + "|"]
    for r in rows:
        s = r["signals"]
        out.append(f"| {r['stage']} | {label(r['config'], r['stage'])} | {r['seed']} | {r['steps']} | "
                   f"{r['wall_s'] / 60:.0f} min | " + " | ".join(columns([r["metrics"]], [s])) + " | "
                   f"{s['kl_real']:.0f} | {fmt(s.get('kl_fake'), '.0f')} | {fmt(s.get('sat_fake'))} | "
                   f"[grid]({r['grid']}) |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=list(STAGES), help="screen: 128x128; confirm: 256x256")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated names among: {', '.join(CONFIGS)}")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds (default %(default)s)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time, one CPU thread each (default %(default)s)")
    p.add_argument("--table", action="store_true", help="print the markdown tables of the finished runs: the "
                   "mean of each configuration's seeds, then every run")
    p.add_argument("--remeasure", action="store_true", help="with --stage: measure the finished runs of --configs "
                   "and --seeds again with today's test.py instead of training")
    p.add_argument("--results", default=RESULTS, help="with --table: the results file to read (default "
                   "%(default)s; imgs/study/results.jsonl holds the runs the README reports)")
    args = p.parse_args(argv)
    names = args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        p.error(f"unknown configurations: {', '.join(unknown)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.stage and args.remeasure:
        remeasure(args.stage, names, seeds)
    elif args.stage:
        study(args.stage, names, seeds, args.jobs)
    if args.table:
        rows = done(args.results)
        print(summary(rows) + "\n\n" + table(rows) + "\n\n" + newness(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
