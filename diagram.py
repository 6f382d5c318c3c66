"""Draw the AS-IntroVAE training flow of docs/ALGORITHM.md, as the official code runs it (--official):
`python diagram.py` writes runs/diagram/as_introvae_flow.png; `python diagram.py --out imgs/as_introvae_flow.png`
redraws the shipped figure.

Matplotlib only (Agg). The canvas is 16 x 9 data units at 100 dpi, so one unit is 100 px and every
position in the layout table below can be nudged by eye. Formulas follow docs/ALGORITHM.md.
"""
import os

from cli import Parser

import numpy as np
import matplotlib

matplotlib.use("Agg")  # headless: the figure is only ever written to disk
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

parser = Parser(prog="diagram.py", description="Draw the AS-IntroVAE training flow of docs/ALGORITHM.md.")
parser.add_argument("--out", default=os.path.join("runs", "diagram", "as_introvae_flow.png"),
                    help="PNG to write (default %(default)s)")
OUT = parser.parse_args().out
ENC, DEC, GREY = "#2b6cb0", "#c05621", "#555555"  # colour = which loss updates a network
FILL = {"E": "#dbe9f7", "D": "#fbe3d2", "t": "#f4f4f4", "c": "#ffffff"}
plt.rcParams.update({"font.family": "STIXGeneral", "mathtext.fontset": "stix", "font.size": 12})

# Rows of the flow: generation (R1 real, R2 noise), introspection terms (R3), mixing (R4).
R1, R2, R3, R4 = 7.55, 6.15, 4.45, 3.05
MID, TALL = (R1 + R2) / 2, R1 - R2 + 0.8  # networks shared by both rows are drawn as tall boxes

# name: (centre x, centre y, width, height, kind, text); kind E/D = network updated by L_E/L_D
# (square box), t = tensor or term (rounded box), c = the c(t) box that holds a small plot.
NODES = {
    "x":    (0.85, R1, 1.2, 0.7, "t", "real $x$"),
    "E":    (2.32, R1, 0.9, 0.8, "E", "$E$"),
    "mu":   (3.99, R1, 1.6, 0.7, "t", r"$(\mu,\ \log\sigma^2)$"),
    "z":    (6.0, R1, 1.6, 0.7, "t", r"$z=\mu+\sigma\odot\epsilon$"),
    "n":    (6.0, R2, 1.6, 0.7, "t", r"$n\sim\mathcal{N}(0,I)$"),
    "D":    (7.75, MID, 0.9, TALL, "D", "$D$"),
    "xr":   (9.3, R1, 1.1, 0.7, "t", "$x_r$"),
    "xf":   (9.3, R2, 1.1, 0.7, "t", "$x_f$"),
    "E2":   (10.95, MID, 1.3, TALL, "E", "$E$\nsame net,\nas the\ndiscriminator"),
    "post": (12.9, MID, 1.8, TALL, "t", ""),  # two posteriors, written per row below
    "lkl":  (3.99, R3, 2.6, 0.7, "t", r"$\mathcal{L}_{kl}=\mathrm{KL}(\mu,\log\sigma^2\,\|\,\mathcal{N}(0,I))$"),
    "ema":  (7.75, R3, 2.0, 0.7, "t", r"$\bar{D}$: draws samples"),
    "kl":   (11.75, R3, 2.1, 0.7, "t", r"$\mathrm{KL}(q_r),\ \mathrm{KL}(q_f)$"),
    "as":   (14.45, R3, 2.5, 0.7, "t", r"$\tanh\ \rightarrow\ \mathrm{AS}(q_r, q_f)$"),
    "mix":  (12.4, R4, 2.7, 0.7, "t", r"$c\,\mathrm{KL} + (1-c)\,\mathrm{AS}$"),
    "ct":   (15.0, R4, 1.6, 1.25, "c", ""),
    "elbo": (7.2, R4, 2.9, 0.7, "t", r"$\mathrm{expELBO}_r,\ \mathrm{expELBO}_f$"),
}


def side(name, where, t=0.5):
    """A point on a node's edge: where in l/r/t/b, t = fraction along that edge (0 = bottom/left)."""
    cx, cy, w, h, _, _ = NODES[name]
    if where in "lr":
        return (cx - w / 2 if where == "l" else cx + w / 2, cy - h / 2 + t * h)
    return (cx - w / 2 + t * w, cy + h / 2 if where == "t" else cy - h / 2)


