"""control.json parsing, the divergence guard and --beta-neg auto, driven by scripted signals."""
import math

import pytest

from control import AutoBetaNeg, ControlFile, DivergenceGuard, parse


@pytest.mark.parametrize("text,error", [
    ("{not json", "not valid JSON"),
    ("[64]", "expected an object"),
    ('{"beta_neg": -1}', "positive number"),
    ('{"beta_neg": 0}', "positive number"),
    ('{"beta_neg": "64"}', "positive number"),
    ('{"beta_neg": true}', "positive number"),
    ('{"beta_neg": NaN}', "positive number"),
    ('{"beta_neg": Infinity}', "positive number"),
    ('{"beta_nag": 64}', "unknown key"),
])
def test_parse_rejects_bad_content(text, error):
    with pytest.raises(ValueError, match=error):
        parse(text)


def test_parse_accepts_numbers():
    assert parse('{"beta_neg": 64}') == {"beta_neg": 64.0}
    assert parse('{"beta_neg": 0.5}') == {"beta_neg": 0.5}
    assert parse("{}") == {}


def test_a_control_file_caught_empty_while_written_is_read_later_without_a_warning(tmp_path):
    """`echo '{...}' > control.json` empties the file before writing it; a poll in between must not warn."""
    warnings = []
    control = ControlFile(tmp_path / "control.json", log=warnings.append)
    for text, expected in (('{"beta_neg": 64}', {"beta_neg": 64.0}), ("", None), ("  \n", None),
                           ('{"beta_neg": 64}', None), ("", None), ("{not json", None), ("", None), ("{not json", None),
                           ('{"beta_neg": 32}', {"beta_neg": 32.0})):
        control.path.write_text(text)
        assert control.poll() == expected, text
    assert len(warnings) == 1 and "not valid JSON" in warnings[0]  # each version once; the empty file never


def row(rec, diff_kl=-10.0, exp_elbo_f=1e-4, **extra):
    return {"rec": rec, "diff_kl": diff_kl, "exp_elbo_f": exp_elbo_f, "kl_real": 5.0, **extra}


def test_guard_flags_non_finite_and_exploding_rows():
    g = DivergenceGuard(window=20)
    for i in range(10):
        assert g.check(row(0.02 - 0.0005 * i)) is None
    assert "not finite" in g.check(row(math.nan))
    assert "not finite" in g.check(row(0.02, kl_real=math.inf))
    assert "rec error 0.5 exploded" in g.check(row(0.5))
    assert g.check(row(0.1)) is None  # 5x the median is not an explosion


def test_guard_flags_a_kl_that_jumps_by_orders_of_magnitude_though_finite():
    """The full preset's first steps on photographs once logged kl_real 131, 572, 2,923, then 2,236,720: finite, and
    a divergence. A KL that grows several times over while the codes learn is not one."""
    g = DivergenceGuard()
    for kl in (131.0, 200.0, 300.0, 450.0, 572.0, 900.0, 2923.0):
        assert g.check(row(0.02, kl_real=kl)) is None
    assert "kl_real 2.24e+06 exploded (100x above its recent median)" in g.check(row(0.02, kl_real=2_236_720.0))
    restored = DivergenceGuard()
    restored.load_state_dict(g.state_dict())
    assert restored.check(row(0.02, kl_real=2_236_720.0)) is not None
    former = DivergenceGuard()  # a checkpoint from before kl_real was watched: its rec errors only
    former.load_state_dict({"recent": [0.02] * 6, "recoveries": [40]})
    assert "exploded" in former.check(row(0.5)) and former.check(row(0.02, kl_real=1e6)) is None


def test_guard_counts_recoveries_in_a_window():
    g = DivergenceGuard(max_recoveries=3, recovery_window=300)
    assert not any(g.recovered(s) for s in (100, 500, 900, 1300))  # far apart: fine
    assert not g.recovered(1310) and not g.recovered(1320)
    assert g.recovered(1330)  # the 4th within 300 steps


def feed(auto, rows, beta_neg):
    changes = []
    for r in rows:
        change = auto.update(r, beta_neg)
        if change:
            beta_neg = change[0]
            auto.hold()
            changes.append(beta_neg)
    return beta_neg, changes


def test_auto_lowers_while_stable_and_fakes_are_easy():
    auto = AutoBetaNeg(low=4, high=256, window=10)
    falling = [row(0.05 * 0.99 ** i) for i in range(200)]
    beta_neg, changes = feed(auto, falling, 256.0)
    assert changes[:3] == [128.0, 64.0, 32.0] and beta_neg >= 4
    assert feed(AutoBetaNeg(low=4, high=256, window=10), falling, 256.0)[1] == changes  # deterministic
    assert min(feed(AutoBetaNeg(low=16, window=5), falling, 256.0)[1]) == 16  # the lower bound holds


def test_auto_keeps_beta_neg_when_fakes_are_not_easy():
    auto = AutoBetaNeg(window=10)
    hard = [row(0.05 * 0.99 ** i, diff_kl=5.0, exp_elbo_f=0.2) for i in range(100)]
    assert feed(auto, hard, 64.0) == (64.0, [])


def test_auto_raises_on_collapse():
    auto = AutoBetaNeg(low=4, high=256, window=10)
    hard = dict(diff_kl=5.0, exp_elbo_f=0.2)  # fakes not easy: no reason to lower
    rows = [row(0.02, **hard) for _ in range(20)] + [row(0.05, **hard) for _ in range(10)]
    assert feed(auto, rows, 16.0) == (32.0, [32.0])
    beta_neg, _ = feed(auto, [row(0.2) for _ in range(10)], 256.0)
    assert beta_neg == 256.0  # the upper bound holds


def test_auto_state_round_trip():
    a, b = AutoBetaNeg(window=10), AutoBetaNeg(window=10)
    rows = [row(0.05 * 0.99 ** i) for i in range(37)]
    feed(a, rows[:25], 256.0)
    b.load_state_dict(a.state_dict())
    assert feed(a, rows[25:], 64.0) == feed(b, rows[25:], 64.0)
