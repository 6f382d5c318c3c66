"""beta_neg while a run goes on: by hand through RUN_DIR/control.json, automatically with
--beta-neg auto, and raised after a divergence.

    echo '{"beta_neg": 64}' > runs/fantasy/control.json

The training loop polls the file when it logs; a new valid value applies from the next step and wins
over the automatic controller.
"""
import json
import math
import statistics
from pathlib import Path

KEYS = {"beta_neg"}


class ControlFile:
    """Watches a JSON file of settings; reports content that is not valid once and ignores it."""

    def __init__(self, path, log=print):
        self.path, self.log = Path(path), log
        self.last_text = None  # the content last seen, valid or not: each version is handled once

    def poll(self):
        """New settings {key: value} if the file changed to valid content, else None."""
        try:
            text = self.path.read_text()
        except (FileNotFoundError, IsADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as err:
            text = f"<unreadable: {err}>"
        if not text.strip():  # caught between `echo > control.json` emptying the file and writing it: read it later
            return None
        if text == self.last_text:
            return None
        self.last_text = text
        try:
            settings = parse(text)
        except ValueError as err:
            self.log(f"warning: ignoring {self.path}: {err}")
            return None
        return settings or None


def parse(text):
    """{"beta_neg": positive number} -> dict; raises ValueError saying what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError('expected an object such as {"beta_neg": 64}')
    unknown = set(data) - KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; known: {sorted(KEYS)}")
    value = data.get("beta_neg")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not value > 0 or value == float("inf")):
        raise ValueError(f"beta_neg must be a positive number, got {value!r}")
    return {k: float(v) for k, v in data.items()}


class DivergenceGuard:
    """Tells when a logged row means the run diverged, and when recoveries come too often to go on.

    Diverged: a value that is not finite, or a watched term that jumps by orders of magnitude above its recent
    median although finite (the reconstruction error 10x, kl_real 100x: the KL of real images may grow several
    times over while the codes learn, but not a hundredfold between two logs)."""

    WATCHED = {"rec": 10.0, "kl_real": 100.0}  # term -> the factor above its recent median that is a divergence

    def __init__(self, window=20, max_recoveries=3, recovery_window=300):
        self.window = window  # logged rows whose median a term is held against
        self.max_recoveries, self.recovery_window = max_recoveries, recovery_window  # in steps
        self.recent, self.recoveries = {k: [] for k in self.WATCHED}, []

    def check(self, row):
        """None when the row is healthy, else the reason it is not."""
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            return f"{', '.join(bad)} not finite"
        for k, factor in self.WATCHED.items():
            recent = self.recent[k]
            if k in row and len(recent) >= 5 and row[k] > factor * statistics.median(recent):
                name = "rec error" if k == "rec" else k
                return f"{name} {row[k]:.3g} exploded ({factor:g}x above its recent median)"
        for k in self.WATCHED:
            if k in row:
                self.recent[k] = (self.recent[k] + [row[k]])[-self.window:]
        return None

    def recovered(self, step):
        """Count a recovery; True when there were too many within recovery_window steps."""
        self.recoveries = [s for s in self.recoveries if s > step - self.recovery_window] + [step]
        return len(self.recoveries) > self.max_recoveries

    def state_dict(self):
        return {"recent": {k: list(v) for k, v in self.recent.items()}, "recoveries": list(self.recoveries)}

    def load_state_dict(self, state):
        recent = state["recent"]  # a list of rec errors in checkpoints from before kl_real was watched
        self.recent = {k: list(recent.get(k, [])) for k in self.WATCHED} if isinstance(recent, dict) else \
            {**{k: [] for k in self.WATCHED}, "rec": list(recent)}
        self.recoveries = list(state["recoveries"])


class AutoBetaNeg:
    """--beta-neg auto: moves beta_neg as the original author did by hand, within [low, high].

    Signals, one value per logged row: rec (error per pixel), diff_kl (kl_fake - kl_real), exp_elbo_f.
    Every `window` rows at most (a cooldown after each change, by hand or automatic) it compares the
    median rec of the last window with the one before and with the best so far:
      - collapse: median rec above `collapse` x the best median so far  -> beta_neg x 2;
      - stable: median rec not above the previous window's (2 % slack), and the encoder tells fakes
        apart too easily: median diff_kl < 0 or median expELBO_f < `separated`  -> beta_neg / 2.
    Recoveries from divergence raise beta_neg x 2 in every mode (see DivergenceGuard).
    """

    def __init__(self, low=4.0, high=256.0, window=20, collapse=1.5, separated=1e-3):
        self.low, self.high, self.window = low, high, window
        self.collapse, self.separated = collapse, separated
        self.rows, self.best, self.previous = [], math.inf, None

    def hold(self):
        """Start a new cooldown (after any change of beta_neg)."""
        self.rows, self.previous = [], None

    def update(self, row, beta_neg):
        """The new beta_neg and why, or None to keep it."""
        self.rows.append({k: row[k] for k in ("rec", "diff_kl", "exp_elbo_f")})
        if len(self.rows) < self.window:
            return None
        window, self.rows = self.rows, []

        def med(k):
            return statistics.median(r[k] for r in window)

        rec, previous = med("rec"), self.previous
        self.previous, self.best = rec, min(self.best, rec)
        if rec > self.collapse * self.best and beta_neg < self.high:
            why = f"auto: rec error {rec:.4g} > {self.collapse:g}x its best {self.best:.4g}"
            return min(self.high, 2 * beta_neg), why
        separated = med("diff_kl") < 0 or med("exp_elbo_f") < self.separated
        if previous is not None and rec <= 1.02 * previous and separated and beta_neg > self.low:
            return max(self.low, beta_neg / 2), (f"auto: stable (rec {rec:.4g}), fakes easy to tell apart "
                                                 f"(diff_kl {med('diff_kl'):.3g}, expELBO_f {med('exp_elbo_f'):.2g})")
        return None

    def state_dict(self):
        return {"rows": list(self.rows), "best": self.best, "previous": self.previous}

    def load_state_dict(self, state):
        self.rows, self.best, self.previous = list(state["rows"]), state["best"], state["previous"]
