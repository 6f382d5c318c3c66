import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # each worker holds a core: the tests' tiny work in two threads per worker would put four on two cores
    torch.set_num_threads(1)


def load_test_script():
    """test.py as a module, loaded from its path: "import test" could find the standard library's test package."""
    spec = importlib.util.spec_from_file_location("map_script", ROOT / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_images(folder, n, size=(80, 100), seed=0):
    """n small, distinct RGB images (gradients and stripes) as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        f = rng.uniform(0.05, 0.3, 3)
        a = 127 + 120 * np.sin(xx[..., None] * f + yy[..., None] * f[::-1] + rng.uniform(0, 6, 3))
        Image.fromarray(a.astype(np.uint8)).save(folder / f"img_{i:02d}.png")
    return folder


@pytest.fixture(scope="session")
def images12(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("data") / "twelve", 12)


@pytest.fixture(scope="session")
def demo_heldout():
    """data/fantasy_heldout, made once here for the tests that copy the repository (test.py makes it on first use,
    15 s, in whatever folder it runs in)."""
    test_script = load_test_script()
    return test_script.demo_heldout(ROOT / test_script.HELDOUT)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, images12):
    """The model.pt of a 2-epoch tiny run (64x64, z_dim 32) on images12, its decoder not finished (what finish.py
    takes)."""
    import train  # (here, not above: conftest puts the repository on the path first)
    run = tmp_path_factory.mktemp("tiny") / "run"
    assert train.main(["--data", str(images12), "--preset", "tiny", "--epochs", "2", "--out", str(run),
                       "--finish-steps", "0"]) == 0
    return run / "model.pt"


def board(folder):
    """TensorBoard's own reader on the event files of the run in folder, loaded: its plugin event accumulator, which
    drops what a restart mark says was logged after a checkpoint, as TensorBoard's server does."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0})  # 0: keep every step
    accumulator.Reload()
    return accumulator


def series(accumulator, tag):
    """[(step, value)] of a tag as TensorBoard reads it: a scalar's value a float, an image's [width, height, png]."""
    from tensorboard.util.tensor_util import make_ndarray
    values = [(e.step, make_ndarray(e.tensor_proto)) for e in accumulator.Tensors(tag)]
    return [(step, v.item() if v.ndim == 0 else list(v)) for step, v in values]
