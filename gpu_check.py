"""Check the whole CUDA path end to end on a GPU box, in one command, with one JSON summary at the end.

    python gpu_check.py                       # on a GPU: under 10 minutes
    python gpu_check.py --device cpu --tiny   # the same steps on the CPU, tiny settings (what the tests run)

Steps, each in its own process with its own time limit, each reported even when another fails:
  1. bench_small, bench_full: `python bench.py` on the small and the full preset (step speed, equality
     of the fast and the literal step, train.py's own loop); under --tiny one bench_tiny;
  2. train: the user's path, `python train.py` with its defaults on the demo images, stopped (as Ctrl-C
     stops it: saved, resumable) when it has not ended within --budget seconds; its wall time, the steps it
     reached of all it plans, and its own img/s from history.csv after its first epoch;
  3. test, test_shipped: `python test.py` on the model that run exported and on the shipped model, so that
     the run's PSNR, Fréchet distances and newness (the data-copying z of its default samples and of its
     walks' middles) stand beside the shipped model's, measured the same way ("compare" in the summary);
  4. torchrun: `torchrun --standalone --nproc_per_node=1 train.py`, a short run under DistributedDataParallel.
The summary's "ok" is true when every step exited 0 (a training run stopped at the budget counts as done).
Runs go to runs/gpu_check/ (or --out).
"""
import argparse
import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
SHIPPED = "saves/fantasy/model.pt"  # the shipped model: what the user's own run is set beside
INTERRUPTED = 130  # train.py's exit code when a signal stopped it after saving


def step(name, argv, timeout, summary, log_dir, budget=None):
    """Run one step; record its exit code, wall time and, when it prints one, its last-line JSON. With budget
    (seconds), a process still running then gets SIGTERM, which train.py answers by saving and exiting."""
    start = time.perf_counter()
    log = log_dir / f"{name}.log"
    with open(log, "w") as f:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        try:
            rc = process.wait(budget or timeout)
        except subprocess.TimeoutExpired:
            if budget:
                process.send_signal(signal.SIGTERM)
            try:
                rc = process.wait(timeout - budget if budget else 0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                rc = "timeout"
    result = {"rc": rc, "wall_s": round(time.perf_counter() - start, 1), "log": str(log)}
    lines = log.read_text(errors="replace").strip().splitlines()
    if lines and lines[-1].startswith("{"):
        try:
            result["json"] = json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    if rc != 0:
        result["tail"] = lines[-5:]
    summary[name] = result
    print(f"{name}: exit {rc} in {result['wall_s']} s", flush=True)
    return result


def measures(metrics):
    """What the summary sets side by side from test.py's JSON: PSNR, the Fréchet distances of reconstructions, of
    the samples of each law and of the walks' middles, and the data-copying z of those, in pixels and features."""
    if not metrics:
        return None
    out = {"psnr": round(metrics["psnr"], 2)}
    for name, r in metrics.get("realism", {}).items():
        out[f"fd {name}"] = round(r["value"]["fd"], 1)
    for name, n in metrics.get("newness", {}).items():
        out[f"z {name}"] = {space: round(c["z"], 1) for space, c in n.items()}
    return out


def steps_reached(run):
    """The last logged step of a run's history.csv."""
    with open(run / "history.csv", newline="") as f:
        return max(int(r["step"]) for r in csv.DictReader(f))


def train_speed(run, steps_per_epoch):
    """train.py's own img/s, mean over the logged rows after its first epoch (warm-up, cudnn autotuning)."""
    with open(run / "history.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["rec"] and int(r["step"]) > steps_per_epoch]
    return round(sum(float(r["img_per_s"]) for r in rows) / len(rows), 2) if rows else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default %(default)s)")
    p.add_argument("--tiny", action="store_true", help="tiny models at 64x64, a few steps: the CPU test of this script")
    p.add_argument("--data", default="data/fantasy", help="training images (default %(default)s)")
    p.add_argument("--budget", type=int, default=240, help="seconds the default training run may take before it is "
                   "stopped and measured as far as it got (default %(default)s: the whole check stays within 10 min)")
    p.add_argument("--drawn", type=int, default=64, help="samples of each law test.py draws (default %(default)s)")
    p.add_argument("--out", default="runs/gpu_check", help="where runs and logs go (default %(default)s)")
    args = p.parse_args(argv)
    out = ROOT / args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    py = sys.executable
    presets = ["tiny"] if args.tiny else ["small", "full"]  # (--tiny: one preset, so one bench)
    size = ["--image-size", "64"] if args.tiny else []
    bench = [py, "bench.py", "--device", args.device]
    quick = ["--steps", "1", "--warmup", "1", "--loop-steps", "6"] if args.tiny else []
    summary = {"device": args.device, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    for preset in presets:
        step(f"bench_{preset}", bench + ["--preset", preset, *size] + quick, 300, summary, out)

    run = out / "train"
    model = ["--preset", "tiny", "--epochs", "2", "--finish-steps", "3"] if args.tiny else []  # else the defaults
    result = step("train", [py, "train.py", "--data", args.data, "--out", str(run), "--device", args.device, *model],
                  args.budget + 120, summary, out, budget=args.budget)
    if result["rc"] in (0, INTERRUPTED):
        images = len([p for p in Path(ROOT / args.data).rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"}])
        result["img_per_s"] = train_speed(run, max(1, images // 6))
        result["steps"] = steps_reached(run)
        result["rc"], result["stopped_at_budget"] = 0, result["rc"] == INTERRUPTED
    measured = {"test": run / "model.pt", "test_shipped": ROOT / SHIPPED}
    for name, model_file in measured.items():
        step(name, [py, "test.py", "--model", str(model_file), "--data", args.data, "--device", args.device,
                    "--drawn", str(8 if args.tiny else args.drawn), "--out", str(out / name)], 300, summary, out)
    summary["compare"] = {name: measures(summary[name].get("json")) for name in measured}
    step("torchrun", [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "train.py", "--data",
                      args.data, "--out", str(out / "ddp"), "--device", args.device, "--preset", presets[0], *size,
                      "--epochs", "2", "--finish-steps", "3"], 300, summary, out)
    steps = [result for result in summary.values() if isinstance(result, dict) and "rc" in result]
    summary["ok"] = all(result["rc"] == 0 for result in steps)
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
