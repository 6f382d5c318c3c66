"""torchrun with two CPU processes (gloo): identical parameters on both ranks, also after the finishing, one
checkpoint, control.json."""
import json
import os
import subprocess
import sys

import pytest
import torch

from checkpoint import safe_load
from conftest import ROOT, board, series

SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import torch, distributed, train
args, given = train.parse_args({argv!r})
trainer = train.train(args, given)
torch.save({{"params": dict(trainer.model.named_parameters()), "beta_neg": trainer.hp.beta_neg,
            "step": trainer.step}}, f"{{args.out}}/rank{{distributed.rank()}}.pt")
distributed.cleanup()
"""


def torchrun(tmp_path, argv):
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT.format(root=str(ROOT), argv=argv))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_processes_train_identically_and_rank0_saves(tmp_path):
    from conftest import write_images
    data = write_images(tmp_path / "data", 24)
    run = tmp_path / "run"
    common = ["--data", str(data), "--preset", "tiny", "--device", "cpu", "--out", str(run), "--log-every", "1",
              "--epochs", "3", "--finish-steps", "3"]
    torchrun(tmp_path, [*common, "--max-steps", "2"])
    assert safe_load(run / "checkpoint.pt")["step"] == 2  # 24 images, 2 ranks x batch 6: 2 steps per epoch
    (run / "control.json").write_text(json.dumps({"beta_neg": 32}))
    torchrun(tmp_path, [*common, "--resume"])
    ranks = [torch.load(run / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["step"] == ranks[1]["step"] == 6 + 3  # the epochs', then the finishing's
    assert ranks[0]["beta_neg"] == ranks[1]["beta_neg"] == 32  # the change reached both ranks
    for k, v in ranks[0]["params"].items():
        assert torch.equal(v, ranks[1]["params"][k]), k
    assert sorted(p.name for p in run.glob("*.pt")) == ["checkpoint.prev.pt", "checkpoint.pt", "model.pt",
                                                       "rank0.pt", "rank1.pt"]
    state = safe_load(run / "checkpoint.pt")
    assert state["step"] == 9 and state["finish"]["step"] == 3 and state["beta_neg"] == 32
    assert len(list(run.glob("events.out.tfevents.*"))) == 2  # rank 0's of each launch: rank 1 writes none
    assert [step for step, _ in series(board(run), "loss/rec")] == list(range(1, 10))
    for k, v in ranks[0]["params"].items():
        assert torch.equal(v, state["model"][k]), k
    refused = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                              str(ROOT / "train.py"), *common], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert refused.returncode != 0 and f"error: {run} holds a run" in refused.stderr  # rank 0's word, on every rank


@pytest.mark.parametrize("kind", ["head", "net"])
def test_two_processes_train_the_acai_critic_and_let_it_idle(tmp_path, kind):
    """The critic (a head on the encoder or a network of its own) idles in the plain VAE epochs and under --acai 0;
    under DistributedDataParallel those steps must not wait for its gradients, and the game's steps must reduce
    them."""
    from conftest import write_images
    data = write_images(tmp_path / "data", 24)
    run = tmp_path / "run"
    common = ["--data", str(data), "--preset", "tiny", "--device", "cpu", "--out", str(run), "--finish-steps", "0"]
    critic = []
    for argv in (["--epochs", "2", "--acai", "0.5", "--critic", kind], ["--epochs", "3", "--acai", "0", "--resume"]):
        torchrun(tmp_path, [*common, "--vae-epochs", "1", *argv])  # a VAE epoch first, then the game
        ranks = [torch.load(run / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
        for k, v in ranks[0]["params"].items():
            assert torch.equal(v, ranks[1]["params"][k]), k
        critic.append(ranks[0]["params"][f"encoder.critic{'.head' * (kind == 'net')}.weight"])
    assert critic[0].abs().sum() > 0  # it starts at zero: the game's epoch trained it
    assert torch.equal(critic[1], critic[0])  # --acai 0: idle again
