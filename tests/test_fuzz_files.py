"""Hundreds of damaged checkpoints and models: every one is named in one line or falls back, none is used.

The variants of a real checkpoint.pt and of a real model.pt: truncations at random offsets, random bytes,
zero bytes, bit flips, text files, an empty file, zip archives with an entry missing or renamed, valid files
of another kind or configuration, crafted pickles. Each goes through the loading path that
`train.py --resume` and `test.py --model` use; one of each kind also goes through the scripts themselves.
"""
import io
import json
import os
import pickle
import random
import zipfile

import pytest
import torch

import train
from checkpoint import CheckpointError, digest, load_model, load_with_fallback, safe_load
from conftest import load_test_script

TINY = ["--preset", "tiny", "--log-every", "1", "--save-every", "1", "--device", "cpu", "--finish-steps", "0"]
map_script = load_test_script()


class Evil:
    """Unpickling it would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def rezip(data, rng, rename):
    """The zip archive data with one entry (not the first) left out or renamed."""
    src = zipfile.ZipFile(io.BytesIO(data))
    names = src.namelist()
    victim = rng.choice(names[1:])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in names:
            if name != victim:
                dst.writestr(name, src.read(name))
            elif rename:
                dst.writestr(name + "_renamed", src.read(name))
    return out.getvalue()


def variants(data, rng, others, marker):
    """(kind, bytes) pairs: over 200 damaged versions of data."""
    out = [("empty", b""), ("zeros", bytes(100)), ("zeros", bytes(5000))]
    out += [("truncated", data[:rng.randrange(1, len(data))]) for _ in range(60)]
    out += [("random bytes", rng.randbytes(rng.randrange(1, 8192))) for _ in range(20)]
    for _ in range(60):
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 64)):
            i = rng.randrange(len(flipped))
            flipped[i] ^= 1 << rng.randrange(8)
        out.append(("bit flips", bytes(flipped)))
    out += [("text", t.encode()) for t in ("hello, not a checkpoint", "this is a text file", json.dumps({"a": 1}),
                                           "step,epoch,rec\n1,1,0.5\n", "\u00e9t\u00e9 " * 300)]
    out += [("zip entry missing", rezip(data, rng, rename=False)) for _ in range(25)]
    out += [("zip entry renamed", rezip(data, rng, rename=True)) for _ in range(25)]
    out += [("another file", other) for other in others]
    for protocol in (2, 4, 5):
        out.append(("crafted pickle", pickle.dumps({"config": Evil(marker)}, protocol=protocol)))
    buffer = io.BytesIO()
    torch.save({"config": Evil(marker)}, buffer)
    out.append(("crafted pickle", buffer.getvalue()))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory, images12):
    """A tiny run saved after epoch 1 (checkpoint.prev.pt) and epoch 2 (checkpoint.pt, model.pt), and the
    files of another configuration (z_dim 16) beside it."""
    base = tmp_path_factory.mktemp("fuzz")
    assert train.main(["--data", str(images12), "--out", str(base / "run"), "--epochs", "2", *TINY]) == 0
    assert train.main(["--data", str(images12), "--out", str(base / "z16"), "--epochs", "1", "--z-dim", "16",
                       *TINY]) == 0
    return base


def write(path, data):
    path.write_bytes(data)
    return path


def test_damaged_checkpoints_fall_back_and_are_never_used(run, tmp_path):
    ckpt, marker = run / "run" / "checkpoint.pt", tmp_path / "pwned"
    original, prev = ckpt.read_bytes(), safe_load(run / "run" / "checkpoint.prev.pt")
    wrong_config = safe_load(ckpt)
    wrong_config["config"] = {**wrong_config["config"], "z_dim": 16}  # weights of z_dim 32, config of 16
    buffer = io.BytesIO()
    torch.save(wrong_config, buffer)
    others = [(run / "run" / "model.pt").read_bytes(), buffer.getvalue()]
    cases = variants(original, random.Random(0), others, marker)
    assert len(cases) >= 200
    work = tmp_path / "run"
    work.mkdir()
    (work / "checkpoint.prev.pt").write_bytes((run / "run" / "checkpoint.prev.pt").read_bytes())
    kinds = set()
    for kind, data in cases:
        messages = []
        state, used = load_with_fallback(write(work / "checkpoint.pt", data), log=messages.append)
        if used.name == "checkpoint.prev.pt":  # detected: the warning names the file, then the good copy
            assert len(messages) == 1 and str(work / "checkpoint.pt") in messages[0], (kind, messages)
            assert "\n" not in messages[0] and "falling back" in messages[0]
            assert digest(state) == digest(prev), kind
            kinds.add(kind)
        else:  # not one value changed (a flip in the zip's padding, say): the same state as before
            assert not messages and digest(state) == digest(safe_load(ckpt)), kind
    assert not marker.exists()  # no crafted pickle ran
    assert kinds >= {"empty", "zeros", "truncated", "random bytes", "bit flips", "text", "zip entry missing",
                     "zip entry renamed", "another file", "crafted pickle"}


def test_damaged_models_are_named_in_one_line(run, tmp_path):
    model, marker = run / "run" / "model.pt", tmp_path / "pwned"
    good = {k: v.clone() for k, v in load_model(model).state_dict().items()}
    others = [(run / "run" / "checkpoint.pt").read_bytes()]
    refused = 0
    for kind, data in variants(model.read_bytes(), random.Random(1), others, marker):
        path = write(tmp_path / "model.pt", data)
        try:
            loaded = load_model(path)
        except CheckpointError as err:
            message = str(err)
            assert message.startswith(str(path)) and "\n" not in message, (kind, message)
            if kind == "crafted pickle":
                assert "refused" in message and "posix.system" in message, message
                refused += 1
            elif "refused" in message:  # a flip inside the name of one of torch's own functions names another
                assert kind == "bit flips", (kind, message)
            continue
        assert all(torch.equal(good[k], v) for k, v in loaded.state_dict().items()), kind  # intact contents
    assert refused == 4 and not marker.exists()
    other = load_model(run / "z16" / "model.pt")  # a valid model of another configuration is a valid model
    assert other.config.z_dim == 16


def test_one_of_each_kind_through_the_scripts(run, tmp_path, images12, capsys):
    """train.py --resume takes the previous checkpoint and goes on; test.py --model says one line."""
    ckpt = run / "run" / "checkpoint.pt"
    marker = tmp_path / "pwned"
    seen = {}
    for kind, data in variants(ckpt.read_bytes(), random.Random(2), [], marker):
        seen.setdefault(kind, data)
    for i, (kind, data) in enumerate(seen.items()):
        work = tmp_path / f"run{i}"
        work.mkdir()
        (work / "checkpoint.prev.pt").write_bytes((run / "run" / "checkpoint.prev.pt").read_bytes())
        write(work / "checkpoint.pt", data)
        assert train.main(["--out", str(work), "--resume", "--epochs", "2", "--data", str(images12)]) == 0, kind
        out = capsys.readouterr().out
        if "falling back" in out:  # a bit flip may leave the contents intact; everything else falls back
            assert "resumed from " + str(work / "checkpoint.prev.pt") in out, kind
        assert safe_load(work / "checkpoint.pt")["epoch"] == 2  # epoch 1 + the epoch trained again
        safe_load(work / "checkpoint.prev.pt")  # the save kept a good previous copy, not the damaged file
        model = write(tmp_path / f"model{i}.pt", data)
        assert map_script.main(["--model", str(model), "--data", str(images12), "--device", "cpu"]) == 1, kind
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {model}") and "\n" not in err, (kind, err)
    assert not marker.exists()
