"""TensorBoard for this project (`tensorboard --logdir runs`): the event files train.py writes into a run folder,
and the codes test.py writes for TensorBoard's projector.

A run's event files hold every term of history.csv, at the steps it logs them, in the groups of GROUPS; each sample
grid (rows: real, reconstruction, sample); the events of history.csv as text; and the run's settings as hparams,
which TensorBoard's HPARAMS tab sets beside the last value of each term, with the run's status once it ends.
"""
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from latent import tile

EVENTS = "events.out.tfevents.*"  # the names of event files
# TensorBoard groups the charts by the part of a tag before its "/"
GROUPS = {"loss": "rec loss_e loss_d exp_elbo_r exp_elbo_f dist_e dist_d critic acai loss_finish",
          "kl": "kl_real kl_rec kl_fake diff_kl",
          "decoder": "grad_rec grad_adv sat_rec sat_fake", "run": "beta_neg c epoch img_per_s"}
TAGS = {name: f"{group}/{name}" for group, names in GROUPS.items() for name in names.split()}


class Board:
    """The event files of one run, in its folder (train.py's rank 0 writes them). A resumed run adds a file that
    begins with TensorBoard's mark of a restart at the step after its checkpoint's: readers drop what the files
    before it hold from that step on (logged after the checkpoint, as History drops it from history.csv), so
    that each step is shown once."""

    def __init__(self, folder, settings, resume_step=None):
        first = 0 if resume_step is None else resume_step + 1
        _after_newest(folder)
        # purge_step writes the restart mark; the first start needs one too, since readers take the first
        # mark of a run for its start and purge at the later ones only
        self.writer = SummaryWriter(folder, purge_step=first, flush_secs=10)
        _, start, self.end_info = hparams(_plain(settings), {})
        # the settings of a resumed run are those it started with: readers keep the first of a tag's metadata
        self.writer.file_writer.add_summary(start, first)

    def log(self, row):
        """A row of history.csv: its terms at its step, its event as text. A row of an event alone (a new
        beta_neg, which the next logged row carries) gives the text only: no term has a step twice."""
        if "rec" in row:
            for name, value in row.items():
                if name in TAGS:
                    self.writer.add_scalar(TAGS[name], value, row["step"])
        if row.get("event"):
            self.writer.add_text("events", row["event"], row["step"])

    def grid(self, step, *rows):
        """A sample grid at its step: rows of images (n, 3, S, S) (real, reconstruction, sample) in [0, 1]."""
        self.writer.add_image("samples", tile(torch.cat(rows).clamp(0, 1), nrow=len(rows[0])), step)

    def flush(self):
        """Everything logged so far onto the disk (train.py does this before each checkpoint: after a kill -9
        the files hold every step up to the checkpoint --resume goes on from)."""
        self.writer.flush()

    def end(self, step):
        """The run has reached its end: its status in the HPARAMS tab."""
        self.writer.file_writer.add_summary(self.end_info, step)
        self.writer.flush()

    def close(self):
        self.writer.close()


def _after_newest(folder):
    """Readers take a run's event files in the order of their names, which begin with the second each was made
    (then the host and the process): wait until the second of the newest is over, so that a new file comes last."""
    seconds = [int(p.name.split(".")[3]) for p in Path(folder).glob(EVENTS)]
    time.sleep(max(0.0, max(seconds, default=0) + 1 - time.time()))


def _plain(settings):
    """Settings as hparams take them: numbers and strings; a flag's True, a --beta-neg START:END or a list as
    their text; the unset ones left out."""
    return {k: v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else str(v)
            for k, v in settings.items() if v is not None}


def write_projector(folder, codes, images, names, families=None, side=64):
    """The codes (N, z_dim) of images (N, 3, S, S) in [0, 1] for TensorBoard's projector, into folder (made anew:
    each write would add its codes to those there): each point labelled with its image's name and, given them,
    its family, and drawn as a side x side thumbnail. Returns the folder."""
    shutil.rmtree(folder, ignore_errors=True)
    labels, header = (names, None) if families is None else ([[f, n] for f, n in zip(families, names)],
                                                             ["family", "image"])
    thumbs = F.interpolate(images, size=(side, side), mode="area")
    with SummaryWriter(folder) as w:
        w.add_embedding(codes, labels, thumbs, tag="codes", metadata_header=header)
    return Path(folder)
