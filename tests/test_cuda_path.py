"""train.py's (with its finishing), finish.py's and latent.py's CUDA code paths, run on a machine without a GPU.

Inside torch's FakeTensorMode a tensor can live on device "cuda" without a GPU: it has a shape, a dtype
and a device but no values, and an operation that meets a CPU tensor and a CUDA tensor raises, as it
would on a GPU. So a whole training run on device "cuda" checks that every tensor the loop, the sample
grids, the BatchNorm calibration and the export touch is where it must be. (This is how the epoch-5
crash on an H100, a sample grid fed with CPU images, would have been caught here.)

What fake tensors cannot do is stood in for, at the boundary only:
  - values: a host read of a device value (.item(), float()) returns 1.0;
  - autograd's backward needs a CUDA context: backward gives zero gradients of the right shape and device
    (the forward passes of both updates, the noise, the gradient norms, the EMA and the optimisers still
    run on the fake device);
  - files: sample grids (the PNG files and TensorBoard's), checkpoints and exported models are recorded instead
    of written, with the device of every tensor handed to them (the writer's jobs run in the training thread,
    inside the mode);
  - the networks are initialised on the host, as torch does, and moved to the device inside the mode;
    the images are decoded on the host, as load_folder does, then become fake host tensors;
  - random generators: torch.Generator("cuda") needs a driver, so generators are host generators
    (fake random ops do not read them).
"""
import contextlib
from concurrent.futures import Future
from unittest import mock

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily

import finish
import latent
import runfolder
import train
import trainer
from models import build_model, preset_config

CUDA = torch.device("cuda")
pytestmark = [  # deepcopy of a fake tensor asks for its (absent) data pointer; autocast needs a real GPU
    pytest.mark.filterwarnings("ignore:Accessing the data pointer of FakeTensor:UserWarning"),
    pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning"),
]


def devices(obj):
    """The set of device types of every tensor in a nested structure of dicts, lists and tensors."""
    if isinstance(obj, torch.Tensor):
        return {obj.device.type}
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return set().union(*map(devices, obj)) if obj else set()
    return set()


@contextlib.contextmanager
def fake_cuda():
    """A FakeTensorMode in which train.py runs on device "cuda"; yields what it saved and drew."""
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    record = {"grids": [], "board": [], "saved": {}}
    real_load, real_build, real_generator = runfolder.load_folder, trainer.build_model, torch.Generator

    def load_folder(*args, **kwargs):
        images, paths = real_load(*args, **kwargs)
        return mode.from_tensor(images), paths

    def build(config):
        with unset_fake_temporarily():
            return real_build(config)

    def submit(writer, fn, *args):  # the writer's jobs in this thread: fake tensors are read inside the mode
        job = Future()
        job.set_result(fn(*args))
        return job

    def backward(loss, inputs=(), **kwargs):  # gradients of the right shape and device, values unknown
        for p in inputs:
            p.grad = torch.zeros_like(p)

    def save_grid(path, *images_and_title):
        record["grids"].append(devices(list(images_and_title[:3])))

    def board_grid(board, step, *rows):
        record["board"].append(devices(list(rows)))

    def save_atomic(state, path, keep_previous=True):
        record["saved"][path.name] = devices(state)

    def export(path, config, encoder, decoder, meta):
        record["saved"][path.name] = devices([encoder, decoder])

    with contextlib.ExitStack() as stack:
        for target, value in [
            ("distributed.pick_device", lambda name, local_rank=None: CUDA),
            ("torch.cuda.get_device_capability", lambda device=None: (9, 0)),
            ("torch.Generator", lambda device="cpu": real_generator("cpu")),
            ("torch.Tensor.backward", backward),
            ("torch.autograd.grad", lambda outputs, inputs, **kwargs: [torch.zeros_like(p) for p in inputs]),
        ]:
            stack.enter_context(mock.patch(target, value))
        for name, value in [("item", lambda self: 1.0), ("__float__", lambda self: 1.0)]:
            stack.enter_context(mock.patch.object(FakeTensor, name, value, create=True))
        for module, name, value in [(runfolder, "load_folder", load_folder), (trainer, "build_model", build),
                                    (runfolder, "save_grid", save_grid), (runfolder, "save_atomic", save_atomic),
                                    (runfolder, "export_model", export)]:
            stack.enter_context(mock.patch.object(module, name, value))
        stack.enter_context(mock.patch.object(runfolder.Writer, "submit", submit))
        stack.enter_context(mock.patch.object(runfolder.Board, "grid", board_grid))
        stack.enter_context(mode)
        yield record


