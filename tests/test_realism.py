"""The realism and detail measures: their properties, and that the shipped network sees blur, noise and grids."""
import math

import pytest
import torch
import torch.nn.functional as F

import realism
from conftest import ROOT
from dataset import load_folder


def test_detail_is_one_for_the_originals_and_sees_blur_and_noise():
    x = torch.rand(4, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    same = realism.detail(x, x)
    assert all(same[b] == pytest.approx(1.0) for b in realism.band_names()) and same["distance"] == pytest.approx(0)
    assert realism.detail(x[..., :32, :32], x[..., :32, :32])["2-5 px"] is None  # finer than 32 pixels can hold
    blurred = F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="bilinear", align_corners=False)
    ratios = [realism.detail(blurred, x)[b] for b in realism.band_names()]
    assert ratios[-1] < ratios[-2] < 1  # the finer the scale, the more blur removes
    smooth = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    noisy = (smooth + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert realism.detail(noisy, smooth)[realism.band_names()[-1]] > 1  # noise is too much fine structure
    assert realism.detail(noisy, smooth)["distance"] > 0


def test_grid_tells_lines_of_blocks_from_fine_detail():
    g = torch.Generator().manual_seed(0)
    smooth = F.interpolate(torch.rand(4, 3, 16, 16, generator=g), size=128, mode="bilinear", align_corners=False)
    x = (smooth + 0.05 * torch.rand(4, 3, 128, 128, generator=g)).clamp(0, 1)  # a little fine texture
    assert realism.detail(x, x)["grid"] == pytest.approx(1.0)
    sign = 1 - 2 * (torch.arange(128) % 2)  # +1, -1, ...: a period of 2 pixels
    lines = (x + 0.03 * sign[None, None, None, :]).clamp(0, 1)  # vertical lines, one pixel wide
    i = torch.arange(128, dtype=torch.float)
    diagonal = (x + 0.03 * torch.cos(2 * math.pi * (i[:, None] + i[None, :]) / 3)).clamp(0, 1)  # period 2.1 px
    fine = realism.band_names()[-1]
    assert realism.detail(lines, x)["grid"] > 10 and realism.detail(lines, x)[fine] > 1
    assert realism.detail(diagonal, x)[fine] > 1 and realism.detail(diagonal, x)["grid"] == pytest.approx(1, rel=0.2)
    assert realism.detail(smooth, x)["grid"] < 0.1  # blur removes it


def test_bright_points_are_stars_and_are_matched_where_they_are():
    g = torch.Generator().manual_seed(0)
    sky = F.interpolate(torch.rand(2, 3, 4, 4, generator=g) * 0.5, size=64, mode="bilinear", align_corners=False)
    stars = sky.clone()
    rows, cols = torch.randint(4, 60, (2, 2, 12), generator=g)
    for n in range(2):
        stars[n, :, rows[n], cols[n]] = 1.0
    assert realism.bright_points(sky).sum() == 0  # a smooth gradient has none
    found = realism.bright_points(stars)
    assert found[0, rows[0], cols[0]].all() and found.sum() <= 24  # each star once, nothing else
    assert realism.points(stars, stars) == pytest.approx({"count": 1, "placed": 1, "chance": 25 * 12 * 2 / 2 / 64 ** 2,
                                                          "drawn": 1}, abs=0.05)
    beside, elsewhere = sky.clone(), sky.clone()  # as many stars, a pixel off; far off (mirrored)
    for n in range(2):
        beside[n, :, rows[n], cols[n] + 1] = 1.0
        elsewhere[n, :, 63 - rows[n], 63 - cols[n]] = 1.0
    assert realism.points(beside, stars)["placed"] == 1 and realism.points(beside, stars)["drawn"] == 1
    moved = realism.points(elsewhere, stars)
    assert moved["count"] == pytest.approx(1, abs=0.1) and moved["placed"] < 0.3 and moved["drawn"] < 0.3
    assert realism.points(sky, stars) == {"count": 0, "placed": 0, "chance": pytest.approx(moved["chance"]),
                                          "drawn": 0}  # blur draws no star


def test_band_power_of_a_pure_wave_falls_in_its_band():
    s = 256
    xs = torch.arange(s, dtype=torch.float)
    for wavelength, band in ((64, 0), (30, 1), (14, 2), (7, 3), (3, 4)):
        wave = 0.5 + 0.4 * torch.cos(2 * math.pi * xs / wavelength)
        power = realism.band_power(realism.power_spectrum(wave.expand(1, 3, s, s)))[0]
        assert power.argmax().item() == band and power[band] > 0.9 * power.sum(), wavelength


def test_frechet_distance_and_kid_of_gaussian_sets():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 5, generator=g, dtype=torch.float64), torch.randn(400, 5, generator=g, dtype=torch.float64)
    assert realism.frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    shifted = b + torch.tensor([3.0, 0, 0, 0, 0], dtype=torch.float64)
    assert realism.frechet_distance(a, shifted) == pytest.approx(9, rel=0.15)  # ||mean difference||^2 = 9
    wide = torch.randn(400, 5, generator=g, dtype=torch.float64) * 2  # C = 4 I: Tr(I + 4I - 2 * 2I) = 5
    assert realism.frechet_distance(a, wide) == pytest.approx(5, rel=0.25)
    assert abs(realism.kid(a, b)) < 0.02 < realism.kid(a, shifted)  # unbiased: about 0 for the same law


