"""Safe checkpoints: atomic writes that keep the previous copy, loads that never run pickled code.

A run directory holds `checkpoint.pt` (the whole training state, for --resume), `checkpoint.prev.pt`
(the one before) and `model.pt` (encoder, EMA decoder and config: what test.py and the notebook load).
"""
import os
import pickle
import re
from pathlib import Path

import torch

from models import build_model

MODEL_FORMAT = "as-introvae-model/1"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file."""


def previous(path):
    path = Path(path)
    return path.with_name(path.stem + ".prev" + path.suffix)


def save_atomic(obj, path, keep_previous=True):
    """Write obj next to path, flush it to disk, then rename: path is never a partial file.

    With keep_previous the file it replaces becomes path's `.prev` copy, so a crash between the two
    renames still leaves a good checkpoint for `load_with_fallback`.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            os.replace(path, previous(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def safe_load(path, map_location="cpu"):
    """torch.load with weights_only=True: tensors and plain containers only, never arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        wanted = re.search(r"GLOBAL (\S+)", str(err))  # what the file asked to call or build
        raise CheckpointError(f"{path} was refused: it holds objects other than tensors and plain data "
                              f"({'it asks for ' + wanted.group(1) if wanted else 'possibly code'}), "
                              f"and it is never unpickled")
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0].split(". ")[0]  # PyTorch's first sentence, without its advice
        raise CheckpointError(f"{path} is corrupt or truncated ({reason})")


def load_with_fallback(path, map_location="cpu", log=print):
    """The state in path, or in its .prev copy when path is corrupt, truncated or missing."""
    try:
        return safe_load(path, map_location), Path(path)
    except CheckpointError as err:
        prev = previous(path)
        if "refused" in str(err) or not prev.is_file():
            raise
        log(f"warning: {err}; falling back to {prev}")
        return safe_load(prev, map_location), prev


def load_strict(module, state, source):
    """load_state_dict(strict=True), with a message naming the file and the parameters that differ."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"{source} does not match this model's architecture: {detail[:600]}")


def export_model(path, config, encoder, decoder, meta):
    """The model the other scripts load: encoder, (EMA) decoder and config; no optimiser state."""
    save_atomic({"format": MODEL_FORMAT, "config": config, "encoder": encoder.state_dict(),
                 "decoder": decoder.state_dict(), "meta": meta}, path, keep_previous=False)


def load_model(path, device="cpu"):
    """An IntroVAE in eval mode from a file written by export_model."""
    state = safe_load(path, map_location=device)
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        hint = " (a training checkpoint: pass the model.pt beside it)" if "optimizer_e" in state else ""
        raise CheckpointError(f"{path} is not an exported model of this project{hint}")
    model = build_model(state["config"])
    load_strict(model.encoder, state["encoder"], path)
    load_strict(model.decoder, state["decoder"], path)
    model.meta = state.get("meta", {})
    return model.to(device).eval()
