"""The bundled demo set: what it holds, and that dataset.py --make-demo reproduces it pixel for pixel."""
import hashlib
import re

import numpy as np
from PIL import Image

import dataset
import fantasy
from conftest import ROOT

DEMO = ROOT / "data" / "fantasy"


def test_demo_set_is_80_distinct_rgb_images_of_8_families():
    paths = sorted(DEMO.glob("*.png"))
    assert len(paths) >= 80
    families = {re.fullmatch(r"(.+)_\d\d", p.stem).group(1) for p in paths}
    assert families == set(fantasy.FAMILIES) and len(families) >= 8
    digests = set()
    for p in paths:
        with Image.open(p) as img:
            assert img.size == (256, 256) and img.mode == "RGB"
            digests.add(hashlib.sha256(img.tobytes()).hexdigest())
    assert len(digests) == len(paths)  # no two alike
    assert sum(p.stat().st_size for p in paths) < 10e6


def test_make_demo_reproduces_the_committed_pixels(tmp_path):
    dataset.main(["--make-demo", str(tmp_path), "--count", "16"])  # the first two of each family
    made = sorted(tmp_path.glob("*.png"))
    assert len(made) == 16
    for p in made:
        assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(DEMO / p.name))), p.name


def test_another_seed_gives_other_places(tmp_path):
    dataset.main(["--make-demo", str(tmp_path), "--count", "8", "--seed", "1"])
    for p in tmp_path.glob("*.png"):
        assert not np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(DEMO / p.name)))
