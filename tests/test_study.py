"""study.py: one tiny configuration end to end, its row in results.jsonl and in the README's table."""
import study


def test_a_tiny_study_run_is_recorded_and_tabled(tmp_path, monkeypatch, images12, capsys):
    monkeypatch.setitem(study.STAGES, "tiny", (["--preset", "tiny", "--epochs", "2", "--data", str(images12),
                                                "--log-every", "1"], study.OFFICIAL_BASE))
    monkeypatch.setattr(study, "RESULTS", tmp_path / "results.jsonl")
    monkeypatch.setattr(study, "GRIDS", tmp_path / "grids")
    monkeypatch.setattr(study, "RUNS", tmp_path / "runs")
    assert study.main(["--stage", "tiny", "--configs", "rec1-kl0.1", "--seeds", "3", "--jobs", "1"]) == 0
    (row,) = study.done()
    assert row["config"] == "rec1-kl0.1" and row["seed"] == 3 and row["steps"] == 4  # 12 images, batch 6
    assert "--beta-rec 1 --beta-kl 0.1 --seed 3" in row["train"] and row["test"].startswith("python test.py")
    assert 0 < row["metrics"]["ssim"] <= 1 and row["signals"]["grad_rec"] > 0
    assert (tmp_path / "grids" / "tiny-rec1-kl0.1-s3.jpg").is_file()
    assert study.main(["--stage", "tiny", "--configs", "rec1-kl0.1", "--seeds", "3"]) == 0  # done: nothing to run
    assert len(study.done()) == 1
    table = study.table(study.done()).splitlines()
    assert len(table) == 3 and "`--beta-rec 1 --beta-kl 0.1`" in table[2] and "| 3 | 4 |" in table[2]
    (tmp_path / "kept.jsonl").write_text((tmp_path / "results.jsonl").read_text())
    (tmp_path / "results.jsonl").unlink()
    capsys.readouterr()
    assert study.main(["--table", "--results", str(tmp_path / "kept.jsonl")]) == 0  # a copy kept elsewhere
    assert "`--beta-rec 1 --beta-kl 0.1` | 3 | 4 |" in capsys.readouterr().out


def test_the_newness_table_averages_the_seeds_of_each_configuration():
    def metrics(z):
        sets = {s: {"pixels": {"z": z}, "features": {"z": 2 * z}} for s in study.NEW}
        return {"psnr": 25.0, "realism": {s: {"value": {"fd": 40.0 + z}} for s in ("reconstructions", *study.NEW)},
                "detail": {"reconstructions": {"grid": 1.5}}, "newness": sets}
    rows = [{"stage": "places", "config": "mix", "seed": s, "metrics": metrics(z)} for s, z in ((0, -1.0), (1, -3.0))]
    rows.append({"stage": "places", "config": "base", "seed": 0, "metrics": {"psnr": 20.0}})  # measured before newness
    lines = study.newness(rows).splitlines()
    assert len(lines) == 3 and "samples mix: FD / z px / z feat" in lines[0]
    assert lines[2].startswith("| places | `--fakes mix` | 2 | 25.00 | 38.0 | 1.50 | 38 / -2.0 / -4.0 |")
