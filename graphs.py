"""The fast step replayed from CUDA graphs (torch.cuda.graphs): on a GPU, a step of the small preset at batch 6 is
launch-bound, hundreds of small kernels each launched from Python (an H200 ran its introspective epochs at 79 img/s,
about 0.5 % of its bf16 peak). A graph records the whole step once, both updates, both Adam steps and the moving
average, and replays it with one launch.

What a graph cannot hold is handled around it:
  - the numbers that change from step to step (c(t), beta_neg, the moving average's decay) live in device tensors
    that the graph reads, so that one capture serves every step of its kind; the batch and the step's noise are
    copied into the graph's own input tensors;
  - a kind of step is captured after WARMUP eager steps of that kind (on a side stream, as torch asks: lazy
    initialisation, cudnn's autotuning and Adam's state settle first), and again when the learning rates change;
  - the steps that also measure the decoder's gradient norms (every --log-every steps) run eagerly;
  - eager wherever capture is impossible: the CPU and MPS, several processes (DistributedDataParallel), --compile,
    the literal reference step (see `wanted`).
"""
import warnings
from collections import Counter
from dataclasses import replace

import torch

from step import fast_step

WARMUP = 3  # eager steps of a kind before its capture


def wanted(args, device, world):
    """Whether train.py captures its steps: the fast step on one CUDA device, by one process, not compiled."""
    return (args.capture == "auto" and args.step == "fast" and device.type == "cuda" and world == 1
            and not args.compile)


class GraphedStep:
    """fast_step's signature and results, from CUDA graphs: one per kind of step (the plain VAE's or the game's, the
    batch's shape, the learning rates), each captured after WARMUP eager steps of its kind and replayed after."""

    def __init__(self):
        self.graphs, self.eager, self.failed = {}, Counter(), False

    def __call__(self, E, D, ema, opt_e, opt_d, x, noise, hp, c):
        if hp.probe or self.failed:
            return fast_step(E, D, ema, opt_e, opt_d, x, noise, hp, c)
        kind = (hp.method, tuple(x.shape), opt_e.param_groups[0]["lr"], opt_d.param_groups[0]["lr"])
        if kind not in self.graphs:
            if self.eager[kind] < WARMUP:
                self.eager[kind] += 1
                return on_side_stream(fast_step, E, D, ema, opt_e, opt_d, x, noise, hp, c)
            self.graphs = {k: g for k, g in self.graphs.items() if k[2:] == kind[2:]}  # those of old rates go
            try:
                self.graphs[kind] = Graph(E, D, ema, opt_e, opt_d, x, noise, hp, c)
            except RuntimeError as err:  # torch could not capture the step here: every step stays eager
                warnings.warn(f"the training step could not be captured as a CUDA graph, it runs eagerly ({err})")
                self.failed = True
                return fast_step(E, D, ema, opt_e, opt_d, x, noise, hp, c)
        return self.graphs[kind].replay(x, noise, hp, c)


class Graph:
    """One kind of step, captured: its input tensors, the device numbers it reads, its outputs."""

    def __init__(self, E, D, ema, opt_e, opt_d, x, noise, hp, c):
        self.x, self.noise = x.clone(), {k: v.clone() for k, v in noise.items()}
        self.numbers = {k: torch.zeros((), device=x.device) for k in ("c", "beta_neg", "ema_decay")}
        graphed = replace(hp, beta_neg=self.numbers["beta_neg"], ema_decay=self.numbers["ema_decay"])
        self.c_varies = hp.method == "as"  # Soft-IntroVAE's c is 1 throughout, the plain VAE has none
        self.graph = torch.cuda.CUDAGraph()
        # the gradients are made by the graph's first backward, in its own memory, and written there by each replay
        opt_e.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.stats = fast_step(E, D, ema, opt_e, opt_d, self.x, self.noise, graphed,
                                   self.numbers["c"] if self.c_varies else c)

    def replay(self, x, noise, hp, c):
        """This step: its batch, noise and numbers copied in, the graph replayed; its logged values, copied out
        (the next replay overwrites the graph's)."""
        self.x.copy_(x)
        for k, v in noise.items():
            self.noise[k].copy_(v)
        for k, v in (("c", c), ("beta_neg", hp.beta_neg), ("ema_decay", hp.ema_decay)):
            self.numbers[k].fill_(v)
        self.graph.replay()
        return {k: v.clone() for k, v in self.stats.items()}


def on_side_stream(fn, *args):
    """fn(*args) on a side stream that waits for the current one, which then waits for it (a warm-up step)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = fn(*args)
    torch.cuda.current_stream().wait_stream(side)
    return out
