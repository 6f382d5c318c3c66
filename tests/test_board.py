"""TensorBoard on what train.py writes: its own reader on the event files, and a real `tensorboard` serving them."""
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from tensorboard.plugins.hparams import api_pb2, metadata as hparams

from board import TAGS, Board
from conftest import board, series
from report import COLUMNS


def history(run):
    """The rows of history.csv that log terms (not an event alone)."""
    with open(run / "history.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["rec"]]


def logged(run, name):
    """[(step, value)] of a term in history.csv, at the steps that log it."""
    return [(int(r["step"]), float(r[name])) for r in history(run) if r[name]]


def hparams_of(events):
    """The settings of a run and its end (None while it runs), as TensorBoard's hparams plugin reads them."""
    content = events.PluginTagToContent(hparams.PLUGIN_NAME)
    start = hparams.parse_session_start_info_plugin_data(content[hparams.SESSION_START_INFO_TAG])
    end = content.get(hparams.SESSION_END_INFO_TAG)
    return ({k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()},
            end and hparams.parse_session_end_info_plugin_data(end))


def test_every_term_of_history_has_its_chart():
    assert set(TAGS) == set(COLUMNS) - {"step", "event"}


def test_event_files_hold_every_term_the_samples_and_the_settings(tiny):
    run = tiny.parent
    events = board(run)
    terms = {name for r in history(run) for name, value in r.items() if value and name in TAGS}
    assert {"rec", "kl_real", "kl_fake", "diff_kl", "beta_neg", "sat_fake"} <= terms  # a VAE epoch, then a game
    assert {tag for tag in events.Tags()["tensors"] if not tag.startswith("_hparams_")} == {
        TAGS[name] for name in terms} | {"samples"}
    for name in terms:
        read = series(events, TAGS[name])
        assert [step for step, _ in read] == [step for step, _ in logged(run, name)], name
        assert [v for _, v in read] == pytest.approx([v for _, v in logged(run, name)], rel=1e-5), name
    # the grid of the last epoch (step 4): 8 images of 64x64 a row, rows real, reconstruction, sample
    [(step, (width, height, png))] = series(events, "samples")
    assert step == 4 and (int(width), int(height)) == (8 * 66 + 2, 3 * 66 + 2) and png.startswith(b"\x89PNG")
    settings, end = hparams_of(events)
    assert {"preset": "tiny", "epochs": 2, "image_size": 64, "z_dim": 32, "beta_kl": 0.1, "method": "as", "seed": 0,
            "compile": "False"}.items() <= settings.items() and "beta_adv" not in settings  # (None: unset)
    assert end.status == api_pb2.STATUS_SUCCESS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_tensorboard_serves_the_run(tiny):
    """`tensorboard --logdir` on the folder above a run answers its scalars route with the values of history.csv."""
    run, port = tiny.parent, free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(run.parent), "--host",
                               "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)  # its own group: its data server goes with it
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run={run.name}&tag=loss/rec"
    expected = logged(run, "rec")
    try:
        deadline, answer = time.time() + 90, None
        while answer is None or len(answer) < len(expected):  # it may answer before it has read every file
            assert server.poll() is None, server.communicate()[1][-2000:]
            assert time.time() < deadline, f"no answer with {len(expected)} steps in 90 s: {answer}"
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    answer = json.load(response)
            except OSError:  # not listening yet, or the run not yet read
                pass
        assert [step for _, step, _ in answer] == [step for step, _ in expected]
        assert [value for _, _, value in answer] == pytest.approx([value for _, value in expected], rel=1e-5)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_a_resume_drops_what_was_logged_after_its_checkpoint(tmp_path):
    """As after a kill -9: steps 1-9 and a grid at step 7 on the disk, the checkpoint at step 5; the resumed run
    logs from step 6 again. An event alone (a new beta_neg) is text, and leaves beta_neg's step 4 to its row."""
    image = torch.zeros(2, 3, 8, 8)
    first = Board(tmp_path, {"seed": 0, "beta_neg": (4.0, 256.0)})
    for step in range(1, 10):
        first.log({"step": step, "rec": float(step), "beta_neg": 256.0})
    first.log({"step": 4, "beta_neg": 64.0, "event": "beta_neg 256 -> 64 (control.json)"})
    first.grid(3, image, image, image)
    first.grid(7, image, image, image)
    first.flush()  # (not closed: killed)
    again = Board(tmp_path, {"seed": 0}, resume_step=5)
    for step in range(6, 9):
        again.log({"step": step, "rec": 100.0 + step, "beta_neg": 64.0})
    again.close()
    events = board(tmp_path)
    assert series(events, "loss/rec") == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 106), (7, 107), (8, 108)]
    assert series(events, "run/beta_neg") == [*((s, 256) for s in range(1, 6)), *((s, 64) for s in range(6, 9))]
    assert series(events, "events/text_summary") == [(4, [b"beta_neg 256 -> 64 (control.json)"])]
    assert [step for step, _ in series(events, "samples")] == [3]
    assert hparams_of(events) == ({"seed": 0, "beta_neg": "(4.0, 256.0)"}, None)  # the first start's; no end
