"""train.py end to end on tiny models and images the tests make."""
import csv
import json
import math
import re
import threading
import time
from dataclasses import replace

import pytest
import torch

import train
from checkpoint import load_model, safe_load, save_atomic
from conftest import ROOT, board, series
from models import ModelConfig, build_model, preset_config
from trainer import Trainer

TINY = ["--preset", "tiny", "--log-every", "1", "--finish-steps", "0"]  # (finishing: its own tests)


def rows(run):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_run_leaves_everything_and_resumes(tmp_path, images12, capsys):
    run = tmp_path / "run"
    start = time.perf_counter()
    assert train.main(["--data", str(images12), "--epochs", "2", "--out", str(run), *TINY]) == 0
    wall = time.perf_counter() - start
    line = r"on the CPU: about ([0-9.e-]+) s per step, ([0-9.]+) min per epoch"
    estimates = re.findall(line, capsys.readouterr().out)
    assert len(estimates) == 1  # one line, after the warm-up step and three timed ones
    per_step, per_epoch = map(float, estimates[0])
    # the three timed steps lie within the run (the warm-up step may be faster or slower than them under load)
    assert 0 < 3 * per_step < wall and per_epoch == pytest.approx(2 * per_step / 60, abs=0.05)
    for name in ("checkpoint.pt", "model.pt", "history.csv", "losses.png"):
        assert (run / name).is_file(), name
    assert list((run / "samples").glob("*.png"))
    first = rows(run)
    assert [int(r["step"]) for r in first] == [1, 2, 3, 4]  # 12 images, batch 6: 2 steps per epoch
    model = load_model(run / "model.pt")
    assert model.config.image_size == 64 and not model.training

    saved = safe_load(run / "checkpoint.pt")
    del saved["args"]["precision"]  # as written before --precision existed: resume takes today's default
    torch.save(saved, run / "checkpoint.pt")
    assert train.main(["--data", str(images12), "--out", str(run), "--resume", "--epochs", "3"]) == 0
    state = safe_load(run / "checkpoint.pt")
    assert state["epoch"] == 3 and state["step"] == 6
    assert [int(r["step"]) for r in rows(run)] == [1, 2, 3, 4, 5, 6]
    assert rows(run)[:4] == first
    assert [step for step, _ in series(board(run), "loss/rec")] == [1, 2, 3, 4, 5, 6]  # TensorBoard's, the same

    capsys.readouterr()  # the folder holds a run: a new one there is refused, --overwrite starts again
    assert train.main(["--data", str(images12), "--epochs", "1", "--out", str(run), *TINY]) == 1
    assert capsys.readouterr().err == (f"error: {run} holds a run (checkpoint.pt, checkpoint.prev.pt, model.pt, "
                                       "history.csv); go on with it with --resume, start again in its place with "
                                       "--overwrite, or give another --out\n")
    assert train.main(["--data", str(images12), "--epochs", "1", "--out", str(run), "--overwrite", *TINY]) == 0
    assert [int(r["step"]) for r in rows(run)] == [1, 2]
    assert safe_load(run / "checkpoint.pt")["step"] == 2 and not (run / "checkpoint.prev.pt").exists()
    assert [p.name for p in (run / "samples").glob("*.png")] == ["epoch_0001.png"]
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # --overwrite deleted the run's event files
    assert [step for step, _ in series(board(run), "loss/rec")] == [1, 2]


