"""graphs.py: the fast step replayed from CUDA graphs. A CPU cannot capture one; what is checked here is what the
graph relies on (the step's changing numbers read from device tensors give the same step), when train.py asks for
capture (on CUDA only) and falls back to eager steps, and the bookkeeping of kinds, warm-up and probes."""
import copy
from dataclasses import replace

import pytest
import torch

import graphs
import train
from losses import image_scale
from models import build_model, preset_config
from step import Hyper, draw_noise, fast_step
from trainer import Trainer


def one_step(model, x, noise, hp, c):
    model = copy.deepcopy(model)
    ema = copy.deepcopy(model.decoder)
    opt_e, opt_d = (torch.optim.Adam(net.parameters(), 2e-4) for net in (model.encoder, model.decoder))
    stats = fast_step(model.encoder, model.decoder, ema, opt_e, opt_d, x, noise, hp, c)
    return stats, [*model.parameters(), *ema.parameters()]


@pytest.mark.parametrize("method", ["as", "soft", "vae"])
def test_the_steps_numbers_as_device_tensors_give_the_same_step(method):
    """A graph reads c, beta_neg and the moving average's decay from tensors it replays with: the same step as with
    the numbers themselves (float64: equal up to the order of the moving average's arithmetic)."""
    torch.manual_seed(0)
    model = build_model(preset_config("tiny")).double()
    x = torch.rand(4, 3, 64, 64, dtype=torch.float64)
    noise = {k: v.double() for k, v in draw_noise(4, 32, torch.Generator().manual_seed(1), "cpu",
                                                  fakes="prior+mix").items()}
    hp = Hyper(0.1, 1.0, 64.0, 0.0, image_scale(64), method, 0.9, tanh="as-only", fakes="prior+mix")
    as_numbers = one_step(model, x, noise, hp, 0.6)
    number = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731  (as the graph's, in the weights' dtype)
    tensors = replace(hp, beta_neg=number(64.0), ema_decay=number(0.9))
    as_tensors = one_step(model, x, noise, tensors, number(0.6) if method == "as" else 0.6)
    for k, v in as_numbers[0].items():
        assert torch.allclose(v, as_tensors[0][k], rtol=1e-12, atol=1e-15), k
    for a, b in zip(as_numbers[1], as_tensors[1]):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-15)


def test_capture_is_asked_for_on_one_cuda_device_only(images12):
    """Eager on the CPU, under torchrun, with --compile, with the reference step or --capture off."""
    def wanted(*flags, device="cuda", world=1):
        args, _ = train.parse_args(["--data", str(images12), *flags])
        return graphs.wanted(args, torch.device(device), world)

    assert wanted() and not wanted("--capture", "off") and not wanted("--compile")
    assert not wanted("--step", "reference") and not wanted(world=2) and not wanted(device="cpu")
    assert not wanted(device="mps")
    args, _ = train.parse_args(["--data", str(images12), "--preset", "tiny"])
    t = Trainer(args, preset_config("tiny"), torch.device("cpu"), world=1)
    assert t.step_fn is fast_step and not t.opt_e.param_groups[0]["capturable"]  # the CPU's fallback


class Recorded:
    """A stand-in for graphs.Graph on the CPU: records what it captured and says so when replayed."""
    made = []

    def __init__(self, E, D, ema, opt_e, opt_d, x, noise, hp, c):
        self.kind = (hp.method, opt_e.param_groups[0]["lr"])
        Recorded.made.append(self.kind)

    def replay(self, x, noise, hp, c):
        return {"replayed": self.kind}


def test_each_kind_of_step_is_captured_after_its_warm_up_and_probes_stay_eager(monkeypatch):
    monkeypatch.setattr(graphs, "Graph", Recorded)
    monkeypatch.setattr(graphs, "on_side_stream", lambda fn, *step: {"eager": step[7].method})
    monkeypatch.setattr(graphs, "fast_step", lambda *step: {"probe": True})
    Recorded.made = []
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], 2e-4)
    x = torch.zeros(6, 3, 8, 8)
    step = graphs.GraphedStep()

    def run(method, probe=False):
        hp = Hyper(0.1, 1.0, 64.0, 0.0, 1.0, method, probe=probe)
        return step(None, None, None, opt, opt, x, {}, hp, 0.5)

    assert [run("vae") for _ in range(graphs.WARMUP)] == [{"eager": "vae"}] * graphs.WARMUP
    assert run("vae", probe=True) == {"probe": True}  # a logged step measures gradients: eager, not counted
    assert run("vae") == run("vae") == {"replayed": ("vae", 2e-4)} and Recorded.made == [("vae", 2e-4)]
    assert [run("as") for _ in range(graphs.WARMUP)] == [{"eager": "as"}] * graphs.WARMUP  # the game's own kind
    assert run("as") == {"replayed": ("as", 2e-4)} and len(step.graphs) == 2
    opt.param_groups[0]["lr"] = 2e-5  # the learning rate's drop: warmed up and captured again, old graphs dropped
    assert [run("as") for _ in range(graphs.WARMUP + 1)][-1] == {"replayed": ("as", 2e-5)}
    assert list(step.graphs) == [("as", (6, 3, 8, 8), 2e-5, 2e-5)]


def test_a_step_that_cannot_be_captured_stays_eager(monkeypatch):
    def refuse(*step):
        raise RuntimeError("operation not permitted when stream is capturing")
    monkeypatch.setattr(graphs, "Graph", refuse)
    monkeypatch.setattr(graphs, "on_side_stream", lambda fn, *step: {"warm-up": True})
    monkeypatch.setattr(graphs, "fast_step", lambda *step: {"eager": True})
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], 2e-4)
    step, hp = graphs.GraphedStep(), Hyper(0.1, 1.0, 64.0, 0.0, 1.0, "as")
    assert [step(None, None, None, opt, opt, torch.zeros(2), {}, hp, 0.5) for _ in range(graphs.WARMUP)] == \
        [{"warm-up": True}] * graphs.WARMUP
    with pytest.warns(UserWarning, match="could not be captured as a CUDA graph, it runs eagerly"):
        assert step(None, None, None, opt, opt, torch.zeros(2), {}, hp, 0.5) == {"eager": True}
    assert step(None, None, None, opt, opt, torch.zeros(2), {}, hp, 0.5) == {"eager": True} and step.failed
