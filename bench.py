"""Speed of the training step: the spec's literal reference against the fast default, in one process.

    python bench.py                          # small preset, 256x256, batch 6, CUDA if present
    python bench.py --preset full
    python bench.py --compile                # the fast step with torch.compile
    python bench.py --precision fp32         # the fast step in float32 even where bf16 is native

Both steps run alternately on the same device (warm-up first). More rows separate the gains: the
reference in the fast step's memory layout (channels_last); where the fast step runs under bf16
autocast (`train.py --precision auto`: CUDA, CPUs with AMX or AVX512-BF16), the fast step in float32; on CUDA,
the fast step replayed from CUDA graphs (`fast_captured`, graphs.py, train.py's default there), beside the eager
one, with the difference of their losses and weights after the same steps from the same start.
Then, from the same weights, optimiser state, batch and noise, one step of each is compared, in float64
on 2 images (`max_rel_diff`: the mathematics, rounding made negligible; autocast leaves float64 alone)
and as timed (`max_rel_diff_as_timed`, and `..._fp32` for the float32 fast step).
As timed, the two differ by rounding: bf16 keeps 8 bits of mantissa, the layouts sum convolutions in
different orders, and Adam divides each gradient by its own running magnitude, so an element whose
gradient is at rounding level gets an update of either sign, up to lr. The last line is one JSON object.
"""
import argparse
import copy
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

import distributed
import graphs
import train
from models import count_parameters, preset_config
from step import draw_noise
from train import parse_args
from trainer import Trainer


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trainer_for(step, args, cfg, device, memory_format=None, precision=None, capture=False):
    train_args, _ = parse_args(["--step", step, "--gamma-r", str(args.gamma_r), "--batch-size", str(args.batch_size),
                                "--precision", precision or args.precision, "--capture", "auto" if capture else "off"]
                               + (["--compile"] if args.compile and step == "fast" else []))
    t = Trainer(train_args, cfg, device, world=1)
    if memory_format is not None:
        t.memory_format = memory_format
        t.model.to(memory_format=memory_format)
    return t


def one_step(t, x, noise, c=0.5):
    return t.step_fn(t.E, t.D, t.ema, t.opt_e, t.opt_d, x.contiguous(memory_format=t.memory_format), noise, t.hp, c)


def weights_after(t, state, x, noise, gamma_r=None):
    """Losses and weights after one step of trainer t from a given state (optionally another gamma_r)."""
    t.load_state(copy.deepcopy(state), "bench")  # loading casts the state to the model's dtype
    if gamma_r is not None:
        t.hp.gamma_r = gamma_r
    stats = one_step(t, x, noise)
    return stats, {k: v.detach().clone() for k, v in t.model.named_parameters()}


def captured_against_eager(args, cfg, device, x, noises):
    """The fast step eager and replayed from CUDA graphs (graphs.py), from the same weights, on the same batch and
    noises: the max relative difference of the last step's losses and of the weights after all of them (the
    captured trainer warms up, captures and replays within them)."""
    eager, captured = trainer_for("fast", args, cfg, device), trainer_for("fast", args, cfg, device, capture=True)
    captured.load_state(copy.deepcopy(eager.state()), "bench")
    for n in noises:
        stats_eager, stats_captured = one_step(eager, x, n), one_step(captured, x, n)
    weights = [{k: v.detach() for k, v in t.model.named_parameters()} for t in (eager, captured)]
    return max_rel_diff(stats_eager, stats_captured), max_rel_diff(*weights)