def test_resume_gives_the_same_weights(tmp_path, images12):
    """Stopped inside an epoch, then inside the finishing, and resumed each time: the weights, moving average and
    optimisers (the finishing's too) of a run that went straight through."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["--data", str(images12), "--epochs", "3", *TINY, "--finish-steps", "5"]
    assert train.main([*common, "--out", str(straight)]) == 0
    assert train.main([*common, "--out", str(split), "--max-steps", "3"]) == 0  # stops inside epoch 2
    assert safe_load(split / "checkpoint.pt")["step"] == 3
    assert train.main(["--out", str(split), "--resume", "--max-steps", "8"]) == 0  # the data come from the checkpoint
    assert safe_load(split / "checkpoint.pt")["finish"]["step"] == 2  # 6 steps of epochs, 2 of the finishing
    assert train.main(["--out", str(split), "--resume"]) == 0
    a, b = safe_load(straight / "checkpoint.pt"), safe_load(split / "checkpoint.pt")
    assert a["step"] == b["step"] == 11 and a["finish"]["step"] == b["finish"]["step"] == 5
    for part in ("model", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    for part in ("optimizer_e", "optimizer_d", "finish"):
        optimizer_a, optimizer_b = (x[part]["optimizer"] if part == "finish" else x[part] for x in (a, b))
        for i, s in optimizer_a["state"].items():
            for k in s:
                assert torch.equal(s[k], optimizer_b["state"][i][k]), (part, i, k)
    assert [int(r["step"]) for r in rows(split) if not r["event"]] == list(range(1, 12))


def test_the_decoder_is_finished_as_the_last_phase(tmp_path, images12, capsys):
    """After the epochs the decoder alone trains on the fixed codes of the training images: the encoder and the
    epochs' rows stay as in a run without it, the decoder's error falls, and it is logged, drawn and recorded."""
    common = ["--data", str(images12), "--epochs", "2", *TINY, "--sample-every", "1"]
    assert train.main([*common, "--out", str(tmp_path / "plain")]) == 0
    run = tmp_path / "finished"
    assert train.main([*common, "--out", str(run), "--finish-steps", "5"]) == 0
    plain, state = safe_load(tmp_path / "plain" / "checkpoint.pt"), safe_load(run / "checkpoint.pt")
    assert (state["epoch"], state["step"], state["finish"]["step"]) == (2, 9, 5)
    encoder = [k for k in state["model"] if k.startswith("encoder.")]
    assert all(torch.equal(plain["model"][k], state["model"][k]) for k in encoder)  # frozen, also its statistics
    decoder = {k.removeprefix("decoder."): v for k, v in state["model"].items()
               if k.startswith("decoder.") and "running_" not in k and "num_batches" not in k}
    assert not all(torch.equal(plain["ema"][k], v) for k, v in decoder.items())
    assert all(torch.equal(state["ema"][k], v) for k, v in decoder.items())  # --ema-decay 0: it follows exactly
    before, after = load_model(tmp_path / "plain" / "model.pt"), load_model(run / "model.pt")
    for k, v in before.encoder.state_dict().items():  # the same codes: the map, the walks stay where they were
        assert torch.equal(v, after.encoder.state_dict()[k]), k
    assert "finished" not in before.meta
    assert after.meta["finished"] == {"steps": 5, "of": 5, "contrast_weight": 160.0, "lr": 2e-4, "batch_size": 16,
                                      "seed": 0, "data": str(images12)}
    history = rows(run)
    assert [{k: v for k, v in r.items() if k != "img_per_s"} for r in history[:4]] == [
        {k: v for k, v in r.items() if k != "img_per_s"} for r in rows(tmp_path / "plain")]
    [event] = [r for r in history if r["event"]]
    assert event["step"] == "5" and event["event"].startswith("finishing the decoder: 5 steps")
    finishing = [r for r in history[4:] if not r["event"]]
    assert [int(r["step"]) for r in finishing] == [5, 6, 7, 8, 9] and all(r["epoch"] == "2" for r in finishing)
    loss, rec = ([float(r[k]) for r in finishing] for k in ("loss_finish", "rec"))
    assert loss[-1] < loss[0] and rec[-1] < rec[0] and all(r < l for r, l in zip(rec, loss))  # rec: s R alone
    events = board(run)
    assert [step for step, _ in series(events, "loss/loss_finish")] == [5, 6, 7, 8, 9]
    assert [step for step, _ in series(events, "loss/rec")] == list(range(1, 10))
    assert [step for step, _ in series(events, "samples")] == [2, 4, 6, 8, 9]  # every 2 steps, as an epoch has
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == [
        "epoch_0001.png", "epoch_0002.png", "finish_0002.png", "finish_0004.png", "finish_0005.png"]

    capsys.readouterr()  # on --resume: more finishing steps, not more epochs; a run without it finished later
    assert train.main(["--out", str(run), "--resume", "--epochs", "3"]) == 1
    assert "is finishing its decoder after its 2 epochs" in capsys.readouterr().err
    assert train.main(["--out", str(run), "--resume", "--finish-steps", "7"]) == 0
    assert safe_load(run / "checkpoint.pt")["step"] == 11
    assert load_model(run / "model.pt").meta["finished"]["steps"] == 7
    assert train.main(["--out", str(tmp_path / "plain"), "--resume", "--finish-steps", "5"]) == 0
    resumed = safe_load(tmp_path / "plain" / "checkpoint.pt")
    assert all(torch.equal(resumed["model"][k], state["model"][k]) for k in state["model"])  # as if in one go


def test_resume_takes_the_learning_rate_flags_given_now(tmp_path, images12):
    """--lr and --lr-drop-epoch given on --resume set the rate from the saved epoch on: the rate is derived
    from the epoch and the flags, not kept from the saved run."""
    run = tmp_path / "run"
    assert train.main(["--data", str(images12), "--epochs", "1", "--lr-drop-epoch", "1", "--out", str(run), *TINY]) == 0

    def rates():
        saved = safe_load(run / "checkpoint.pt")
        return [saved[k]["param_groups"][0]["lr"] for k in ("optimizer_e", "optimizer_d")]

    assert rates() == pytest.approx([2e-5, 2e-5])  # dropped after epoch 1
    assert train.main(["--out", str(run), "--resume", "--epochs", "2", "--lr-drop-epoch", "3"]) == 0
    assert rates() == pytest.approx([2e-4, 2e-4])  # epoch 2 is before the new drop
    assert train.main(["--out", str(run), "--resume", "--epochs", "4", "--lr", "1e-3"]) == 0
    assert rates() == pytest.approx([1e-4, 1e-4])  # the saved drop epoch 3 holds: a tenth of the new rate


def test_resume_reads_a_checkpoint_of_an_earlier_version_with_scheduler_states(tmp_path, images12):
    """Earlier versions saved the learning-rate schedulers' states; such a checkpoint still resumes, its
    scheduler states ignored (the rate follows the flags), and the checkpoints written now have none."""
    run = tmp_path / "run"
    assert train.main(["--data", str(images12), "--epochs", "1", "--lr-drop-epoch", "1", "--out", str(run), *TINY]) == 0
    state = safe_load(run / "checkpoint.pt")
    assert not {"scheduler_e", "scheduler_d"} & set(state)
    old = torch.optim.lr_scheduler.MultiStepLR(torch.optim.Adam([torch.zeros(1)], 2e-4), [1], 0.1)
    old.last_epoch = 1  # as saved after epoch 1
    save_atomic({**state, "scheduler_e": old.state_dict(), "scheduler_d": old.state_dict()}, run / "checkpoint.pt")
    assert train.main(["--out", str(run), "--resume", "--epochs", "2", "--lr-drop-epoch", "5"]) == 0
    resumed = safe_load(run / "checkpoint.pt")
    assert resumed["epoch"] == 2 and not {"scheduler_e", "scheduler_d"} & set(resumed)
    assert resumed["optimizer_e"]["param_groups"][0]["lr"] == pytest.approx(2e-4)  # before the new drop


def test_resume_refuses_flags_that_the_saved_run_makes_meaningless(tmp_path, images12, capsys):
    """On --resume the saved settings win over the defaults, so a flag given now is checked against them:
    --feature-weight on a run saved with the squared error would otherwise be accepted and do nothing, and a
    model shape other than the saved one would be ignored (and the other preset's name written as the run's)."""
    run = tmp_path / "run"
    assert train.main(["--data", str(images12), "--epochs", "1", "--out", str(run), *TINY,
                       "--rec-loss", "mse", "--method", "vae"]) == 0
    saved = (run / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    for flags, message in ((["--feature-weight", "4"], "not of --rec-loss mse: the run in {run} was saved so"),
                           (["--beta-neg", "auto"], "which --method vae does not have: the run in {run} was saved so"),
                           (["--z-dim", "16", "--preset", "tiny", "--image-size", "128", "--upsample", "bilinear",
                             "--downsample", "blur", "--head-norm", "on"],
                            "--image-size 128, --z-dim 16, --upsample bilinear, --downsample blur, --head-norm on: the "
                            "run in {run} is a tiny model, 64px, z_dim 32, nearest upsampling, average downsampling, "
                            "head norm off; --resume cannot change its shape")):
        assert train.main(["--out", str(run), "--resume", "--epochs", "2", *flags]) == 1
        assert message.format(run=run) in capsys.readouterr().err
        assert (run / "checkpoint.pt").read_bytes() == saved


def test_init_starts_a_new_run_from_a_models_weights_and_refuses_another_shape(tmp_path, images12, capsys):
    """--init: the first step sees the exported model's encoder and decoder (its moving average too), with new
    optimisers at step 0; the run is then a run like any other (saved, resumed); a shape other than the file's, a
    training checkpoint instead of a model, a missing file or --resume beside it are refused."""
    first, run = tmp_path / "first", tmp_path / "run"
    assert train.main(["--data", str(images12), "--epochs", "1", "--out", str(first), *TINY]) == 0
    exported = safe_load(first / "model.pt")
    flags = ["--data", str(images12), "--epochs", "2", "--vae-epochs", "0", "--out", str(run), "--log-every", "1",
             "--init", str(first / "model.pt"), "--finish-steps", "0"]  # the preset comes from the file
    started = train.start(*train.parse_args([*flags, "--out", str(tmp_path / "peek")]))
    try:
        t = started.trainer
        assert t.step == 0 and not t.opt_e.state and not t.opt_d.state
        for part, live in (("encoder", t.model.encoder), ("decoder", t.model.decoder), ("decoder", t.ema)):
            weights = live.state_dict()
            assert weights.keys() == exported[part].keys()
            assert all(torch.equal(weights[k], v) for k, v in exported[part].items()), part
    finally:
        started.release()
    assert train.main(flags) == 0
    assert [int(r["step"]) for r in rows(run)] == [1, 2, 3, 4]
    model = load_model(run / "model.pt")
    assert model.meta["preset"] == "tiny" and model.config == load_model(first / "model.pt").config
    assert train.main(["--out", str(run), "--resume", "--epochs", "3"]) == 0  # on from its own checkpoint
    assert safe_load(run / "checkpoint.pt")["step"] == 6

    capsys.readouterr()
    model_file = first / "model.pt"
    for extra, message in ((["--z-dim", "16"], f"--z-dim 16: {model_file} is a tiny model, 64px, z_dim 32, nearest "
                             "upsampling, average downsampling, head norm off; --init cannot change its shape"),
                           (["--acai", "0.5"], f"--acai 0.5: {model_file} was trained without --acai, so its encoder "
                            "has no critic; --init cannot add one")):
        assert train.main([*flags, "--out", str(tmp_path / "refused"), *extra]) == 1
        assert capsys.readouterr().err == f"error: {message}\n"
    assert train.main([*flags, "--out", str(tmp_path / "refused"), "--init", str(first / "checkpoint.pt")]) == 1
    assert "is not an exported model of this project (a training checkpoint: pass the model.pt beside it)" in \
        capsys.readouterr().err
    assert not (tmp_path / "refused" / "checkpoint.pt").exists()
    for extra, message in ((["--init", str(tmp_path / "none.pt")], f"--init {tmp_path / 'none.pt'}: no such file"),
                           (["--resume"], "--init starts a new run from a model's weights, --resume goes on")):
        with pytest.raises(SystemExit):  # checked with the other arguments, before anything is done
            train.main([*flags, *extra])
        assert message in capsys.readouterr().err


def test_the_resampling_and_the_head_norm_are_part_of_the_saved_model(tmp_path, images12):
    """--upsample bilinear, --downsample blur and --head-norm on change no weight, only how the networks use them:
    model.pt must rebuild them so."""
    run = tmp_path / "run"
    assert train.main(["--data", str(images12), "--epochs", "1", "--out", str(run), *TINY, "--upsample", "bilinear",
                       "--downsample", "blur", "--head-norm", "on"]) == 0
    model = load_model(run / "model.pt")
    assert (model.config.upsample, model.config.downsample, model.config.head_norm) == ("bilinear", "blur", True)
    before = {k: v for k, v in model.config.to_dict().items() if k != "head_norm"}  # a run saved before the flag
    assert ModelConfig.from_dict(before).head_norm is False
    official = build_model(replace(model.config, upsample="nearest", downsample="average", head_norm=False)).eval()
    official.load_state_dict(model.state_dict())
    z, x = torch.randn(2, model.config.z_dim), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(model.decoder(z), official.decoder(z), atol=1e-3)
        assert not torch.allclose(model.encoder(x)[0], official.encoder(x)[0], atol=1e-3)


def test_acai_trains_a_critic_net_in_the_introspective_epochs_and_resume_cannot_add_or_change_it(tmp_path, images12,
                                                                                                capsys):
    run, plain = tmp_path / "run", tmp_path / "plain"
    assert train.main(["--data", str(images12), "--epochs", "2", "--vae-epochs", "1", "--out", str(run), *TINY,
                       "--acai", "0.5", "--critic", "net"]) == 0
    logged = rows(run)
    assert [bool(r["critic"]) and bool(r["acai"]) for r in logged] == [False, False, True, True]  # the game's epoch
    model = load_model(run / "model.pt")
    assert model.config.critic == "net" and model.meta["acai"] == 0.5  # test.py and the notebook rebuild it
    assert model.encoder.critic.head.weight.abs().sum() > 0  # it starts at zero: the game's epoch trained it
    capsys.readouterr()
    assert train.main(["--out", str(run), "--resume", "--epochs", "3", "--critic", "head"]) == 1
    assert capsys.readouterr().err == (f"error: --critic head: the run in {run} has a critic net; --resume cannot "
                                       "change it\n")
    assert train.main(["--out", str(run), "--resume", "--epochs", "3", "--acai", "0"]) == 0  # on without the term
    assert load_model(run / "model.pt").meta["acai"] == 0  # the meta says how the last epochs were trained
    assert train.main(["--data", str(images12), "--epochs", "1", "--out", str(plain), *TINY]) == 0
    capsys.readouterr()
    assert train.main(["--out", str(plain), "--resume", "--epochs", "2", "--acai", "0.5"]) == 1
    assert capsys.readouterr().err == (f"error: --acai 0.5: the run in {plain} was trained without --acai, so its "
                                       "encoder has no critic; --resume cannot add one\n")
    with pytest.raises(SystemExit):  # checked with the other arguments, before anything is done
        train.main(["--data", str(images12), "--out", str(tmp_path / "vae"), *TINY, "--acai", "1", "--method", "vae"])
    assert "--acai weighs a term of the introspective game, which --method vae does not play" in capsys.readouterr().err


def test_the_exemplar_prior_trains_and_is_refused_where_its_kl_would_see_squashed_codes(tmp_path, images12, capsys):
    run = tmp_path / "run"
    assert train.main(["--data", str(images12), "--epochs", "2", "--vae-epochs", "1", "--out", str(run), *TINY,
                       "--prior", "exemplar"]) == 0
    logged = rows(run)
    assert all(0 < float(r["kl_real"]) < math.inf for r in logged) and logged[-1]["kl_fake"]
    assert load_model(run / "model.pt").meta["prior"] == "exemplar"
    for flags, message in ((["--tanh", "all"], "--prior exemplar: the KL terms must see the raw posteriors"),
                           (["--batch-size", "1"], "--prior exemplar leaves each real image out of its own prior")):
        with pytest.raises(SystemExit):
            train.main(["--data", str(images12), "--out", str(tmp_path / "no"), *TINY, "--prior", "exemplar", *flags])
        assert message in capsys.readouterr().err


def test_the_moving_average_does_not_change_the_trained_weights(tmp_path, images12):
    """The EMA never enters a step: runs with any decay train the same weights, and with decay 0 the decoder it
    exports is the trained one (docs/STUDY.md compares the two decoders of finished runs on this ground)."""
    for decay in ("0", "0.9"):
        assert train.main(["--data", str(images12), "--epochs", "3", *TINY, "--out", str(tmp_path / decay),
                           "--ema-decay", decay]) == 0
    none, some = safe_load(tmp_path / "0" / "checkpoint.pt"), safe_load(tmp_path / "0.9" / "checkpoint.pt")
    assert all(torch.equal(none["model"][k], some["model"][k]) for k in none["model"])
    # the weights; BatchNorm statistics are recomputed when a model is exported
    trained = {k.removeprefix("decoder."): v for k, v in none["model"].items()
               if k.startswith("decoder.") and "running_" not in k and "num_batches" not in k}
    assert all(torch.equal(none["ema"][k], trained[k]) for k in trained)
    assert not all(torch.equal(some["ema"][k], trained[k]) for k in trained)


def test_beta_neg_follows_control_json_during_a_run(tmp_path, images12, capsys):
    run = tmp_path / "run"
    control = run / "control.json"
    done = []
    t = threading.Thread(target=lambda: done.append(train.main(
        ["--data", str(images12), "--epochs", "40", "--out", str(run), *TINY])))
    t.start()

    def wait_rows(n):
        deadline = time.time() + 120
        while time.time() < deadline and t.is_alive():
            if (run / "history.csv").exists() and len(rows(run)) >= n:
                return len(rows(run))
            time.sleep(0.02)
        raise AssertionError("training did not get there")

    wait_rows(2)
    control.write_text("{not json")
    n_bad = wait_rows(len(rows(run)) + 3)
    control.write_text(json.dumps({"beta_neg": -3}))
    wait_rows(n_bad + 3)
    control.write_text(json.dumps({"beta_neg": 64}))
    t.join()
    assert done == [0]
    history = rows(run)
    events = [r for r in history if r["event"]]
    assert [r["event"] for r in events] == ["beta_neg 256 -> 64 (control.json)"]
    changed = int(events[0]["step"])
    assert all(float(r["beta_neg"]) == 256 for r in history if int(r["step"]) <= changed and not r["event"])
    assert all(float(r["beta_neg"]) == 64 for r in history if int(r["step"]) > changed)
    assert safe_load(run / "checkpoint.pt")["beta_neg"] == 64
    out = capsys.readouterr().out
    assert out.count("not valid JSON") == 1 and out.count("must be a positive number") == 1
    assert "beta_neg 256 -> 64 (control.json)" in out


def test_training_on_a_folder_mixing_good_and_bad_files(tmp_path, images12, capsys):
    data = tmp_path / "mixed"
    data.mkdir()
    for p in images12.glob("*.png"):
        (data / p.name).write_bytes(p.read_bytes())
    good = (data / "img_00.png").read_bytes()
    (data / "cut.png").write_bytes(good[: len(good) // 2])
    (data / "notes.jpg").write_text("not an image")
    (data / "empty.png").write_bytes(b"")
    (data / "readme.txt").write_text("ignored")
    assert train.main(["--data", str(data), "--epochs", "1", "--out", str(tmp_path / "run"), *TINY]) == 0
    out = capsys.readouterr().out
    assert "loaded 12 images" in out and "skipped 4" in out and "readme.txt (not an image file type)" in out
    assert (tmp_path / "run" / "model.pt").is_file()


def test_official_puts_back_the_official_settings():
    args, _ = train.parse_args(["--official"])
    assert {k: getattr(args, k) for k in train.OFFICIAL} == train.OFFICIAL
    args, _ = train.parse_args(["--official", "--beta-neg", "64", "--tanh", "as-only"])
    assert (args.beta_neg, args.tanh, args.beta_kl) == (64.0, "as-only", 1.0)  # flags given beside it win
    hp = Trainer(args, preset_config("tiny"), torch.device("cpu"), world=1).hp
    assert (hp.beta_rec, hp.beta_kl, hp.gamma_r, hp.method) == (0.5, 1.0, 1e-8, "as")


def test_the_shipped_model_is_what_train_py_trains_with_no_flags():
    """saves/fantasy/model.pt, the one model shipped, is what `python train.py` writes: the network, the settings
    and the epochs of today's defaults, its decoder finished by the default finishing. A default changed
    without training the shipped model again fails here."""
    model = load_model(ROOT / "saves/fantasy/model.pt")
    args, _ = train.parse_args([])
    assert model.config == preset_config(args.preset, args.image_size, args.z_dim, args.upsample, args.downsample)
    settings = ("data", "preset", "method", "tanh", "beta_rec", "beta_kl", "beta_adv", "augment", "fakes", "rec_loss",
                "feature_weight", "ema_decay")
    assert {k: model.meta[k] for k in settings} == {k: getattr(args, k) for k in settings}
    assert model.meta.get("acai", 0.0) == args.acai  # the shipped model was trained before --acai existed
    assert model.meta.get("prior", "normal") == args.prior  # and before --prior
    assert model.meta["epoch"] == args.epochs
    assert (model.meta["finished"]["steps"], model.meta["finished"]["contrast_weight"]) == \
        (args.finish_steps, args.finish_weight)


def test_the_default_schedule_scales_with_the_epochs():
    def schedule(*argv):
        args, _ = train.parse_args(list(argv))
        return args.epochs, args.vae_epochs, args.lr_drop_epoch
    assert schedule() == (540, 300, 510)  # the shipped model's
    assert schedule("--epochs", "1080") == (1080, 600, 1020)
    assert schedule("--epochs", "5") == (5, 2, 5)
    assert schedule("--epochs", "90", "--vae-epochs", "0", "--lr-drop-epoch", "60") == (90, 0, 60)
    assert schedule("--official") == (400, 0, 350)
    assert schedule("--official", "--epochs", "500") == (500, 0, 350)  # flags beside it win, the rest stays official


def test_vae_epochs_come_first_then_introspection(tmp_path, images12):
    run = tmp_path / "run"
    assert train.main(["--data", str(images12), "--out", str(run), "--epochs", "3", "--vae-epochs", "1", *TINY]) == 0
    by_epoch = {int(r["epoch"]): r for r in rows(run)}
    assert by_epoch[1]["kl_fake"] == "" and float(by_epoch[1]["grad_adv"]) == 0  # a plain VAE: no fakes
    assert float(by_epoch[2]["kl_fake"]) > 0 and float(by_epoch[3]["grad_adv"]) > 0
    assert float(by_epoch[2]["c"]) < float(by_epoch[3]["c"]) <= 1  # c(t) starts with the introspective steps


def test_c_epochs_plans_c_over_that_many_introspective_epochs(tmp_path, images12):
    def c_by_step(run):
        return {int(r["step"]): float(r["c"]) for r in rows(run) if r["c"]}

    def run(name, *argv):
        assert train.main(["--data", str(images12), "--out", str(tmp_path / name), "--vae-epochs", "1", *TINY,
                           *argv]) == 0
        return c_by_step(tmp_path / name)

    def planned(steps):  # c after each of the 8 steps (2 an epoch): t counts from the first introspective step
        return {s: pytest.approx(math.tanh(5 * max(s - 3, 0) / steps), abs=1e-5) for s in range(1, 9)}
    assert run("whole", "--epochs", "4") == planned(6)  # over the 6 introspective steps
    assert run("one", "--epochs", "4", "--c-epochs", "1") == planned(2)  # over the first epoch's 2
    # with --c-epochs, c(t) does not depend on --epochs: a run resumed with more epochs keeps it
    run("short", "--epochs", "3", "--c-epochs", "1")
    assert train.main(["--data", str(images12), "--out", str(tmp_path / "short"), "--resume", "--epochs", "4"]) == 0
    assert c_by_step(tmp_path / "short") == planned(2)


def test_losses_png_has_its_title_and_panel_titles(tmp_path, monkeypatch):
    import report
    figures = []
    monkeypatch.setattr(report.plt, "close", figures.append)
    rows = [{"step": str(s), "event": "", "rec": "0.1", "kl_real": "5", "beta_neg": "256", "c": "0.5"} for s in (1, 2)]
    report.plot_history(rows, tmp_path / "losses.png", "run: training history")
    assert figures[0]._suptitle.get_text() == "run: training history"  # not the last panel's title
    assert figures[0].axes[0].get_title() == "reconstruction error per pixel"
