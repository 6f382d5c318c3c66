"""What a run leaves to look at: history.csv, losses.png and the sample grids."""
import csv
import math
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
from matplotlib.ticker import ScalarFormatter  # noqa: E402

from latent import grid_figure  # noqa: E402

COLUMNS = ["step", "epoch", "loss_e", "loss_d", "rec", "kl_real", "kl_fake", "kl_rec", "diff_kl", "exp_elbo_r",
           "exp_elbo_f", "dist_e", "dist_d", "critic", "acai", "grad_rec", "grad_adv", "sat_rec", "sat_fake", "beta_neg", "c",
           "loss_finish", "img_per_s", "event"]  # loss_finish: the finishing's loss, after the epochs; critic, acai:
#                                                  ACAI's terms of the encoder and the decoder (--acai)


class History:
    """RUN_DIR/history.csv: one row per logged step, appended as the run goes."""

    def __init__(self, path, resume_step=None):
        self.path = Path(path)
        if resume_step is None or not self.path.exists():
            self.path.write_text(",".join(COLUMNS) + "\n")
        else:  # rows written after the checkpoint we resume from would be replayed: drop them, and a
            # line cut short by a crash with them
            rows = [r for r in self.rows() if (r.get("step") or "").isdigit() and int(r["step"]) <= resume_step
                    and None not in r and None not in r.values()]
            self._rewrite(rows)

    def rows(self):
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows):
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS, lineterminator="\n")  # one line ending, as a new file's header
            w.writeheader()
            w.writerows(rows)

    def append(self, row):
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, COLUMNS, lineterminator="\n").writerow({k: _fmt(row.get(k, "")) for k in COLUMNS})


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_history(everything, png_path, title):
    """losses.png from the rows of history.csv: the signals a person reads to move beta_neg, against the step."""
    rows = [r for r in everything if r["rec"]]  # event rows carry no losses
    if not rows:
        return
    step = [int(r["step"]) for r in rows]

    def col(name):
        return [float(r[name]) if r.get(name) else math.nan for r in rows]  # (older files lack columns)

    fig, ax = plt.subplots(2, 4, figsize=(20, 7.5), constrained_layout=True)
    panels = [
        ("reconstruction error per pixel", ["rec"], "log"),
        ("KL of real, rec and fake", ["kl_real", "kl_rec", "kl_fake"], "log"),
        ("diff_kl = kl_fake - kl_real", ["diff_kl"], "symlog"),
        ("what drives the decoder: gradient norms", ["grad_rec", "grad_adv"], "log"),
        ("expELBO of rec and fake", ["exp_elbo_r", "exp_elbo_f"], "linear"),
        ("encoder and decoder losses; the finishing's", ["loss_e", "loss_d", "loss_finish"], "log"),
        ("posterior coordinates where tanh is flat (|x| > 3)", ["sat_rec", "sat_fake"], "linear"),
        ("beta_neg (left) and c (right)", ["beta_neg"], "log"),
    ]
    for a, (panel, names, scale) in zip(ax.flat, panels):
        for n in names:
            points = [(x, y) for x, y in zip(step, col(n)) if not math.isnan(y)]  # gradients: probed rows only
            if points:
                a.plot(*zip(*points), label=n, lw=1)
        a.set_title(panel)
        a.set_yscale(scale)
        a.set_xlabel("step")
        a.grid(alpha=0.3)
        if len(names) > 1 and a.lines:
            a.legend()
    ax[0, 2].axhline(0, color="k", lw=0.8)
    ax[1, 2].set_ylim(-0.02, 1.02)
    ax[1, 3].set_yscale("log", base=2)  # beta_neg is halved and doubled: read 256, 128, 64 off the axis
    ax[1, 3].yaxis.set_major_formatter(ScalarFormatter())
    ax[1, 3].set_ylabel("beta_neg", color="tab:blue")
    twin = ax[1, 3].twinx()
    twin.plot(step, col("c"), color="tab:orange", lw=1)
    twin.set_ylim(0, 1.05)
    twin.set_ylabel("c(t)")
    for r in everything:
        if r["event"]:
            for a in ax.flat:
                a.axvline(int(r["step"]), color="tab:red", lw=0.6, alpha=0.5)
    fig.suptitle(title)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def save_grid(path, real, rec, sample, title):
    """Rows: real | reconstruction | random sample, each (n, 3, S, S), clamped to [0, 1] for display."""
    fig = grid_figure(torch.cat([real, rec, sample]).clamp(0, 1), title, nrow=len(real))
    fig.savefig(path)
    plt.close(fig)