def box(name):
    cx, cy, w, h, kind, text = NODES[name]
    edge = {"E": ENC, "D": DEC}.get(kind, GREY)
    style = "square,pad=0" if kind in "ED" else "round,pad=0,rounding_size=0.15"
    ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle=style, fc=FILL[kind],
                                ec=edge, lw=2.0 if kind in "ED" else 1.1, zorder=2))
    if kind in "ED":  # network: big name, optional small caption under it
        name, _, caption = text.partition("\n")
        ax.text(cx, cy + (0.45 if caption else 0), name, ha="center", va="center", fontsize=16,
                color=edge, zorder=3)
        ax.text(cx, cy - 0.2, caption, ha="center", va="center", fontsize=11, color=edge, zorder=3)
    else:
        ax.text(cx, cy, text, ha="center", va="center", zorder=3, fontsize=12)


def arrow(a, b, label=None, color=GREY, ls="-", off=(0, 0.17), **kw):
    """Arrow between two points; the label sits beside its midpoint on a white patch."""
    ax.annotate("", xy=b, xytext=a, zorder=1, arrowprops=dict(
        arrowstyle="-|>", color=color, lw=1.4, ls=ls, mutation_scale=14, shrinkA=0, shrinkB=0, **kw))
    if label:
        ax.text((a[0] + b[0]) / 2 + off[0], (a[1] + b[1]) / 2 + off[1], label, ha="center",
                va="center", fontsize=10.5, color=color, zorder=4,
                bbox=dict(fc="white", ec="none", pad=1.0))


fig = plt.figure(figsize=(16, 9), dpi=100)
ax = fig.add_axes([0, 0, 1, 1])
ax.set_xlim(0, 16), ax.set_ylim(0, 9), ax.axis("off")
for name in NODES:
    box(name)

# Generation: encode-reparameterise-decode the real batch, decode noise into fakes.
arrow(side("x", "r"), side("E", "l"))
arrow(side("E", "r"), side("mu", "l"))
arrow(side("mu", "r"), side("z", "l"))
arrow(side("z", "r"), (side("D", "l")[0], R1))
arrow(side("n", "r"), (side("D", "l")[0], R2))
arrow((side("D", "r")[0], R1), side("xr", "l"))
arrow((side("D", "r")[0], R2), side("xf", "l"))
arrow(side("mu", "b"), side("lkl", "t"))
arrow(side("D", "b"), side("ema", "t"), "EMA copy\ndecay 0.999", ls="--", off=(0.6, 0))
# Introspection: the same encoder scores reconstructions and fakes.
arrow(side("xr", "r"), (side("E2", "l")[0], R1))
arrow(side("xf", "r"), (side("E2", "l")[0], R2))
arrow((side("E2", "r")[0], R1), (side("post", "l")[0], R1))
arrow((side("E2", "r")[0], R2), (side("post", "l")[0], R2))
ax.text(12.9, R1, r"$q_r:\ (\mu_r,\ \log\sigma_r^2)$", ha="center", va="center", zorder=3)
ax.text(12.9, R2, r"$q_f:\ (\mu_f,\ \log\sigma_f^2)$", ha="center", va="center", zorder=3)
arrow(side("post", "b", 0.3), side("kl", "t", 0.7), "per image", off=(-0.55, 0))
arrow(side("post", "b", 0.7), side("as", "t", 0.3), "batch vs batch", off=(0.75, 0))
arrow(side("kl", "b", 0.6), side("mix", "t", 0.35))
arrow(side("as", "b", 0.4), side("mix", "t", 0.75))
arrow(side("ct", "l"), side("mix", "r"), "$c$", off=(0, 0.15))
# The mixed adversarial term drives both players, with opposite goals.
arrow(side("mix", "l"), side("elbo", "r"), r"$\times\,\beta_{neg}$  (E: reject $x_r$, $x_f$)",
      ENC, off=(0, 0.2))
arrow(side("elbo", "b", 0.3), (side("elbo", "b", 0.3)[0], 2.1), color=ENC)
arrow(side("lkl", "b"), (NODES["lkl"][0], 2.1), color=ENC)
arrow(side("mix", "b"), (NODES["mix"][0], 2.1), r"$\times\,\frac{1}{2}\beta_{kl}$  (D: fool $E$)",
      DEC, off=(-0.95, 0))