@pytest.mark.parametrize("step,prior", [("fast", "exemplar"), ("reference", "normal")])  # exemplar: real_means too
def test_training_run_on_cuda_keeps_every_tensor_on_its_device(tmp_path, images12, step, prior):
    argv = ["--preset", "tiny", "--device", "cuda", "--data", str(images12), "--out", str(tmp_path / "run"),
            "--epochs", "2", "--log-every", "1", "--sample-every", "1", "--step", step, "--head-norm", "on",
            "--prior", prior]
    # The finishing with the fast step only, whose Adam is fused. The state of a non-fused Adam in fake tensors
    # crashes the process when a checkpoint copies it to the host or when it is freed after the mode; the reference
    # step's own updates get no gradients here (backward above), so its Adam keeps no state.
    finish = 2 if step == "fast" else 0
    with fake_cuda() as record:
        t = train.train(*train.parse_args([*argv, "--finish-steps", str(finish)]))
    assert (t.step, t.finished) == (4 + finish, finish) and next(t.model.parameters()).device.type == "cuda"
    assert t.hp.bf16 == (step == "fast")  # compute capability 9.0: bf16 autocast on the fast step
    # one grid per epoch and one at the finishing's end, moved to the host first
    assert record["grids"] == record["board"] == [{"cpu"}] * (2 + (finish > 0))
    assert record["saved"] == {"checkpoint.pt": {"cpu"}, "model.pt": {"cpu"}}  # host copies for the writer


def test_finishing_on_cuda_keeps_every_tensor_on_its_device(tmp_path, tiny, images12):
    """finish.py with --device cuda: the codes, the batches and the decoder's updates on the device, the
    export from the host."""
    real_load_model, exported = finish.load_model, {}

    def load_model(path, device):  # read on the host, as torch.load does, then moved inside the mode
        with unset_fake_temporarily():
            model = real_load_model(path)
        return model.to(device)

    def export(path, config, encoder, decoder, meta):
        exported.update(devices=devices([encoder, decoder]), steps=meta["finished"]["steps"])

    argv = ["--model", str(tiny), "--out", str(tmp_path / "finished.pt"), "--data", str(images12), "--steps", "3",
            "--device", "cuda"]
    with fake_cuda(), mock.patch.object(finish, "pick_device", lambda name: CUDA), \
            mock.patch.object(finish, "load_model", load_model), mock.patch.object(finish, "export_model", export):
        assert finish.main(argv) == 0
    assert exported == {"devices": {"cpu"}, "steps": 3}


def test_latent_walks_on_cuda(tmp_path):
    """What the notebook and test.py do with a model on the GPU: encode, decode, sample, back on the host."""
    model = build_model(preset_config("tiny"))
    with fake_cuda():
        model = model.to(CUDA).eval()
        images = torch.zeros(3, 3, 64, 64, dtype=torch.uint8)  # as load_folder returns them: on the host
        mu = latent.encode(model, images)
        assert mu.device.type == "cpu" and mu.shape == (3, 32)
        assert latent.decode(model, latent.lerp(mu[0], mu[1], 4)).device.type == "cpu"
        assert latent.sample(model, 2).device.type == "cpu"


def test_fake_cuda_catches_a_host_tensor_meeting_the_device():
    """The property the tests above rely on: mixing devices raises here as on a GPU."""
    model = build_model(preset_config("tiny"))
    with fake_cuda(), pytest.raises(RuntimeError, match="device"):
        model.to(CUDA).encoder(torch.zeros(2, 3, 64, 64))
