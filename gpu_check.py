"""Check the whole CUDA path end to end on a GPU box, in one command, with one JSON summary at the end.

    python gpu_check.py                       # on a GPU: about 10 minutes
    python gpu_check.py --device cpu --tiny   # the same steps on the CPU, tiny settings (what the tests run)

Steps, each in its own process with its own time limit, each reported even when another fails:
  1. bench_small, bench_full: `python bench.py` on the small and the full preset (step speed, equality
     of the fast and the literal step, train.py's own loop);
  2. train: a timed `python train.py` run on the demo images (full preset), whose own img/s is read from
     its history.csv after its first epoch;
  3. test: `python test.py` on the model that run exported;
  4. torchrun: `torchrun --standalone --nproc_per_node=1 train.py`, a short run under DistributedDataParallel.
The summary's "ok" is true when every step exited 0. Runs go to runs/gpu_check/ (or --out).
"""
import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent


def step(name, argv, timeout, summary, log_dir):
    """Run one step; record its exit code, wall time and, when it prints one, its last-line JSON."""
    start = time.perf_counter()
    log = log_dir / f"{name}.log"
    try:
        with open(log, "w") as f:
            rc = subprocess.run(argv, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
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
    p.add_argument("--epochs", type=int, default=100, help="epochs of the timed training run (default %(default)s)")
    p.add_argument("--out", default="runs/gpu_check", help="where runs and logs go (default %(default)s)")
    args = p.parse_args(argv)
    out = ROOT / args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    py = sys.executable
    size = ["--preset", "tiny", "--image-size", "64"] if args.tiny else []
    bench = [py, "bench.py", "--device", args.device]
    quick = ["--steps", "1", "--warmup", "1", "--loop-steps", "6"] if args.tiny else []
    summary = {"device": args.device, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    step("bench_small", bench + (size or ["--preset", "small"]) + quick, 300, summary, out)
    step("bench_full", bench + (size or ["--preset", "full"]) + quick, 300, summary, out)

    run = out / "train"
    model = ["--preset", "tiny"] if args.tiny else ["--preset", "full"]
    epochs = 2 if args.tiny else args.epochs
    result = step("train", [py, "train.py", "--data", args.data, "--out", str(run), "--device", args.device, *model,
                            "--epochs", str(epochs), "--save-every", str(epochs), "--sample-every", "25"],
                  600, summary, out)
    if result["rc"] == 0:
        images = len([p for p in Path(ROOT / args.data).rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"}])
        result["img_per_s"] = train_speed(run, max(1, images // 6))
        result["epochs"] = epochs
    step("test", [py, "test.py", "--model", str(run / "model.pt"), "--data", args.data, "--device", args.device,
                  "--out", str(out)], 300, summary, out)
    step("torchrun", [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "train.py", "--data",
                      args.data, "--out", str(out / "ddp"), "--device", args.device, *model, "--epochs", "2"],
         300, summary, out)
    summary["ok"] = all(summary[k]["rc"] == 0 for k in ("bench_small", "bench_full", "train", "test", "torchrun"))
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
