"""Faults a long run meets: kill -9, Ctrl-C, NaN, failed writes, hostile or broken files."""
import csv
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import checkpoint
import step
import train
from checkpoint import CheckpointError, load_model, load_with_fallback, safe_load
from conftest import ROOT, board, series

TINY = ["--preset", "tiny", "--log-every", "1", "--save-every", "1", "--device", "cpu", "--finish-steps", "0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def start(*args):
    return subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def steps(run):
    with open(run / "history.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if not r["event"]]


def test_kill_9_twice_then_resume_finishes(tmp_path, images12):
    run, rng = tmp_path / "run", random.Random(0)
    proc = start("--data", str(images12), "--out", str(run), "--epochs", "12", *TINY)
    for attempt in range(2):
        wait_for(run / "checkpoint.pt", proc)
        time.sleep(rng.uniform(0.3, 2.0))
        if attempt == 0:  # a second trainer on the folder is refused in one line that names the first
            proc.send_signal(signal.SIGSTOP)  # (stopped, the first holds the folder however slow the second)
            second = subprocess.run([sys.executable, "train.py", "--data", str(images12), "--out", str(run), *TINY],
                                    cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
            assert second.returncode == 1 and second.stderr == (
                f"error: {run} is in use by train.py, process {proc.pid} on {socket.gethostname()}; wait for it "
                "to end or give another --out\n")
        proc.kill()  # SIGKILL: no handler runs; the lock goes with the process, nothing is left to clean up
        proc.wait()
        assert safe_load(run / "checkpoint.pt")["step"] >= 1
        proc = start("--data", str(images12), "--out", str(run), "--resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    state = safe_load(run / "checkpoint.pt")
    assert state["epoch"] == 12 and state["step"] == 24
    assert steps(run) == list(range(1, 25))  # no step lost or logged twice across the kills
    events = board(run)  # nor in TensorBoard, which drops what each start's mark says came after its checkpoint
    with open(run / "history.csv", newline="") as f:
        rec = [float(r["rec"]) for r in csv.DictReader(f) if not r["event"]]
    assert [step for step, _ in series(events, "loss/rec")] == list(range(1, 25))
    assert [value for _, value in series(events, "loss/rec")] == pytest.approx(rec, rel=1e-5)  # the kept ones
    assert [step for step, _ in series(events, "samples")] == [10, 20, 24]  # epochs 5, 10 and 12
    load_model(run / "model.pt")


def finishing_rows(run):
    """The steps of the finishing's rows in history.csv (a file a resume is rewriting reads as none)."""
    try:
        with open(run / "history.csv", newline="") as f:
            return [int(r["step"]) for r in csv.DictReader(f) if r.get("loss_finish")]
    except (FileNotFoundError, ValueError, TypeError):
        return []


def test_kill_9_and_ctrl_c_while_finishing_then_resume_give_the_uninterrupted_weights(tmp_path, images12):
    """The finishing resumes exactly: killed (kill -9) and stopped (Ctrl-C) in it, then resumed each time, the
    run ends with the weights, moving average and optimisers of the run that went straight through."""
    flags = ["--data", str(images12), "--epochs", "1", *TINY, "--finish-steps", "30", "--save-every", "5"]
    straight = start(*flags, "--out", str(tmp_path / "straight"))
    run = tmp_path / "run"
    proc = start(*flags, "--out", str(run))  # saved when the epoch ends, then every 10 steps of the finishing
    for sig, at, code in ((signal.SIGKILL, 14, -9), (signal.SIGINT, 24, 130)):
        while max(finishing_rows(run), default=0) < at:  # the epoch's 2 steps, then 12 and 22 of the finishing
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.02)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == code, err[-2000:]
        proc = start("--out", str(run), "--resume")
    for p in (proc, straight):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    a, b = safe_load(tmp_path / "straight" / "checkpoint.pt"), safe_load(run / "checkpoint.pt")
    assert a["step"] == b["step"] == 32 and b["finish"]["step"] == 30
    for part in ("model", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    for i, state in a["finish"]["optimizer"]["state"].items():
        assert all(torch.equal(v, b["finish"]["optimizer"]["state"][i][k]) for k, v in state.items()), i
    assert steps(run) == list(range(1, 33))  # no step lost or logged twice


WRITER = """
import sys, torch
sys.path.insert(0, {root!r})
from checkpoint import save_atomic
big = torch.randn(4_000_000)
i = 0
while True:
    i += 1
    save_atomic({{"i": i, "big": big}}, {path!r})
    print(i, flush=True)
"""


def test_kill_9_during_checkpoint_writes_leaves_a_good_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    rng = random.Random(1)
    for trial in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), path=str(path))], env=ENV,
                                stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # one write done
        time.sleep(rng.uniform(0.05, 0.6))  # each write takes about 0.1 s: most kills land inside one
        proc.kill()
        proc.wait()
        state, used = load_with_fallback(path, log=lambda *a: None, check=lambda state, path: state)
        assert state["i"] >= 1 and state["big"].numel() == 4_000_000


def test_ctrl_c_and_sigterm_save_and_exit_cleanly(tmp_path, images12):
    for sig in (signal.SIGINT, signal.SIGTERM):
        run = tmp_path / sig.name
        proc = start("--data", str(images12), "--out", str(run), "--epochs", "200", *TINY, "--save-every", "100")
        wait_for(run / "history.csv", proc)
        while len(steps(run)) < 3:
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err[-2000:]  # saved, but not finished: a script must not go on
        assert "Traceback" not in err
        assert "interrupted at step" in out + err
        state = safe_load(run / "checkpoint.pt")
        assert state["step"] >= 3


def nan_at(calls):
    """A reconstruction_error that returns NaN on the given call numbers."""
    real, count = step.reconstruction_error, [0]

    def poisoned(a, b):
        count[0] += 1
        out = real(a, b)
        return out * float("nan") if count[0] in calls else out
    return poisoned


def test_nan_is_recovered_with_a_higher_beta_neg(tmp_path, images12, monkeypatch, capsys):
    run = tmp_path / "run"
    monkeypatch.setattr(step, "reconstruction_error", nan_at({30}))  # one call, in step 5 or so
    assert train.main(["--data", str(images12), "--out", str(run), "--epochs", "6", "--beta-neg", "64", *TINY]) == 0
    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    events = [r["event"] for r in rows if r["event"]]
    assert events[0].startswith("diverged:") and "not finite" in events[0]
    assert events[1].startswith("beta_neg 64 -> 128 (recovered from divergence")
    assert safe_load(run / "checkpoint.pt")["beta_neg"] == 128
    params = safe_load(run / "checkpoint.pt")["model"]
    assert all(torch.isfinite(v).all() for v in params.values())
    assert "recovered from divergence" in capsys.readouterr().out


def test_repeated_divergence_stops_with_a_checkpoint(tmp_path, images12, monkeypatch, capsys):
    run = tmp_path / "run"
    monkeypatch.setattr(step, "reconstruction_error", nan_at(set(range(20, 10_000))))
    assert train.main(["--data", str(images12), "--out", str(run), "--epochs", "50", *TINY]) == 1
    err = capsys.readouterr().err
    assert "diverged 4 times" in err and "checkpoint.pt" in err
    state = safe_load(run / "checkpoint.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_failed_writes_warn_and_keep_the_previous_checkpoint(tmp_path, images12, monkeypatch, capsys):
    run = tmp_path / "run"
    real_save, calls = torch.save, [0]

    def failing_save(obj, f, *a, **k):
        calls[0] += 1
        if calls[0] > 2:  # checkpoint and model of epoch 1 are written, then the disk is full
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    assert train.main(["--data", str(images12), "--out", str(run), "--epochs", "3", *TINY]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("could not write") == 2  # epoch 2 and the end
    assert "could not write the final checkpoint" in captured.err
    assert safe_load(run / "checkpoint.pt")["epoch"] == 1
    assert not list(run.glob("*.tmp"))


MARKER_PICKLE = """
import os, pickle, sys
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + {marker!r},))
with open(sys.argv[1], "wb") as f:
    pickle.dump({{"config": Evil()}}, f)
"""


@pytest.fixture
def crafted(tmp_path):
    """A pickle that creates a marker file when unpickled, saved both raw and in torch's zip format."""
    marker = tmp_path / "pwned"
    raw = tmp_path / "raw" / "checkpoint.pt"
    raw.parent.mkdir()
    subprocess.run([sys.executable, "-c", MARKER_PICKLE.format(marker=str(marker)), str(raw)], check=True)
    zipped = tmp_path / "zip" / "checkpoint.pt"
    zipped.parent.mkdir()
    code = MARKER_PICKLE.format(marker=str(marker)).replace(
        "with open(sys.argv[1], \"wb\") as f:\n    pickle.dump({\"config\": Evil()}, f)",
        "import torch\ntorch.save({\"config\": Evil()}, sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(zipped)], check=True)
    assert not marker.exists()
    return marker, [raw, zipped]


def test_crafted_pickle_is_refused_everywhere(crafted, images12):
    marker, files = crafted
    for path in files:
        with pytest.raises(CheckpointError, match="refused") as refusal:
            safe_load(path)
        assert "it asks for posix.system" in str(refusal.value)  # from torch (zip) or read from the opcodes (raw)
        with pytest.raises(CheckpointError, match="refused"):
            load_model(path)
        resume = subprocess.run([sys.executable, "train.py", "--resume", "--out", str(path.parent), "--data",
                                 str(images12)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
        viz = subprocess.run([sys.executable, "test.py", "--model", str(path), "--data", str(images12)], cwd=ROOT,
                             env=ENV, capture_output=True, text=True, timeout=120)
        for result in (resume, viz):
            assert result.returncode == 1 and "Traceback" not in result.stderr
            assert "refused" in result.stderr and str(path) in result.stderr
    assert not marker.exists()


def test_truncated_checkpoint_falls_back_or_is_named(tmp_path, images12):
    run = tmp_path / "run"
    assert train.main(["--data", str(images12), "--out", str(run), "--epochs", "2", *TINY]) == 0
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    messages = []
    state, used = load_with_fallback(ckpt, log=messages.append)
    assert used.name == "checkpoint.prev.pt" and state["epoch"] == 1
    assert str(ckpt) in messages[0] and "truncated or damaged" in messages[0]
    assert train.main(["--data", str(images12), "--out", str(run), "--resume", "--epochs", "3"]) == 0
    assert safe_load(ckpt)["epoch"] == 3
    model = run / "model.pt"
    model.write_bytes(model.read_bytes()[:1000])
    result = subprocess.run([sys.executable, "test.py", "--model", str(model), "--data", str(images12)], cwd=ROOT,
                            env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(model) in result.stderr and "truncated or damaged" in result.stderr


def test_other_architecture_is_named_parameter_by_parameter(tmp_path, images12):
    run = tmp_path / "run"
    assert train.main(["--data", str(images12), "--out", str(run), "--epochs", "1", *TINY]) == 0
    state = safe_load(run / "model.pt")
    state["config"] = {**state["config"], "z_dim": 16}  # weights of z_dim 32 under a z_dim 16 config
    torch.save(state, run / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt does not match.*size mismatch for fc\.weight"):
        load_model(run / "other.pt")