def test_coverage_counts_the_families_assigned():
    probs = torch.zeros(5, 8)
    probs[[0, 1, 2, 3, 4], [0, 0, 3, 3, 7]] = torch.tensor([0.9, 0.5, 0.7, 0.7, 0.2])
    c = realism.coverage(probs)
    assert c["present"] == 3 and c["families"]["islands"] == 2 and c["confidence"] == pytest.approx(0.6)


@pytest.fixture(scope="module")
def halves():
    """The shipped feature network and the demo set split into two disjoint halves of 40 real images (5 per family)."""
    net = realism.load_net(ROOT / "saves" / "fantasy_features.pt")
    images, paths = load_folder(ROOT / "data" / "fantasy", 256)  # sorted: castle_00 ... volcano_09
    x = images.float() / 255
    family = torch.tensor([realism.fantasy.FAMILIES.index(p.stem[:-3]) for p in paths])
    return net, x[0::2], x[1::2], family[0::2]


def degrade(x, kind, level):
    if kind == "blur":  # shrunk to side / level and blown back up
        small = F.interpolate(x, scale_factor=1 / level, mode="area")
        return F.interpolate(small, size=x.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    if kind == "noise":
        return (x + level * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    grid = torch.zeros(x.shape[-2:])  # the texture of nearest-neighbour upsampling: a line every 4 pixels
    grid[::4, :] = grid[:, ::4] = 1
    return (x - level * grid).clamp(0, 1)


@pytest.mark.parametrize("kind,levels", [("blur", (2, 4, 8, 16)), ("noise", (0.02, 0.05, 0.1, 0.2)),
                                         ("grid", (0.03, 0.06, 0.12, 0.25))])
def test_the_distance_rises_steadily_with_each_degradation_above_its_floor(halves, kind, levels):
    net, a, b, _ = halves
    reference = realism.embed(net, b)[0]
    floor = realism.frechet_distance(realism.embed(net, a)[0], reference)
    fds = [realism.frechet_distance(realism.embed(net, degrade(a, kind, level))[0], reference) for level in levels]
    assert floor < fds[0] and all(x < y for x, y in zip(fds, fds[1:])), (floor, fds)


def test_the_network_tells_the_families_apart(halves):
    net, a, _, family = halves
    assert (realism.embed(net, a)[1].argmax(1) == family).float().mean() >= 0.95


def test_training_the_network_is_deterministic_and_its_file_loads_safely(tmp_path):
    training = realism.demo_images(realism.TRAIN_SEED, 1, log=print)  # one image of each family
    validation = realism.demo_images(realism.VALID_SEED, 1, log=print)
    nets = [realism.train(tmp_path / f"net{i}.pt", training, validation, epochs=1, batch_size=4, log=print)[0]
            for i in range(2)]
    for (name, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values()):
        assert torch.equal(a, b), name
    loaded = realism.load_net(tmp_path / "net0.pt")
    assert torch.equal(loaded.feature_std, nets[0].feature_std) and not loaded.training


def test_the_copying_test_tells_copies_from_new_images_and_the_frechet_distance_tells_mush(halves):
    """A copier (the training images with a little noise) lies far closer to its nearest training image than new real
    images do (z far below 0) in pixels and in features; more new real images lie as far (z near 0). Mush (blurred
    blends of two training images) lies farther than real images in the features (z above 0), and its Fréchet distance
    tells it apart. (In pixels blur sits close to every image it averages, so there mush is not new: the test is read
    in both spaces.)"""
    net, training, other, _ = halves  # 40 training images; 40 others: 20 new real images, 20 more
    new, more = other[0::2], other[1::2]
    copier = (training + 0.02 * torch.randn(training.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    mush = degrade((training + training.roll(1, 0)) / 2, "blur", 16)
    for points in (realism.pixels, lambda x: realism.embed(net, x)[0]):
        reference, train = points(new), points(training)
        assert realism.copying(points(copier), reference, train)["z"] < -5
        assert abs(realism.copying(points(more), reference, train)["z"]) < 2
    train_f = realism.embed(net, training)[0]
    assert realism.copying(realism.embed(net, mush)[0], realism.embed(net, new)[0], train_f)["z"] > 2
    fd = {name: realism.frechet_distance(realism.embed(net, x)[0], train_f) for name, x in
          (("more", more), ("mush", mush))}
    assert fd["mush"] > 3 * fd["more"], fd


def test_crossfade_tells_a_double_exposure_from_one_end_and_from_a_new_image(halves):
    """Between pairs of training images: their pixel cross-fade scores share 0.5 and off 0, one end again share 0
    and off 0.5; a real image of neither lies far off the fade, and a blend weighted 3:1 leans to its larger part."""
    _, training, other, _ = halves
    a, b = training, training.roll(1, 0)
    fade = realism.crossfade((a + b) / 2, a, b)
    assert fade["share"] == pytest.approx(0.5, abs=1e-3) and fade["off"] == pytest.approx(0, abs=1e-3)
    again = realism.crossfade(a, a, b)
    assert again["share"] == pytest.approx(0, abs=1e-3) and again["off"] == pytest.approx(0.5, abs=1e-3)
    assert realism.crossfade(0.75 * a + 0.25 * b, a, b)["share"] == pytest.approx(0.25, abs=1e-3)
    assert realism.crossfade(other, a, b)["off"] > 0.5  # a new place is neither end nor their double exposure
