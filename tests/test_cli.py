"""Impossible arguments of train.py, test.py, dataset.py and finish.py: each is refused in one line on stderr with a
non-zero exit, without a traceback, and those that can be are refused before any work (no run folder made)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dataset
import finish
import train
from conftest import ROOT, load_test_script

map_script = load_test_script()
MAINS = {"train.py": train.main, "test.py": map_script.main, "dataset.py": dataset.main, "finish.py": finish.main}

# script, arguments, what the one line says; in train.py's arguments RUN is a run folder that must not be
# made (the argument is refused before any work), LATE one that may be (the error comes from the work itself)
CASES = [
    ("train.py", "--z-dim 0 --out RUN", "--z-dim must be at least 1, got 0"),
    ("train.py", "--z-dim -5 --out RUN", "--z-dim must be at least 1, got -5"),
    ("train.py", "--epochs 0 --out RUN", "--epochs must be at least 1"),
    ("train.py", "--epochs ten --out RUN", "argument --epochs: invalid int value: 'ten'"),
    ("train.py", "--batch-size 0 --out RUN", "--batch-size must be at least 1"),
    ("train.py", "--lr 0 --out RUN", "--lr must be a positive number"),
    ("train.py", "--lr -1 --out RUN", "--lr must be a positive number"),
    ("train.py", "--lr nan --out RUN", "--lr must be a positive number, got nan"),
    ("train.py", "--beta-kl -1 --out RUN", "--beta-kl must be 0 or a positive number"),
    ("train.py", "--beta-rec 0 --out RUN", "--beta-rec must be a positive number"),
    ("train.py", "--beta-neg 0 --out RUN", "expected a positive number, START:END or auto"),
    ("train.py", "--beta-neg-min 8 --beta-neg-max 4 --out RUN", "need 0 < --beta-neg-min <= --beta-neg-max"),
    ("train.py", "--method vae --beta-neg auto --out RUN", "which --method vae does not have"),
    ("train.py", "--ema-decay 1.5 --out RUN", "--ema-decay must be between 0 and 1"),
    ("train.py", "--gamma-r -1 --out RUN", "--gamma-r must be 0 or a positive number"),
    ("train.py", "--feature-weight -1 --out RUN", "--feature-weight must be 0 or a positive number"),
    ("train.py", "--contrast-weight nan --out RUN", "--contrast-weight must be 0 or a positive number"),
    ("train.py", "--fakes prior+prior --out RUN", "--fakes takes sources among prior, mix, arc, fitted, each once"),
    ("train.py", "--rec-loss mse --feature-weight 4 --out RUN", "not of --rec-loss mse"),
    ("train.py", "--lr-drop-epoch -1 --out RUN", "--lr-drop-epoch must be at least 1"),
    ("train.py", "--max-steps 0 --out RUN", "--max-steps must be at least 1"),
    ("train.py", "--vae-epochs -1 --out RUN", "--vae-epochs must be at least 0"),
    ("train.py", "--c-epochs 0 --out RUN", "--c-epochs must be at least 1"),
    ("train.py", "--preset huge --out RUN", "argument --preset: invalid choice: 'huge'"),
    ("train.py", "--device tpu --out RUN", "--device tpu: not a device torch knows"),
    ("train.py", "--data TWELVE --device cuda:7 --out RUN", "--device cuda:7"),
    ("train.py", "--out FILE", "is a file; give a folder for the run"),
    ("train.py", "--out UNDER_FILE", "UNDER_FILE: FILE is a file; give a folder for the run"),
    ("train.py", "--finish-steps -1 --out RUN", "--finish-steps must be at least 0, got -1"),
    ("train.py", "--finish-weight -1 --out RUN", "--finish-weight must be 0 or a positive number"),
    ("train.py", "--finish-steps 0 --finish-weight 40 --out RUN", "which --finish-steps 0 leaves out"),
    ("train.py", "--official --finish-weight 40 --out RUN", "which --finish-steps 0 leaves out"),
    ("train.py", "--data MISSING --out RUN", "MISSING does not exist"),
    ("train.py", "--data FILE --out RUN", "FILE is not a folder but a file"),
    ("train.py", "--resume --out RUN", "nothing to resume: RUN/checkpoint.pt does not exist"),
    ("train.py", "--resume --overwrite --out RUN", "give one of them"),
    ("train.py", "--data EMPTY --out LATE", "no images"),
    ("train.py", "--data TWELVE --batch-size 20 --out LATE", "fewer than the 20 needed"),
    ("test.py", "--model MISSING", "--model MISSING does not exist"),
    ("test.py", "--batch-size 0", "--batch-size must be at least 1"),
    ("test.py", "--device tpu", "--device tpu: not a device torch knows"),
    ("test.py", "--out FILE", "is a file; give a folder for the figures"),
    ("test.py", "--out UNDER_FILE", "UNDER_FILE: FILE is a file; give a folder for the figures"),  # (was a traceback,
    ("test.py", "--out UNDER_FILE/map.png", "FILE is a file; give a folder for the figures"),  # after all the work)
    ("test.py", "--data MISSING", "MISSING does not exist"),
    ("test.py", "--heldout FILE", "FILE is not a folder but a file; pass --heldout DIR"),
    ("test.py", "--seed -1", "--seed must be between 0 and 2**32 - 1"),
    ("test.py", "--drawn 1", "--drawn must be at least 2"),
    ("test.py", "--method umap", "argument --method: invalid choice: 'umap'"),
    ("dataset.py", "", "nothing to do"),
    ("dataset.py", "--make-demo RUN --count 0", "--count must be at least 1"),
    ("dataset.py", "--make-demo RUN --seed -1", "--seed must be at least 0"),
    ("dataset.py", "--make-demo FILE", "a file of that name exists"),
    ("dataset.py", "--make-demo TWELVE", "the folder holds 12 files the demo set would mix with (img_00.png"),
    ("dataset.py", "--contact-sheet MISSING sheet.png", "MISSING does not exist"),
    ("finish.py", "--out RUN", "the following arguments are required: --model"),
    ("finish.py", "--model MISSING --out RUN", "--model MISSING does not exist"),
    ("finish.py", "--model SHIPPED --out SHIPPED --overwrite", "--out SHIPPED is --model"),
    ("finish.py", "--model SHIPPED --out FILE", "--out FILE exists; give another file, or --overwrite"),
    ("finish.py", "--model SHIPPED --out UNDER_FILE/x.pt", "UNDER_FILE/x.pt: FILE is a file; give a file in a folder"),
    ("finish.py", "--model SHIPPED --out RUN --steps 0", "--steps must be at least 1, got 0"),
    ("finish.py", "--model SHIPPED --out RUN --batch-size 0", "--batch-size must be at least 1"),
    ("finish.py", "--model SHIPPED --out RUN --contrast-weight -1", "--contrast-weight must be 0 or a positive"),
    ("finish.py", "--model SHIPPED --out RUN --lr nan", "--lr must be a positive number, got nan"),
    ("finish.py", "--model SHIPPED --out RUN --seed -1", "--seed must be between 0 and 2**63 - 1"),
    ("finish.py", "--model SHIPPED --out RUN --data MISSING", "MISSING does not exist"),
    ("finish.py", "--model SHIPPED --out RUN --device tpu", "--device tpu: not a device torch knows"),
]


@pytest.fixture
def paths(tmp_path, images12, monkeypatch):
    monkeypatch.chdir(ROOT)  # the defaults (data/fantasy, saves/fantasy/model.pt) are relative to it
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("a file")
    return {"RUN": str(tmp_path / "run"), "LATE": str(tmp_path / "late"), "UNDER_FILE": str(tmp_path / "file.txt/x"),
            "FILE": str(tmp_path / "file.txt"),
            "MISSING": str(tmp_path / "missing"), "EMPTY": str(tmp_path / "empty"), "TWELVE": str(images12),
            "SHIPPED": "saves/fantasy/model.pt"}


def one_line(text, message, code):
    assert code not in (0, None), text
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text
    assert text.startswith("error: ") and message in text, text


@pytest.mark.parametrize("script,argv,message", CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_impossible_argument_is_one_line(script, argv, message, paths, capsys):
    argv = [re.sub("[A-Z_]+", lambda name: paths.get(name[0], name[0]), a) for a in argv.split()]
    for name, path in paths.items():
        message = message.replace(name, path)
    try:
        code = MAINS[script](argv)
    except SystemExit as exit:
        code = exit.code
    one_line(capsys.readouterr().err, message, code)
    assert not Path(paths["RUN"]).exists()  # refused before any work


@pytest.mark.parametrize("script,argv,message", [
    ("train.py", "--z-dim -5", "--z-dim must be at least 1, got -5"),  # was a RuntimeError's traceback
    ("test.py", "--model missing.pt", "--model missing.pt does not exist"),
    ("dataset.py", "--make-demo README.md", "a file of that name exists"),
])
def test_as_a_command_it_is_one_line_on_stderr(script, argv, message):
    result = subprocess.run([sys.executable, script, *argv.split()], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    one_line(result.stderr, message, result.returncode)
    assert not result.stdout
