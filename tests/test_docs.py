"""Every command of the README, of the scripts' --help and of the notebook, run as written, in that
order, on a fresh copy of the repository (a git repository of its own, so that `git status` can be
read after each command). Four things are changed, and only where needed: a training run that would
take minutes or hours stops after a few steps of the tiny preset (finish.py after two), test.py draws 16
samples of each law instead of 256 (decoding them at 256x256 was most of its minutes), the notebook
draws few frames, and `tensorboard`, a server that runs until it is stopped, reads the event files and
prints what it found in them instead (--inspect; tests/test_board.py starts the server).
`~/my_places` is a folder of twelve images in a home folder of the test's own. `python` is the interpreter that
runs the tests, also when its environment is not activated (`venv/bin/python -m pytest`).

After each command `git status` must be clean, except for files under a path the command names
(`python test.py --out imgs` may redraw imgs/, nothing else may)."""
import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import matplotlib

from conftest import ROOT, write_images

# commands the test does not run, and why
NOT_RUN = {
    "pip install -r requirements.txt": "the tests run where the requirements are installed",
    "python -m pytest": "the test suite itself",
    "torchrun --standalone --nproc_per_node=4 train.py": "needs 4 GPUs; tests/test_distributed.py runs train.py "
                                                         "under torchrun with two CPU processes",
}
FEW_FRAMES = "FRAMES=2 PATH_FRAMES=2 SAMPLES=8 "  # before a notebook command: the notebook draws less


def without_comment(line):
    return re.sub(r"\s+#\s.*$", "", line).strip()


def readme_commands(text):
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [without_comment(line) for line in lines if line.strip() and not line.startswith("#")]


def help_commands(script):
    doc = ast.get_docstring(ast.parse((ROOT / script).read_text()))
    return [without_comment(line) for line in doc.splitlines()
            if re.match(r"    (python|torchrun|echo|MODEL=|OUT=) ", line)]


def notebook_commands(path):
    cells = json.loads(path.read_text())["cells"]
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return re.findall(r"`([^`]*jupyter nbconvert[^`]*)`", text)


def commands():
    """(where, command) in the order a reader meets them, each command once."""
    found = [("README.md", c) for c in readme_commands((ROOT / "README.md").read_text())]
    scripts = ("train.py", "test.py", "dataset.py", "finish.py")
    found += [(f"{s} --help", c) for s in scripts for c in help_commands(s)]
    found += [("img_interpolation.ipynb", c) for c in notebook_commands(ROOT / "img_interpolation.ipynb")]
    seen, unique = set(), []
    for where, command in found:
        if command not in seen:
            seen.add(command)
            unique.append((where, command))
    return unique


def as_run(command):
    """The command as the test runs it: long training and finishing cut short, test.py and the notebook drawing
    few images, tensorboard reading its --logdir once instead of serving it."""
    if re.match(r"python train\.py\b", command):
        return command + f" --preset tiny --max-steps {4 if '--resume' in command else 2}"
    if re.match(r"python finish\.py\b", command):
        return command + " --steps 2"
    if re.match(r"python test\.py\b", command):
        return command + " --drawn 16"
    if "jupyter nbconvert" in command:
        return FEW_FRAMES + command
    if re.match(r"tensorboard\b", command):
        return command + " --inspect"
    return command


def git(sandbox, *args):
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], cwd=sandbox,
                          check=True, capture_output=True, text=True).stdout


def fresh_copy(sandbox, heldout):
    """What a clone of the repository holds (with the changes not yet committed), as a repository, and the held-out
    demo images (not tracked: test.py makes them on first use, 15 s)."""
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (sandbox / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, sandbox / name)
    shutil.copytree(heldout, sandbox / heldout.relative_to(ROOT))
    git(sandbox, "init", "-q")
    git(sandbox, "add", "-A")
    git(sandbox, "commit", "-q", "-m", "fresh copy")


def named(command, path):
    """Whether the command names path or a folder above it."""
    parts = path.split("/")
    return any("/".join(parts[:i]) in command for i in range(1, len(parts) + 1))


def this_python(folder):
    """A folder to put first on PATH: its `python` runs this interpreter, and the commands installed beside this
    interpreter (jupyter, tensorboard) come next. A script, not a link: a virtual environment's interpreter knows it
    is one from the path it was started by."""
    folder.mkdir()
    (folder / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (folder / "python").chmod(0o755)
    return os.pathsep.join([str(folder), os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def test_every_documented_command_runs_on_a_fresh_copy(tmp_path, demo_heldout):
    found = commands()
    assert len(found) >= 12 and notebook_commands(ROOT / "img_interpolation.ipynb")  # (the notebook's are the README's)
    sandbox, home = tmp_path / "repo", tmp_path / "home"
    fresh_copy(sandbox, demo_heldout)
    write_images(home / "my_places", 12)
    env = {**os.environ, "HOME": str(home), "MPLCONFIGDIR": matplotlib.get_configdir(),  # (its font cache)
           "OMP_NUM_THREADS": "1", "PATH": this_python(tmp_path / "bin")}  # one thread, as the other tests' commands: faster for tiny work on a busy CPU
    not_run = [c for _, c in found if any(c.startswith(prefix) for prefix in NOT_RUN)]
    assert len(not_run) == len(NOT_RUN)  # each reason is still needed
    for where, command in found:
        if command in not_run:
            continue
        result = subprocess.run(["bash", "-c", as_run(command)], cwd=sandbox, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, (where, command, result.stderr[-3000:])
        if command.startswith("tensorboard"):  # (--inspect exits with 0 also when it finds nothing)
            assert "Found event files in" in result.stdout, (where, command, result.stdout[-3000:])
        status = git(sandbox, "status", "--porcelain", "--untracked-files=all").splitlines()
        changed = [line[3:] for line in status]
        assert all(named(command, path) for path in changed), (where, command, changed)
        if changed:  # the next command is judged on its own changes
            git(sandbox, "add", "-A")
            git(sandbox, "commit", "-q", "-m", command)
