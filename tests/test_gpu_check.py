"""gpu_check.py, the one command a person with a GPU runs, goes through every step on the CPU too."""
import json

import gpu_check


def test_gpu_check_runs_every_step_and_prints_one_summary(tmp_path, images12, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # its five commands inherit it: tiny work runs faster on one thread
    assert gpu_check.main(["--device", "cpu", "--tiny", "--data", str(images12), "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ok"] and summary["device"] == "cpu"
    for name in ("bench_small", "bench_full", "train", "test", "torchrun"):
        assert summary[name]["rc"] == 0 and summary[name]["wall_s"] > 0, name
    assert summary["bench_small"]["json"]["max_rel_diff"] < 1e-9  # bench's own summary, carried over
    assert summary["train"]["img_per_s"] > 0 and summary["train"]["epochs"] == 2
    assert summary["test"]["json"]["images"] == 12
    assert (tmp_path / "ddp" / "checkpoint.pt").is_file()
