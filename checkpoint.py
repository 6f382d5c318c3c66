"""Safe checkpoints: atomic writes with a checksum, one loading path that never runs pickled code.

A run directory holds `checkpoint.pt` (the whole training state, for --resume), `checkpoint.prev.pt`
(the one before) and `model.pt` (encoder, decoder and config: what test.py and the notebook load).
Every file a user hands us goes through `safe_load`: anything that cannot be used (missing, empty,
truncated, damaged, a text file, a file of another program, contents that no longer match the checksum
written with them) raises a CheckpointError whose one-line message names the file and the reason in
plain words. Only a file that really names a callable (a crafted pickle) is "refused"; it is never
unpickled.
"""
import hashlib
import os
import pickle
import pickletools
import re
from pathlib import Path

import torch

from models import build_model

MODEL_FORMAT = "as-introvae-model/1"
TRAINING_KEYS = {"config": dict, "args": dict, "epoch": int, "step": int, "beta_neg": float, "model": dict,
                 "ema": dict, "optimizer_e": dict, "optimizer_d": dict, "rng": dict}
OPTIONAL_KEYS = {"control", "schedule", "finish"}  # (absent from checkpoints of earlier versions)
# Written by earlier versions and ignored: the learning rate is derived from the epoch and the arguments.
FORMER_KEYS = {"scheduler_e", "scheduler_d"}


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file."""


def previous(path):
    path = Path(path)
    return path.with_name(path.stem + ".prev" + path.suffix)


def digest(obj):
    """A hash of the contents (every tensor's dtype, shape and bytes, every plain value), independent of the
    file's layout: a flipped bit in the data changes it, a file rewritten with the same contents does not."""
    h = hashlib.blake2b(digest_size=16)

    def feed(o):
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous().reshape(-1)
            h.update(f"tensor {t.dtype} {tuple(o.shape)};".encode())
            h.update(t.view(torch.uint8).numpy())
        elif isinstance(o, dict):
            h.update(f"dict {len(o)};".encode())
            for k, v in o.items():
                feed(k)
                feed(v)
        elif isinstance(o, (list, tuple)):
            h.update(f"{type(o).__name__} {len(o)};".encode())
            for v in o:
                feed(v)
        else:  # int, float, str, bool, None: repr round-trips them exactly
            h.update(f"{type(o).__name__} {o!r};".encode())

    feed(obj)
    return h.hexdigest()


def save_atomic(obj, path, keep_previous=True):
    """Write obj and its checksum next to path, flush it to disk, then rename: path is never a partial file.

    With keep_previous the file it replaces becomes path's `.prev` copy, so a crash between the two
    renames still leaves a good checkpoint for `load_with_fallback`.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({**obj, "checksum": digest(obj)}, f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            os.replace(path, previous(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def safe_load(path, map_location="cpu"):
    """The dict saved in path: tensors and plain containers only (weights_only), its checksum verified."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} {'is not a file' if path.exists() else 'does not exist'}")
    try:
        with open(path, "rb") as f:
            head = f.read(4096)  # to tell a text file, a zip and a pickle apart in the message
    except OSError as err:
        raise CheckpointError(f"{path} cannot be read ({err.strerror or err})") from None
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types on files it did not write (KeyError, IndexError, ...)
        wanted = asked_for(err, head)
        if wanted:
            raise CheckpointError(f"{path} was refused: it asks for {wanted}, which a checkpoint never holds "
                                  f"(loading it could run code), and it is never unpickled") from None
        raise CheckpointError(f"{path} is damaged or is not a checkpoint ({what_it_is(err, head)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint of this project (it holds a {type(state).__name__})")
    checksum = state.pop("checksum", None)  # (absent from files of earlier versions)
    if checksum is not None and checksum != digest(state):
        raise CheckpointError(f"{path} is damaged: its contents no longer match the checksum written with them")
    return state


def asked_for(err, head):
    """What a pickle that names callables asks for, or None: from torch's refusal, else read from the
    file's opcodes (pickletools parses them without executing anything)."""
    found = re.search(r"GLOBAL (\S+)", str(err))
    if found:
        return found.group(1)
    if not isinstance(err, pickle.UnpicklingError) or not head.startswith(b"\x80"):  # not a pickle at all
        return None
    strings, names = [], []
    try:
        for op, arg, _ in pickletools.genops(head):
            if isinstance(arg, str):
                strings.append(arg)
            if op.name == "GLOBAL":
                names.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(".".join(strings[-2:]))
    except Exception:  # a damaged or cut pickle: what was read up to there
        pass
    return ", ".join(names) or None