# Reconstruction error compares x with x_r over the top of the real path.
ax.plot([0.85, 0.85, 9.3, 9.3], [R1 + 0.35, 8.55, 8.55, R1 + 0.35], color=GREY, lw=1.1, ls=":")
ax.text(5.1, 8.55, r"$\mathcal{L}_{rec}=R(x, x_r)$, in both $\mathcal{L}_E$ and $\mathcal{L}_D$",
        ha="center", va="center", fontsize=11.5, bbox=dict(fc="white", ec="none", pad=2))

# c(t) as a tiny plot: AS dominates early, KL late.
cx, cy, w, h, _, _ = NODES["ct"]
cax = fig.add_axes([(cx - w / 2 + 0.3) / 16, (cy - h / 2 + 0.25) / 9, (w - 0.45) / 16, (h - 0.6) / 9])
t = np.linspace(0, 1, 100)
cax.plot(t, np.minimum(1, np.tanh(5 * t)), color="black", lw=1.3)
cax.set_xticks([0, 1], ["0", "$T$"], fontsize=10), cax.set_yticks([0, 1], ["0", "1"], fontsize=10)
cax.tick_params(length=2, pad=1)
cax.set_title(r"$c(t)$: AS $\rightarrow$ KL", fontsize=10.5, pad=3)

# Legend: colour = which optimiser step updates the network.
for i, (col, fill, txt) in enumerate([(ENC, FILL["E"], r"updated by $\mathcal{L}_E$ (encoder step)"),
                                      (DEC, FILL["D"], r"updated by $\mathcal{L}_D$ (decoder step)"),
                                      (GREY, FILL["t"], "tensor / loss term")]):
    y = 3.95 - 0.42 * i
    ax.add_patch(FancyBboxPatch((0.3, y - 0.12), 0.4, 0.24, boxstyle="square,pad=0", fc=fill,
                                ec=col, lw=1.5 if i < 2 else 1.0))
    ax.text(0.85, y, txt, va="center", fontsize=11)

# Equation panel: one box per optimiser step, in the colour of the network it updates.
PANELS = [(0.25, ENC, FILL["E"], r"Encoder step: Adam on $E$  ($D$ frozen)", [
    r"$\mathcal{L}_E = s\,(\beta_{rec}\,\mathcal{L}_{rec} + \beta_{kl}\,\mathcal{L}_{kl})"
    r" + \frac{1}{4}\,(\mathrm{expELBO}_r + \mathrm{expELBO}_f)$",
    r"$\mathrm{expELBO}_{*} = \mathrm{mean}_i\ \exp(-2s\,[\beta_{rec}\,r_{*i}"
    r" + \beta_{neg}\,(c\,\mathrm{KL}_{*i} + (1-c)\,\mathrm{AS})])$",
    r"$r_{*i} = R(x_*, D(z_*))$ re-decoding error,  $s = 1/(3S^2)$,  $c(t) = \min(1, \tanh(5t/T))$"]),
          (8.15, DEC, FILL["D"], r"Decoder step: Adam on $D$  ($E$ frozen), then EMA", [
    r"$\mathcal{L}_D = s\,(\beta_{rec}\,\mathcal{L}_{rec} + \frac{1}{2}\beta_{kl}\,[c\,(K_r + K_f)"
    r" + (1-c)\,\mathrm{AS}] + \frac{1}{2}\gamma_r\beta_{rec}\,(\mathcal{L}_{rr} + \mathcal{L}_{fr}))$",
    r"$K_* = \mathrm{mean}_i\ \mathrm{KL}(\tanh\mu_*, \tanh\log\sigma^2_*)$",
    r"$\mathrm{AS} = \sum k(q_r,q_r) + \sum k(q_f,q_f) - 2\sum k(q_r,q_f)$  (all pairs and dims;"
    r" $k$ = Gaussian overlap)"])]
for x0, col, fill, title, lines in PANELS:
    ax.add_patch(FancyBboxPatch((x0, 0.2), 7.6, 1.9, boxstyle="round,pad=0,rounding_size=0.12",
                                fc=fill, ec=col, lw=1.8, alpha=0.6))
    ax.text(x0 + 0.2, 1.85, title, color=col, fontsize=12.5, weight="bold", va="center")
    for j, line in enumerate(lines):
        ax.text(x0 + 0.35, 1.4 - 0.42 * j, line, fontsize=12, va="center")

os.makedirs(os.path.dirname(OUT) or ".", exist_ok=True)
fig.savefig(OUT, dpi=100, facecolor="white")
print("wrote", OUT)
