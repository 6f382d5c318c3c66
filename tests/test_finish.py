"""finish.py: the decoder alone learns its training images' details from their fixed codes; nothing else moves."""
import hashlib

import torch

import finish
from checkpoint import load_model
from conftest import ROOT
from dataset import load_folder
from latent import decode, encode
from losses import contrast_weighted_error, reconstruction_error


def weighted_error(model, images, weight=160.0):
    """The finishing objective (squared error plus the contrast-weighted error) of the model's reconstructions."""
    x = images.float().div(255)
    rec = decode(model, encode(model, images))
    return (reconstruction_error(x, rec) + contrast_weighted_error(x, rec, weight)).mean().item()


def test_finishing_trains_the_decoder_alone_and_leaves_the_input(tmp_path, tiny, images12):
    before = hashlib.sha256(tiny.read_bytes()).hexdigest()
    out = tmp_path / "finished" / "model.pt"
    argv = ["--model", str(tiny), "--out", str(out), "--data", str(images12), "--steps", "30", "--lr", "1e-3",
            "--device", "cpu"]
    assert finish.main(argv) == 0
    assert hashlib.sha256(tiny.read_bytes()).hexdigest() == before
    old, new = load_model(tiny), load_model(out)
    for name, value in old.encoder.state_dict().items():  # the codes, the map, the walks stay where they were
        assert torch.equal(value, new.encoder.state_dict()[name]), name
    assert not all(torch.equal(v, new.decoder.state_dict()[k]) for k, v in old.decoder.state_dict().items())
    images, _ = load_folder(images12, old.config.image_size)
    assert weighted_error(new, images) < 0.8 * weighted_error(old, images)
    assert new.meta["finished"]["steps"] == 30 and new.meta["finished"]["contrast_weight"] == 160.0
    assert new.meta["epoch"] == old.meta["epoch"]  # the run's own record is kept beside it


def test_a_finished_model_is_refused(tmp_path, capsys):
    """finish.py is for models without their finishing: a finished one (by train.py or by finish.py) is refused
    in one line that says where more steps go."""
    out = tmp_path / "again.pt"
    assert finish.main(["--model", str(ROOT / "saves/fantasy/model.pt"), "--out", str(out), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has its decoder finished already (600 steps)" in err and not out.exists()


def test_steps_and_batches_as_asked(tiny, images12):
    model = load_model(tiny)
    images, _ = load_folder(images12, model.config.image_size)
    args = finish.parse_args(["--model", str(tiny), "--out", "unused.pt", "--steps", "7", "--batch-size", "5"])
    assert len(finish.finish(model, images, args, log=lambda line: None)) == 7  # 12 images: batches 5, 5, 2, 5, ...


def test_the_shipped_model_is_finished_with_the_defaults(tmp_path):
    """saves/fantasy/model.pt, the one model shipped, has its decoder finished, with the settings finish.py and
    train.py's last phase use by default, on the demo set it was trained on."""
    model = load_model(ROOT / "saves/fantasy/model.pt")
    defaults = finish.parse_args(["--model", str(ROOT / "saves/fantasy/model.pt"), "--out", str(tmp_path / "x.pt")])
    record = model.meta["finished"]
    settings = ("steps", "contrast_weight", "lr", "batch_size", "seed")
    assert {k: record[k] for k in settings} == {k: getattr(defaults, k) for k in settings}
    assert record["data"] == model.meta["data"] and model.meta["epoch"] == 540