def time_loop(args, device, steps):
    """train.py's own loop on a folder of 48 noise images: img/s over its logged steps after the first log,
    and the seconds of one sample grid and of one save: the part the loop waits for, and in all (the rest is
    drawn and written by the writer thread while training goes on). Data, logging, control.json and
    recovery copies are in the loop; the grids and saves that come every few epochs are timed apart."""
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        for i in range(48):
            pixels = rng.integers(0, 256, (args.image_size, args.image_size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(Path(folder) / f"noise_{i:02d}.png")
        log_every = max(1, steps // 3)
        argv = ["--data", folder, "--out", str(Path(folder) / "run"), "--preset", args.preset, "--image-size",
                str(args.image_size), "--batch-size", str(args.batch_size), "--device", str(device), "--precision",
                args.precision, "--max-steps", str(steps), "--log-every", str(log_every), "--sample-every", "1000",
                "--save-every", "1000", "--vae-epochs", "0"] + (["--compile"] if args.compile else [])
        # --vae-epochs 0: the loop runs the introspective step timed above, not the cheaper VAE step
        run = train.start(*parse_args(argv))
        train.loop(run)
        rows = [r for r in run.history.rows() if r["rec"]][1:]  # the first logged rows include the warm-up
        img_s = float(np.mean([float(r["img_per_s"]) for r in rows]))
        seconds = []
        for work in (lambda: run.samples("bench", "bench"), run.save):  # what the loop waits for, then the writer thread's part
            t0 = time.perf_counter()
            work()
            t1 = time.perf_counter()
            run.writer.wait()
            seconds += [t1 - t0, time.perf_counter() - t0]
        return img_s, seconds


def max_rel_diff(a, b):
    """Largest of |a - b| / max|a| over the tensors of two dicts (each tensor relative to its own scale)."""
    worst = 0.0
    for k in a:
        x = a[k].detach().double()
        y = b[k].detach().double().to(x.device)
        worst = max(worst, ((x - y).abs().max() / x.abs().max().clamp_min(1e-12)).item())
    return worst


def matmul_peak(device, dtype, n):
    """GFLOP/s of a large square matmul: the yardstick for the step's achieved GFLOP/s."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    reps, t = 5, time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small", choices=["full", "small", "tiny"], help="model (default small)")
    p.add_argument("--image-size", type=int, default=256, help="image size (default 256)")
    p.add_argument("--batch-size", type=int, default=6, help="batch size (default 6)")
    p.add_argument("--steps", type=int, default=5, help="timed steps of each kind (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps of each kind first (default 2)")
    p.add_argument("--gamma-r", type=float, default=0.0, help="gamma_r of both steps (default 0, train.py's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast step's networks")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                   help="the fast step's precision, as train.py's flag (default auto)")
    p.add_argument("--loop-steps", type=int, default=30, help="steps of train.py's own loop to time (default 30)")
    args = p.parse_args(argv)
    device = distributed.pick_device(args.device)
    cfg = preset_config(args.preset, args.image_size)
    torch.manual_seed(0)
    ref, fast = trainer_for("reference", args, cfg, device), trainer_for("fast", args, cfg, device)
    ref_cl = trainer_for("reference", args, cfg, device, torch.channels_last)
    runs = [("reference", ref), ("reference_cl", ref_cl), ("fast", fast)]
    if fast.hp.bf16:
        runs.insert(2, ("fast_fp32", trainer_for("fast", args, cfg, device, precision="fp32")))
    if graphs.wanted(parse_args(["--step", "fast"] + (["--compile"] if args.compile else []))[0], device, 1):
        runs.append(("fast_captured", trainer_for("fast", args, cfg, device, capture=True)))  # graphs.py
    for _, t in runs[1:]:
        t.load_state(copy.deepcopy(ref.state()), "bench")
    steps = dict(runs)
    g = torch.Generator(device).manual_seed(0)
    x = torch.rand(args.batch_size, 3, cfg.image_size, cfg.image_size, generator=g, device=device)

    def noise():
        return draw_noise(args.batch_size, cfg.z_dim, g, device)

    print(f"{args.preset}: {count_parameters(ref.model) / 1e6:.1f} M parameters, {cfg.image_size}px, "
          f"batch {args.batch_size}, {device}, {torch.get_num_threads()} CPU threads")
    for _ in range(max(args.warmup, graphs.WARMUP + 1)):  # the captured step warms up, then is captured
        for _, t in runs:
            one_step(t, x, noise())
    times = {name: [] for name, _ in runs}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.steps):  # alternate, so that both see the same machine conditions
        for name, t in runs:
            n = noise()
            sync(device)
            t0 = time.perf_counter()
            one_step(t, x, n)
            sync(device)
            times[name].append(time.perf_counter() - t0)
    peak_mem = (torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # CPU: the process's peak RSS

    captured = steps.pop("fast_captured", None)  # compared apart: a graph holds on to the tensors it was captured with
    if captured:
        captured_diffs = captured_against_eager(args, cfg, device, x, [noise() for _ in range(graphs.WARMUP + 3)])
    # Same weights, optimiser state, batch and noise: one step each, then compare; as timed, then in float64.
    start, n = copy.deepcopy(ref.state()), noise()
    # The seed's gamma_r = 1e-8 against 0, both in the reference: do those terms change the weights?
    _, weights_g = weights_after(ref, start, x, n, gamma_r=1e-8)
    _, weights_0 = weights_after(ref, start, x, n, gamma_r=0.0)
    gamma_effect = max_rel_diff(weights_g, weights_0)
    ref.hp.gamma_r = args.gamma_r
    compared = [name for name in ("fast", "fast_fp32") if name in steps]
    diffs = {}  # (dtype, fast row) -> (losses, weights)
    for dtype, b in ((torch.float32, args.batch_size), (torch.float64, 2)):  # float64: 2 images keep memory low
        for t in steps.values():
            t.model.to(dtype)
            t.ema.to(dtype)
        xb, nb = x[:b].to(dtype), {k: v[:b].to(dtype) for k, v in n.items()}
        stats_ref, weights_ref = weights_after(ref, start, xb, nb)
        for name in compared:
            stats_fast, weights_fast = weights_after(steps[name], start, xb, nb)
            diffs[dtype, name] = max_rel_diff(stats_ref, stats_fast), max_rel_diff(weights_ref, weights_fast)
    for t in steps.values():
        t.model.float()
        t.ema.float()
        t.load_state(copy.deepcopy(start), "bench")  # optimiser state back to float32 too
    flops = {}
    for name, t in steps.items():
        counter = FlopCounterMode(display=False)
        with counter:
            one_step(t, x, noise())
        flops[name] = counter.get_total_flops() / 1e9
    if captured:
        flops["fast_captured"] = flops["fast"]  # the same step (a replayed graph is not seen by the counter)

    loop_img_s, (sample_s, sample_all_s, save_s, save_all_s) = time_loop(args, device, args.loop_steps)
    best = {k: min(v) for k, v in times.items()}
    img_s = {k: args.batch_size / v for k, v in best.items()}
    bf16 = fast.hp.bf16
    peak = matmul_peak(device, torch.bfloat16 if bf16 else torch.float32, 4096 if device.type == "cuda" else 1536)
    achieved = flops["fast"] / best["fast"]
    print(f"{'step':<12} {'s/step (best)':>14} {'s/step (mean)':>14} {'img/s':>8} {'GFLOP/step':>11} {'GFLOP/s':>8}")
    for k in times:
        print(f"{k:<12} {best[k]:>14.3f} {sum(times[k]) / len(times[k]):>14.3f} {img_s[k]:>8.2f} "
              f"{flops[k]:>11.1f} {flops[k] / best[k]:>8.1f}")
    print(f"speedup {best['reference'] / best['fast']:.2f}x; matmul peak {peak:.0f} GFLOP/s "
          f"({'bf16' if bf16 else 'fp32'}); fast step at {100 * achieved / peak:.1f}% of it")
    for (dtype, name), (d_loss, d_weights) in diffs.items():
        print(f"same start, batch and noise, reference vs {name}, {str(dtype)[6:]}: max relative difference of "
              f"losses {d_loss:.2e}, of updated weights {d_weights:.2e}")
    print(f"gamma_r 1e-8 against 0 (reference step): max relative difference of updated weights {gamma_effect:.2e}")
    print(f"train.py's loop: {loop_img_s:.2f} img/s ({loop_img_s / img_s['fast']:.0%} of the fast step alone: data, "
          f"logging, control.json, recovery copies); every --sample-every epochs a sample grid holds the loop "
          f"{sample_s:.2f} s (drawn in {sample_all_s:.2f} s), every --save-every epochs a save {save_s:.2f} s "
          f"(written in {save_all_s:.2f} s)")
    result = {"device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
              "preset": args.preset, "precision": "bf16" if bf16 else "fp32",
              "reference_img_per_s": round(img_s["reference"], 3), "fast_img_per_s": round(img_s["fast"], 3),
              "speedup": round(best["reference"] / best["fast"], 3),
              "max_rel_diff": float(f"{max(max(diffs[torch.float64, name]) for name in compared):.3g}"),
              "max_rel_diff_as_timed": float(f"{max(diffs[torch.float32, 'fast']):.3g}"),
              "gflops_per_step": round(flops["fast"], 2), "achieved_gflops": round(achieved, 2),
              "peak_gflops": round(peak, 1), "peak_mem_mb": round(peak_mem, 1),
              "gamma_r_1e-8_rel_diff": float(f"{gamma_effect:.3g}"), "loop_img_per_s": round(loop_img_s, 3),
              "sample_grid_s": round(sample_s, 3), "sample_grid_total_s": round(sample_all_s, 3),
              "save_s": round(save_s, 3), "save_total_s": round(save_all_s, 3)}
    if "fast_fp32" in steps:
        result.update(speedup_fp32=round(best["reference"] / best["fast_fp32"], 3),
                      max_rel_diff_as_timed_fp32=float(f"{max(diffs[torch.float32, 'fast_fp32']):.3g}"))
    if captured:
        print(f"the fast step replayed from CUDA graphs: {best['fast'] / best['fast_captured']:.2f}x the eager one; "
              f"from the same start, batches and noise, max relative difference of losses {captured_diffs[0]:.2e}, of "
              f"weights {captured_diffs[1]:.2e}")
        result.update(captured_img_per_s=round(img_s["fast_captured"], 3),
                      captured_speedup=round(best["fast"] / best["fast_captured"], 3),
                      captured_max_rel_diff=float(f"{max(captured_diffs):.3g}"))
    print(json.dumps(result))

if __name__ == "__main__":
    main()