def what_it_is(err, head):
    """A few plain words on a file torch could not read."""
    if not head:
        return "it is empty"
    if not head.strip(b"\0"):
        return "it holds only zero bytes"
    if head.startswith(b"PK\x03\x04"):  # torch's zip format, cut short or damaged
        return "a truncated or damaged PyTorch file: " + str(err).splitlines()[0].split(". ")[0][:120]
    text = head.decode("utf-8", errors="replace")[:-1]  # (the 4096 bytes may end inside a character)
    if all(c.isprintable() and c != "\ufffd" or c in "\t\n\r" for c in text):
        return "it is a text file"
    return "not a file PyTorch wrote"


def check_training_state(state, path):
    """state when it is a whole training checkpoint that restores into the model its config describes."""
    bad = [k for k, kind in TRAINING_KEYS.items() if not isinstance(state.get(k), kind)
           and not (kind is float and isinstance(state.get(k), int))]
    unknown = set(state) - set(TRAINING_KEYS) - OPTIONAL_KEYS - FORMER_KEYS
    if bad or unknown:
        raise CheckpointError(f"{path} is not a whole training checkpoint of this project ("
                              + (f"missing or malformed: {', '.join(bad)}" if bad else
                                 f"unexpected entries: {', '.join(sorted(map(str, unknown)))}") + ")")
    model = model_of(state["config"], path)
    load_strict(model, state["model"], path)
    load_strict(model.decoder, state["ema"], path)
    finish = state.get("finish", {"step": 0, "optimizer": state["optimizer_d"]})  # the finishing's step and Adam
    if not isinstance(finish, dict) or not isinstance(finish.get("step"), int) or finish["step"] < 0:
        raise CheckpointError(f"{path} is not a whole training checkpoint of this project (malformed: finish)")
    for name, net, optimizer in (("optimizer_e", model.encoder, state["optimizer_e"]),
                                 ("optimizer_d", model.decoder, state["optimizer_d"]),
                                 ("the finishing's optimizer", model.decoder, finish.get("optimizer"))):
        try:
            torch.optim.Adam(net.parameters()).load_state_dict(optimizer)
        except Exception as err:  # the optimiser's own checks: groups, sizes, keys
            raise CheckpointError(f"{path}: {name} does not fit the model ({str(err).splitlines()[0][:200]})")
    if not isinstance(state["rng"].get("generator"), torch.Tensor):
        raise CheckpointError(f"{path} is not a whole training checkpoint of this project (malformed: rng)")
    return state


def load_with_fallback(path, log=print, check=check_training_state):
    """(state, file used): the state in path, or in its .prev copy when path cannot be used (check(state,
    path) raises CheckpointError for a state that loads but cannot be used)."""
    try:
        return check(safe_load(path), path), Path(path)
    except CheckpointError as err:
        prev = previous(path)
        if not prev.is_file():
            raise
        log(f"warning: {err}; falling back to the previous checkpoint {prev}")
        try:
            return check(safe_load(prev), prev), prev
        except CheckpointError as err_prev:
            raise CheckpointError(f"{err}, and so is the previous one: {err_prev}") from None


def model_of(config, path):
    try:
        return build_model(config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path} holds a model configuration this project cannot build ({err})") from None


def load_strict(module, state, source):
    """load_state_dict(strict=True), with a message naming the file and the parameters that differ."""
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"{source} does not match this model's architecture: {detail[:600]}") from None


def host(obj):
    """A copy of obj with every tensor copied to the host: what a write may read while the originals stay
    on their device (a background write: while training goes on changing them in place)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(host(v) for v in obj)
    return obj


def export_model(path, config, encoder, decoder, meta):
    """The model the other scripts load: the state dicts of the encoder and the decoder (or its moving average),
    and the config; no optimiser state."""
    save_atomic({"format": MODEL_FORMAT, "config": config, "encoder": encoder, "decoder": decoder, "meta": meta},
                path, keep_previous=False)


def load_exported(path, device="cpu"):
    """The contents of a file written by export_model (config, encoder, decoder, meta), checked."""
    state = safe_load(path, map_location=device)
    if state.get("format") != MODEL_FORMAT or not all(isinstance(state.get(k), dict)
                                                      for k in ("config", "encoder", "decoder")):
        hint = " (a training checkpoint: pass the model.pt beside it)" if "optimizer_e" in state else ""
        raise CheckpointError(f"{path} is not an exported model of this project{hint}")
    if not isinstance(state.get("meta"), dict):
        state["meta"] = {}
    return state


def load_model(path, device="cpu"):
    """An IntroVAE in eval mode from a file written by export_model."""
    state = load_exported(path, device)
    model = model_of(state["config"], path)
    load_strict(model.encoder, state["encoder"], path)
    load_strict(model.decoder, state["decoder"], path)
    model.meta = state["meta"]
    return model.to(device).eval()
