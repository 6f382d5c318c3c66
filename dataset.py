"""Images for training: a folder decoded once into memory, and the built-in demo set.

    python dataset.py --make-demo runs/more_places --count 16 --seed 1  # 16 other places, into a new folder
    python dataset.py --contact-sheet data/fantasy imgs/dataset.png     # the contact sheet in docs/TRAINING.md

`python dataset.py --make-demo data/fantasy` writes the demo set again, pixel for pixel (about 15 s).

`load_folder` survives what real folders hold: every file that cannot be used, and every file of
another type, is skipped with its reason, reported once in one line. `ImageBatches` keeps the images
on the training device as uint8 and does the shuffling and the random horizontal flips there.
"""
import argparse
import errno
import os
import stat
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cli import Parser

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
BACKGROUND = (128, 128, 128)  # transparent pixels are composited on neutral grey
MAX_PIXELS = 64_000_000  # larger images are refused as decompression bombs (PIL warns at 89 M)
NAMED = 20  # skipped files named in the report; the rest are counted


class DatasetError(Exception):
    """A problem with the user's folder, reported as one line without a traceback."""


def find_images(folder, others=None):
    """Image files under folder, recursively, sorted for determinism; files of other types are appended
    to the list others when one is given.

    Symbolic links are followed, but each real folder and file is taken once: a link loop ends, and a
    second link to the same image adds no duplicate.
    """
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back up the tree, or a second link to the same folder
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            real = os.path.realpath(path)
            if path.suffix.lower() not in EXTENSIONS:
                if others is not None:
                    others.append(path)
            elif real not in seen:
                seen.add(real)
                found.append(path)
    return found


def check_folder(folder, flag="--data"):
    """Raise a DatasetError unless folder is an existing folder (before any work is done on it)."""
    folder = Path(folder)
    if not folder.exists():
        raise DatasetError(f"image folder {folder} does not exist; pass {flag} DIR "
                           f"(or make the demo set there: python dataset.py --make-demo {folder})")
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} is not a folder but a file; pass {flag} DIR")


def listed(entries):
    """Up to NAMED entries joined by commas, and how many more there are."""
    more = f" and {len(entries) - NAMED} more" if len(entries) > NAMED else ""
    return ", ".join(entries[:NAMED]) + more


def _to_rgb(img):
    """RGB from any mode PIL gives for these formats: 16-bit grey scaled down, transparency composited."""
    if img.mode.startswith("I"):  # 16-bit grey PNG ("I;16", or "I" in older Pillow): convert() would clip at 255
        a = np.rint(np.asarray(img, dtype=np.float64) / 257)  # always, even if no value exceeds 255 (a dark image)
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:  # alpha, a palette entry or a colour key
        flat = Image.new("RGBA", img.size, BACKGROUND + (255,))
        img = Image.alpha_composite(flat, img.convert("RGBA"))
    return img.convert("RGB")


def load_image(path, size):
    """One image as a (size, size, 3) uint8 array: EXIF orientation applied, shorter side resized, centre crop.

    Returns (array, upscaled). Raises an exception with a short reason when the file cannot be used.
    """
    with Image.open(path) as img:
        img.seek(0)  # animated GIF, PNG or WebP: the first frame
        if img.width * img.height > MAX_PIXELS:  # the header's claim, checked before anything is decoded
            raise ValueError(f"too large ({img.width}x{img.height}), refused as a decompression bomb")
        img.draft("RGB", (size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale, both sides still >= size
        img = _to_rgb(ImageOps.exif_transpose(img))
        upscaled = min(img.size) < size
        factor = min(img.size) // (3 * size)
        if factor > 1:  # much larger: a cheap box reduction first, then the precise resize
            img = img.reduce(factor)
        img = ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS)
        return np.asarray(img, dtype=np.uint8).copy(), upscaled


def _reason(err):
    """A few words on why a file was skipped: no path, no traceback."""
    if isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "too large, refused as a decompression bomb"  # PIL's own limits, met in Image.open
    if isinstance(err, PermissionError):
        return "not readable"
    if isinstance(err, OSError) and err.errno in (errno.ENOENT, errno.ELOOP):
        return "broken link"  # dangling, or a loop
    if isinstance(err, UnidentifiedImageError):
        return "not an image"
    text = str(err).split("\n")[0]
    if "truncated" in text.lower() or isinstance(err, (SyntaxError, EOFError)):
        return "truncated or corrupt"
    return text[:80] or type(err).__name__


def load_folder(folder, size, min_images=1, log=print):
    """All usable images of folder as a uint8 tensor (N, 3, size, size), plus their paths."""
    folder = Path(folder)
    check_folder(folder)
    others = []
    paths = find_images(folder, others)
    names = sorted(str(p.relative_to(folder)) for p in others)
    if not paths:
        held = f" (only {len(others)} files of other types: {listed(names)})" if others else ""
        raise DatasetError(f"no images (jpg, jpeg, png, webp, bmp, gif) in {folder}{held}; pass --data DIR")
    arrays, kept, small = [], [], []
    skipped = [f"{name} (not an image file type)" for name in names]
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL's 89 M pixel warning: refuse
        for p in paths:
            try:
                st = p.stat()  # follows links: a dangling one or a loop fails here
                if not stat.S_ISREG(st.st_mode):
                    raise ValueError("not a regular file")  # a named pipe would block Image.open forever
                if st.st_size == 0:
                    raise ValueError("empty file")
                a, upscaled = load_image(p, size)
            except Exception as err:  # PIL's decoders raise many types on bad data; one file must not stop the run
                skipped.append(f"{p.relative_to(folder)} ({_reason(err)})")
                continue
            arrays.append(a)
            kept.append(p)
            if upscaled:
                small.append(p.relative_to(folder))
    line = f"loaded {len(kept)} images from {folder}"
    if skipped:
        line += f", skipped {len(skipped)}: " + listed(sorted(skipped))
    log(line)
    if small:
        log(f"warning: {len(small)} images smaller than {size} px were upscaled (e.g. {small[0]})")
    need = max(min_images, 1)  # at least one: np.stack needs it
    if len(kept) < need:
        raise DatasetError(f"{folder} has {len(kept)} usable images, fewer than the {need} needed "
                           f"(the batch size); add images or lower --batch-size")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S) uint8
    return images, kept


