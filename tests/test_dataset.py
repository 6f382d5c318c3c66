"""load_folder on the folders users really have: broken files, odd modes, links, odd names, bombs.

Every test builds its own files in tmp_path. Images are tiny and the target size is S, so the file runs fast.
"""
import errno
import io
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import dataset
from dataset import BACKGROUND, DatasetError, load_folder

S = 16  # target size
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def save(folder, name, img=None, data=None, **options):
    """Write one case file under folder (sub-folders made): a PIL image saved with options, or raw bytes."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if img is not None:
        img.save(path, **options)
    else:
        path.write_bytes(data)
    return path


def encoded(img, fmt, **options):
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def load(folder, size=S, **kw):
    """load_folder with its log lines collected; checks the shape and type of every image."""
    lines = []
    images, paths = load_folder(folder, size, log=lines.append, **kw)
    assert images.dtype == torch.uint8 and images.shape == (len(paths), 3, size, size)
    return images, paths, lines


def load_one(folder, name, img, **options):
    """Save one image, load the folder, return that image as an (S, S, 3) int array."""
    save(folder, name, img, **options)
    images, _, _ = load(folder)
    assert len(images) == 1
    return images[0].permute(1, 2, 0).numpy().astype(int)


def close(pixel, colour, tol=0):
    return np.abs(np.asarray(pixel) - np.asarray(colour)).max() <= tol


def halves(mode, left, right, size=S):
    """An image whose left half is `left` and right half `right` (colours in the image's mode)."""
    img = Image.new(mode, (size, size), left)
    img.paste(right, (size // 2, 0, size, size))
    return img


def thirds(w, h, colours=(RED, GREEN, BLUE)):
    """An RGB image cut in three bands of colour across its longer side."""
    a = np.zeros((h, w, 3), np.uint8)
    for i, c in enumerate(colours):
        if w >= h:
            a[:, i * w // 3:(i + 1) * w // 3] = c
        else:
            a[i * h // 3:(i + 1) * h // 3] = c
    return Image.fromarray(a)


def palette(*colours):
    img = Image.new("P", (S, S), 0)
    img.paste(1, (S // 2, 0, S, S))
    img.putpalette([v for c in colours for v in c])
    return img


def png_claiming(w, h):
    """A tiny PNG whose header claims w x h pixels: decoding it would fail as truncated."""
    data = bytearray(encoded(Image.new("L", (8, 8)), "PNG"))
    data[16:24] = struct.pack(">II", w, h)  # IHDR data starts after signature (8), length (4), type (4)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


NOISE = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), np.uint8))
PNG, JPEG = encoded(NOISE, "PNG"), encoded(NOISE, "JPEG")

# name, bytes, the reason load_folder gives
BAD_FILES = [
    ("cut.png", PNG[:len(PNG) // 2], "truncated or corrupt"),
    ("cut in header.png", PNG[:30], "not an image"),
    ("cut.jpg", JPEG[:len(JPEG) // 2], "truncated or corrupt"),
    ("cut in header.jpg", JPEG[:200], "truncated or corrupt"),
    ("random.webp", np.random.default_rng(1).bytes(3000), "not an image"),
    ("text.jpg", b"not a picture, a shopping list\n", "not an image"),
    ("empty.png", b"", "empty file"),
]
IGNORED = ["notes.txt", "Thumbs.db", ".DS_Store", "README"]


# --- broken files --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,data,reason", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_is_skipped_with_its_reason(tmp_path, name, data, reason):
    save(tmp_path, "good.png", NOISE)
    save(tmp_path, name, data=data)
    save(tmp_path, "notes.txt", data=b"other extensions are not images")
    _, paths, lines = load(tmp_path)
    assert [p.name for p in paths] == ["good.png"]
    assert lines == [f"loaded 1 images from {tmp_path}, skipped 2: "
                     + ", ".join(sorted([f"{name} ({reason})", "notes.txt (not an image file type)"]))]


def test_all_skips_reported_once_in_one_line(tmp_path):
    save(tmp_path, "good.png", NOISE)
    for name, data, _ in BAD_FILES:
        save(tmp_path, name, data=data)
    for name in IGNORED:
        save(tmp_path, name, data=b"x")
    _, paths, lines = load(tmp_path)
    assert len(paths) == 1 and len(lines) == 1
    head, listed = lines[0].split(": ", 1)
    assert head == f"loaded 1 images from {tmp_path}, skipped {len(BAD_FILES) + len(IGNORED)}"
    assert listed.split(", ") == sorted([f"{name} ({reason})" for name, _, reason in BAD_FILES]
                                        + [f"{name} (not an image file type)" for name in IGNORED])


def test_long_lists_of_skipped_files_are_cut_short(tmp_path):
    save(tmp_path, "good.png", NOISE)
    for i in range(dataset.NAMED + 5):
        save(tmp_path, f"notes_{i:02d}.txt", data=b"x")
    _, _, lines = load(tmp_path)
    assert lines[0].endswith(f"notes_{dataset.NAMED - 1:02d}.txt (not an image file type) and 5 more")
    assert lines[0].count("(not an image file type)") == dataset.NAMED


def test_unreadable_file_is_skipped(tmp_path, monkeypatch):
    save(tmp_path, "good.png", NOISE)
    locked = save(tmp_path, "locked.png", NOISE)
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root (CI) reads through chmod 000: refuse it as the kernel does for a user
        pil_open = Image.open

        def refuse_locked(fp, *args, **kwargs):
            if os.fspath(fp) == os.fspath(locked):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(fp))
            return pil_open(fp, *args, **kwargs)
        monkeypatch.setattr(dataset.Image, "open", refuse_locked)
    _, paths, lines = load(tmp_path)
    assert [p.name for p in paths] == ["good.png"]
    assert lines == [f"loaded 1 images from {tmp_path}, skipped 1: locked.png (not readable)"]


@pytest.mark.parametrize("w,h", [(9000, 9000), (10000, 9000), (20000, 20000)])
def test_decompression_bomb_refused_without_decoding(tmp_path, w, h):
    # 9000x9000 is over MAX_PIXELS; 10000x9000 also over PIL's warning and 20000x20000 over its error.
    # The data behind the header is 8x8 pixels: decoding would say "truncated", so the reason shows it was not.
    save(tmp_path, "good.png", NOISE)
    save(tmp_path, "bomb.png", data=png_claiming(w, h))
    _, paths, lines = load(tmp_path)
    assert [p.name for p in paths] == ["good.png"]
    assert "bomb.png (" in lines[0] and "decompression bomb" in lines[0]


def test_decompression_bomb_limit_is_max_pixels(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "MAX_PIXELS", 40 * 40)
    save(tmp_path, "small.png", NOISE)  # 48x48 = 2304 pixels
    save(tmp_path, "tiny.png", NOISE.resize((32, 32)))
    _, paths, lines = load(tmp_path)
    assert [p.name for p in paths] == ["tiny.png"]
    assert "small.png (too large (48x48), refused as a decompression bomb)" in lines[0]


# --- modes and formats ---------------------------------------------------------------------------------

def i16(*values):
    """A 16-bit grey PNG image ("I;16"), left half values[0], right half values[-1]."""
    a = np.full((S, S), values[0], np.uint16)
    a[:, S // 2:] = values[-1]
    return Image.fromarray(a)


GREY = BACKGROUND
# name, image, save options, expected colour of the left half, of the right half, tolerance
MODES = [
    ("L.png", halves("L", 30, 220), {}, (30,) * 3, (220,) * 3, 0),
    ("1-bit.png", halves("1", 0, 1), {}, (0,) * 3, WHITE, 0),
    ("RGBA.png", halves("RGBA", RED + (255,), BLUE + (0,)), {}, RED, GREY, 0),
    ("half alpha.png", halves("RGBA", WHITE + (255,), (0, 0, 0, 128)), {}, WHITE, (64,) * 3, 1),
    ("LA.png", halves("LA", (200, 255), (10, 0)), {}, (200,) * 3, GREY, 0),
    ("P.png", palette(RED, (10, 200, 30)), {}, RED, (10, 200, 30), 0),
    ("P transparent.png", palette(RED, BLUE), {"transparency": 1}, RED, GREY, 0),
    ("P transparent.gif", palette(RED, BLUE), {"transparency": 1}, RED, GREY, 0),
    ("RGB colour key.png", halves("RGB", RED, BLUE), {"transparency": BLUE}, RED, GREY, 0),
    ("16-bit.png", i16(0x8080, 0xFFFF), {}, (128,) * 3, WHITE, 0),  # no clipping to white
    ("16-bit mid.png", i16(0x8000, 0x4000), {}, (128,) * 3, (64,) * 3, 1),
    ("16-bit dark.png", i16(0x00FF), {}, (1,) * 3, (1,) * 3, 0),  # every value <= 255: still 16-bit, near black
    ("CMYK.jpg", halves("CMYK", (0, 255, 255, 0), (255, 0, 0, 0)), {"quality": 95}, RED, (0, 255, 255), 12),
]


@pytest.mark.parametrize("name,img,options,left,right,tol", MODES, ids=[m[0] for m in MODES])
def test_modes_become_rgb(tmp_path, name, img, options, left, right, tol):
    if name.startswith("16-bit"):  # the case really is a 16-bit file
        with Image.open(save(tmp_path / "check", "x.png", img)) as check:
            assert check.mode in ("I;16", "I")
    a = load_one(tmp_path / "data", name, img, **options)
    assert close(a[S // 2, 2], left, tol), a[S // 2, 2]
    assert close(a[S // 2, S - 3], right, tol), a[S // 2, S - 3]


@pytest.mark.parametrize("name", ["a.png", "a.jpg", "a.jpeg", "A.JPG", "a.webp", "a.bmp", "a.gif"])
def test_every_extension_loads(tmp_path, name):
    a = load_one(tmp_path, name, Image.new("RGB", (24, 20), (200, 60, 30)))
    assert close(a, (200, 60, 30), 8)


@pytest.mark.parametrize("orientation,marker_side", [(6, "right"), (8, "left")])
def test_exif_orientation_applied(tmp_path, orientation, marker_side):
    # 96x64 white with a red marker at the middle of its top edge. Orientation 6 means "rotate 90 degrees
    # clockwise to display": the top edge goes to the right. Orientation 8 rotates the other way.
    img = Image.new("RGB", (96, 64), WHITE)
    img.paste(RED, (32, 0, 64, 20))
    exif = img.getexif()
    exif[0x0112] = orientation
    a = load_one(tmp_path, "rotated.jpg", img, exif=exif, quality=95)
    # displayed 64x96 -> resized to 16x24 -> centre crop keeps rows 4..20: the marker is at mid-height
    left, right = a[S // 2, 1], a[S // 2, S - 2]
    assert close(left if marker_side == "left" else right, RED, 40)
    assert close(right if marker_side == "left" else left, WHITE, 40)


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (S, S), c) for c in (RED, BLUE)]
    a = load_one(tmp_path, "anim.gif", frames[0], save_all=True, append_images=frames[1:], duration=100)
    with Image.open(tmp_path / "anim.gif") as check:
        assert check.n_frames == 2
    assert close(a, RED)


# --- sizes ---------------------------------------------------------------------------------------------

def test_small_images_upscaled_with_one_warning(tmp_path):
    for i in range(3):
        save(tmp_path, f"small_{i}.png", NOISE.resize((10, 12)))
    save(tmp_path, "big.png", NOISE)
    images, paths, lines = load(tmp_path)
    assert len(paths) == 4
    assert lines[0] == f"loaded 4 images from {tmp_path}"
    warnings = [line for line in lines if line.startswith("warning")]
    assert len(warnings) == 1 and "3 images" in warnings[0]


def test_very_large_jpeg_decoded_reduced(tmp_path, monkeypatch):
    img = Image.new("RGB", (6000, 4000), RED)
    img.paste(BLUE, (3000, 0, 6000, 4000))
    save(tmp_path, "huge.jpg", img, quality=90)
    del img
    decoded = []
    to_rgb = dataset._to_rgb
    monkeypatch.setattr(dataset, "_to_rgb", lambda im: decoded.append(im.size) or to_rgb(im))
    images, _, _ = load(tmp_path)
    a = images[0].permute(1, 2, 0).numpy().astype(int)
    assert decoded == [(750, 500)]  # draft: decoded at 1/8 scale, 1.1 MB instead of 72 MB
    assert close(a[S // 2, 2], RED, 30) and close(a[S // 2, S - 3], BLUE, 30)


@pytest.mark.parametrize("w,h", [(150, 30), (30, 150), (4000, 20), (20, 4000)])
def test_shorter_side_resized_then_centre_crop(tmp_path, w, h):
    # red, green and blue thirds along the longer side: only the green middle survives a centre crop
    a = load_one(tmp_path, "bands.png", thirds(w, h))
    assert close(a, GREEN, 8), a.reshape(-1, 3).min(0)


# --- folders, links and names --------------------------------------------------------------------------

def test_nested_folders_and_odd_names(tmp_path):
    names = ["a/b/c/deep.png", "château de nuit.png", "日本.jpg", "with space/x y.PNG", "ünï/cödé.webp"]
    for name in names:
        save(tmp_path, name, NOISE)
    _, paths, lines = load(tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in paths) == sorted(names)
    assert lines == [f"loaded {len(names)} images from {tmp_path}"]


def test_symbolic_links(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    save(data, "real.png", NOISE)
    save(outside, "ext.png", NOISE)
    save(outside, "dir/in_dir.png", NOISE)
    (data / "link to file.png").symlink_to(outside / "ext.png")
    (data / "link to dir").symlink_to(outside / "dir")
    (data / "second link to dir").symlink_to(outside / "dir")  # the same folder again: no duplicates
    (data / "same as real.png").symlink_to(data / "real.png")  # the same file again: no duplicate
    (data / "loop").symlink_to(data)  # a folder loop: must not hang
    (data / "sub").mkdir()
    (data / "sub" / "up").symlink_to("..")
    (data / "self.png").symlink_to("self.png")  # a file link loop
    (data / "gone.png").symlink_to(outside / "deleted.png")  # a dangling link
    _, paths, lines = load(data)
    assert len(paths) == 3
    assert {p.resolve() for p in paths} == {data / "real.png", outside / "ext.png", outside / "dir/in_dir.png"}
    assert lines == [f"loaded 3 images from {data}, skipped 2: gone.png (broken link), self.png (broken link)"]


# --- user errors ---------------------------------------------------------------------------------------

def test_missing_folder(tmp_path):
    folder = tmp_path / "no such folder"
    with pytest.raises(DatasetError, match="does not exist") as e:
        load(folder)
    assert str(folder) in str(e.value) and "--data" in str(e.value)


def test_file_instead_of_folder(tmp_path):
    path = save(tmp_path, "img.png", NOISE)
    with pytest.raises(DatasetError, match="not a folder") as e:
        load(path)
    assert str(path) in str(e.value) and "--data" in str(e.value)


@pytest.mark.parametrize("contents", [[], IGNORED])
def test_empty_folder(tmp_path, contents):
    folder = tmp_path / "empty"
    folder.mkdir()
    for name in contents:
        save(folder, name, data=b"x")
    with pytest.raises(DatasetError, match="no images") as e:
        load(folder)
    assert str(folder) in str(e.value) and "--data" in str(e.value)
    assert all(name in str(e.value) for name in contents)  # what it does hold, named


def test_fewer_usable_images_than_needed(tmp_path):
    save(tmp_path, "good.png", NOISE)
    save(tmp_path, "bad.jpg", data=b"text")
    lines = []
    with pytest.raises(DatasetError) as e:
        load_folder(tmp_path, S, min_images=2, log=lines.append)
    msg = str(e.value)
    assert str(tmp_path) in msg and "1 usable" in msg and "add images" in msg and "--batch-size" in msg
    assert lines == [f"loaded 1 images from {tmp_path}, skipped 1: bad.jpg (not an image)"]  # why it fell short


def test_nothing_usable(tmp_path):
    save(tmp_path, "bad.jpg", data=b"text")
    with pytest.raises(DatasetError, match="0 usable images, fewer than the 1 needed"):
        load(tmp_path, min_images=0)


def test_named_pipe_is_skipped_not_waited_on(tmp_path):
    save(tmp_path, "good.png", NOISE)
    os.mkfifo(tmp_path / "pipe.png")  # opening it to read would block until a writer comes
    _, paths, lines = load(tmp_path)
    assert lines == [f"loaded 1 images from {tmp_path}, skipped 1: pipe.png (not a regular file)"]


def test_images_are_uint8_and_deterministic(tmp_path):
    for i, mode in enumerate(["RGB", "L", "RGBA", "P"]):
        save(tmp_path, f"{i}.png", NOISE.convert(mode).resize((40 + 10 * i, 30)))
    first, paths, _ = load(tmp_path)
    again, paths_again, _ = load(tmp_path)
    assert [p.name for p in paths] == ["0.png", "1.png", "2.png", "3.png"] == [p.name for p in paths_again]
    assert torch.equal(first, again) and first.is_contiguous()
