"""gpu_check.py, the one command a person with a GPU runs, goes through every step on the CPU too; among them
bench.py, which runs end to end and whose equality check holds (speed itself is measured by bench.py, not tested)."""
import json
import sys

import gpu_check

BENCH_KEYS = {"device", "preset", "reference_img_per_s", "fast_img_per_s", "speedup", "max_rel_diff",
              "gflops_per_step", "achieved_gflops", "peak_gflops", "peak_mem_mb", "loop_img_per_s"}


def test_gpu_check_runs_every_step_and_prints_one_summary(tmp_path, images12, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # its five commands inherit it: tiny work runs faster on one thread
    assert gpu_check.main(["--device", "cpu", "--tiny", "--data", str(images12), "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ok"] and summary["device"] == "cpu"
    for name in ("bench_tiny", "train", "test", "test_shipped", "torchrun"):  # (--tiny: both presets tiny, one bench)
        assert summary[name]["rc"] == 0 and summary[name]["wall_s"] > 0, name
    bench = summary["bench_tiny"]["json"]  # bench.py's own summary, carried over
    assert BENCH_KEYS <= set(bench)
    assert bench["max_rel_diff"] < 1e-9  # float64: the reference and the fast step have the same mathematics
    fp32 = bench.get("max_rel_diff_as_timed_fp32", bench["max_rel_diff_as_timed"])  # without bf16 autocast
    assert fp32 < 1e-2  # float32, other memory layout: rounding, amplified by Adam
    assert bench["max_rel_diff_as_timed"] < 0.5  # under bf16 autocast (where native): 8-bit mantissas
    assert bench["gamma_r_1e-8_rel_diff"] < 1e-5  # the seed's gamma_r is below float32 resolution
    assert 0 < bench["gflops_per_step"] < 10 and bench["peak_gflops"] > 0
    assert bench["loop_img_per_s"] > 0 and bench["sample_grid_s"] > 0 and bench["save_s"] > 0
    assert summary["train"]["img_per_s"] > 0 and summary["train"]["steps"] == 2 * 2 + 3  # epochs, then finishing
    assert not summary["train"]["stopped_at_budget"]
    assert summary["test"]["json"]["images"] == 12
    shipped, own = summary["compare"]["test_shipped"], summary["compare"]["test"]
    assert set(own) == set(shipped) >= {"psnr"}  # the same measures, side by side
    assert (tmp_path / "ddp" / "checkpoint.pt").is_file()


def test_a_run_past_its_budget_is_stopped_saved_and_measured(tmp_path, images12, capsys, monkeypatch):
    """The user's run stopped at the budget, as Ctrl-C stops it: saved where it got, its model measured."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    summary = {}
    argv = [sys.executable, "train.py", "--data", str(images12), "--out", str(tmp_path / "run"), "--preset", "tiny",
            "--epochs", "1000"]
    result = gpu_check.step("train", argv, 120, summary, tmp_path, budget=20)
    assert result["rc"] == gpu_check.INTERRUPTED and result["wall_s"] < 60
    assert 0 < gpu_check.steps_reached(tmp_path / "run") < 2000 and (tmp_path / "run" / "model.pt").is_file()
