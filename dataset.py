"""Images for training: a folder decoded once into memory, and the built-in demo set.

    python dataset.py --make-demo data/fantasy [--count 80] [--seed 0]   # regenerate the demo images
    python dataset.py --contact-sheet data/fantasy imgs/dataset.png      # the README's contact sheet

`load_folder` survives what real folders hold: every file that cannot be used is skipped with its
reason, reported once in one line. `ImageBatches` keeps the images on the training device as uint8
and does the shuffling and the random horizontal flips there.
"""
import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
BACKGROUND = (128, 128, 128)  # transparent pixels are composited on neutral grey
MAX_PIXELS = 64_000_000  # larger images are refused as decompression bombs (PIL warns at 89 M)


class DatasetError(Exception):
    """A problem with the user's folder, reported as one line without a traceback."""


def find_images(folder):
    """Image files under folder, recursively, following symbolic links once, sorted for determinism."""
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        found += [Path(root) / f for f in sorted(files) if Path(f).suffix.lower() in EXTENSIONS]
    return found


def _to_rgb(img):
    """RGB uint8 from any PIL mode: 16-bit scaled down, alpha composited, CMYK and palettes converted."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit (or 32-bit) grey: scale, do not clip
        a = np.asarray(img).astype(np.float64)
        a = a / 257.0 if a.max() > 255 else a
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        a = np.asarray(img)
        img = Image.fromarray(np.clip(a * (255 if a.max() <= 1 else 1), 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        flat = Image.new("RGBA", img.size, BACKGROUND + (255,))
        img = Image.alpha_composite(flat, img)
    return img.convert("RGB")


def load_image(path, size):
    """One image as a (size, size, 3) uint8 array: EXIF orientation applied, shorter side resized, centre crop.

    Returns (array, upscaled). Raises OSError/ValueError subclasses with a short reason.
    """
    with Image.open(path) as img:
        if img.width * img.height > MAX_PIXELS:
            raise ValueError(f"too large ({img.width}x{img.height}), refused as a decompression bomb")
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when the image is much larger
        img.seek(0)  # animated images: the first frame
        img = _to_rgb(ImageOps.exif_transpose(img))
        upscaled = min(img.size) < size
        factor = min(img.size) // (3 * size)
        if factor > 1:  # much larger: a cheap box reduction first, then the precise resize
            img = img.reduce(factor)
        img = ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS)
        return np.asarray(img, dtype=np.uint8).copy(), upscaled


def _reason(err):
    text = str(err).split("\n")[0]
    if isinstance(err, PermissionError):
        return "not readable"
    if "truncated" in text or isinstance(err, SyntaxError):
        return "truncated or corrupt"
    if "cannot identify image file" in text:
        return "empty file" if "0 bytes" in text else "not an image"
    return text[:80]


def load_folder(folder, size, min_images=1, log=print):
    """All usable images of folder as a uint8 tensor (N, 3, size, size), plus their paths."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist; pass --data DIR "
                           f"(or make the demo set: python dataset.py --make-demo {folder})")
    paths = find_images(folder)
    if not paths:
        raise DatasetError(f"no images (jpg, jpeg, png, webp, bmp, gif) in {folder}; pass --data DIR")
    arrays, kept, skipped, small = [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for p in paths:
            try:
                if p.stat().st_size == 0:
                    raise ValueError("empty file")
                a, upscaled = load_image(p, size)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
                    Image.DecompressionBombWarning) as err:
                skipped.append(f"{p.relative_to(folder)} ({_reason(err)})")
                continue
            arrays.append(a)
            kept.append(p)
            if upscaled:
                small.append(p.relative_to(folder))
    line = f"loaded {len(kept)} images from {folder}"
    if skipped:
        line += f", skipped {len(skipped)}: " + ", ".join(skipped)
    log(line)
    if small:
        log(f"warning: {len(small)} images smaller than {size} px were upscaled (e.g. {small[0]})")
    if len(kept) < min_images:
        raise DatasetError(f"{folder} has {len(kept)} usable images, fewer than the {min_images} needed "
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
        order = torch.tensor(list(self.sampler), device=self.images.device)
        for b in range(skip, len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images[idx].float().div_(255)
            flip = torch.rand(len(idx), 1, 1, 1, generator=self.generator, device=x.device) < 0.5
            x = torch.where(flip, x.flip(-1), x)
            yield x.contiguous(memory_format=self.memory_format)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-demo", metavar="DIR", help="write the procedural demo images to DIR")
    p.add_argument("--count", type=int, default=80, help="number of demo images (default 80, 10 per family)")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo images (default 0)")
    p.add_argument("--contact-sheet", nargs=2, metavar=("DIR", "PNG"), help="a labelled sheet of DIR's images")
    args = p.parse_args(argv)
    if not (args.make_demo or args.contact_sheet):
        p.error("nothing to do: pass --make-demo DIR or --contact-sheet DIR PNG")
    import fantasy
    if args.make_demo:
        paths = fantasy.make_demo(args.make_demo, count=args.count, seed=args.seed)
        print(f"wrote {len(paths)} images to {args.make_demo}")
    if args.contact_sheet:
        folder, png = args.contact_sheet
        fantasy.contact_sheet(find_images(folder), png)
        print(f"wrote {png}")


if __name__ == "__main__":
    sys.exit(main())