class ImageBatches:
    """Batches of one epoch from images held on the device as uint8, shuffled and flipped there.

    The order comes from `sampler` (a DistributedSampler: each process gets its own share, the same
    permutation for a given seed and epoch), the flips from `generator`, so a run can be replayed.
    """

    def __init__(self, images, batch_size, sampler, generator, memory_format=torch.contiguous_format):
        self.images, self.batch_size, self.sampler = images, batch_size, sampler
        self.generator, self.memory_format = generator, memory_format

    def __len__(self):
        return len(self.sampler) // self.batch_size  # the last incomplete batch is dropped (BatchNorm)

    def epoch(self, epoch, skip=0):
        """The batches of one epoch as float tensors in [0, 1], starting after `skip` batches."""
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler), dtype=torch.long, device=self.images.device)
        for b in range(skip, len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images[idx].float().div_(255)
            flip = torch.rand(len(idx), 1, 1, 1, generator=self.generator, device=x.device) < 0.5
            x = torch.where(flip, x.flip(-1), x)
            yield x.contiguous(memory_format=self.memory_format)


def main(argv=None):
    p = Parser(prog="dataset.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-demo", metavar="DIR", help="write the procedural demo images to DIR, a new or empty "
                   "folder (or one that holds only the files it writes: they are regenerated)")
    p.add_argument("--count", type=int, default=80, help="number of demo images (default 80, 10 per family)")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo images (default 0)")
    p.add_argument("--contact-sheet", nargs=2, metavar=("DIR", "PNG"), help="a labelled sheet of DIR's images")
    args = p.parse_args(argv)
    if not (args.make_demo or args.contact_sheet):
        p.error("nothing to do: pass --make-demo DIR or --contact-sheet DIR PNG")
    if args.count < 1:
        p.error(f"--count must be at least 1, got {args.count}")
    if args.seed < 0:
        p.error(f"--seed must be at least 0, got {args.seed}")
    import fantasy
    if args.make_demo:
        folder = Path(args.make_demo)
        if folder.exists() and not folder.is_dir():
            p.error(f"--make-demo {folder}: a file of that name exists; give a folder")
        writes = {f"{fantasy.FAMILIES[k % len(fantasy.FAMILIES)]}_{k // len(fantasy.FAMILIES):02d}.png"
                  for k in range(args.count)}  # fantasy.make_demo's file names
        others = sorted(q.name for q in folder.iterdir() if q.name not in writes) if folder.is_dir() else []
        if others:
            p.error(f"--make-demo {folder}: the folder holds {len(others)} files the demo set would mix with "
                    f"({listed(others)}); give a new or empty folder")
    if args.contact_sheet:
        folder, png = args.contact_sheet
        try:
            check_folder(folder, "--contact-sheet")
        except DatasetError as err:
            p.error(str(err))
        if Path(png).is_dir():
            p.error(f"--contact-sheet {folder} {png}: {png} is a folder; give the name of a PNG file")
    if args.make_demo:
        paths = fantasy.make_demo(args.make_demo, count=args.count, seed=args.seed)
        print(f"wrote {len(paths)} images to {args.make_demo}")
    if args.contact_sheet:
        paths = find_images(folder)
        if not paths:
            p.error(f"--contact-sheet {folder}: no images in it")
        fantasy.contact_sheet(paths, png)
        print(f"wrote {png}")


if __name__ == "__main__":
    sys.exit(main())
