"""test.py, latent.py and img_interpolation.ipynb on a tiny model trained once on generated images."""
import json
import math
import shutil
import threading

import imageio.v3 as iio
import nbformat
import numpy as np
import pytest
import torch
from nbclient import NotebookClient
from skimage.metrics import peak_signal_noise_ratio

import explorer
import latent
from checkpoint import load_model
from codes import pairs
from conftest import ROOT, load_test_script, write_images
from dataset import load_folder

map_script = load_test_script()


@pytest.fixture(scope="session")
def families12(tmp_path_factory, images12):
    """The twelve images named a_00, b_00, c_00, a_01, ...: three families."""
    folder = tmp_path_factory.mktemp("families")
    for i, path in enumerate(sorted(images12.glob("*.png"))):
        shutil.copy(path, folder / f"{'abc'[i % 3]}_{i // 3:02d}.png")
    return folder


def run_map(tmp_path, capsys, model, data, *extra):
    """test.py's metrics (its JSON line), with the printed lines in metrics["printed"]."""
    argv = ["--model", str(model), "--data", str(data), "--out", str(tmp_path / "figures"), "--device", "cpu", *extra]
    assert map_script.main(argv) == 0
    figures = sorted((tmp_path / "figures").glob("*.png"))
    assert [f.name for f in figures] == ["reconstructions.png", "samples_nearest.png", "space_viz.png"]
    for figure in figures:
        assert iio.imread(figure).shape[2] in (3, 4)
    printed = capsys.readouterr().out
    return {**json.loads(printed.strip().splitlines()[-1]), "printed": printed}


def test_map_metrics_without_families(tmp_path, capsys, tiny, images12):
    metrics = run_map(tmp_path, capsys, tiny, images12, "--drawn", "8")
    recon = {"psnr", "ssim", "thumb8_psnr", "thumb8_ssim", "thumb16_psnr", "thumb16_ssim"}
    assert set(metrics) == recon | {"samples", "detail", "points", "knn_accuracy", "knn_k", "images", "printed",
                                    "grad_adv_over_rec", "sat_fake", "crossfade"}
    assert metrics["grad_adv_over_rec"] > 0 and 0 <= metrics["sat_fake"] <= 1
    assert metrics["images"] == 12 and metrics["knn_accuracy"] is None and metrics["knn_k"] is None  # one family
    assert "no family accuracy: the file names do not have the form" in metrics["printed"]
    assert "no realism measures: the images are not of the demo domain" in metrics["printed"]
    assert "no newness measures: no real images no run trained on" in metrics["printed"]
    assert set(metrics["crossfade"]) == {"samples middle", "middles"}  # no new real images to set beside them
    assert -1 <= metrics["ssim"] <= 1
    assert set(metrics["samples"]) == set(latent.LAWS)
    assert len({m["nearest_psnr"] for m in metrics["samples"].values()}) == len(latent.LAWS)  # a set of samples each
    assert all(m["counted"] == 8 and 1 <= m["nearest_distinct"] <= 8 for m in metrics["samples"].values())
    assert "random samples (8, prior" in metrics["printed"]
    assert set(metrics["detail"]) == {"reconstructions", "thumb8", "thumb16", "thumb32", "middles",
                                      *(f"samples {law}" for law in latent.LAWS)}
    assert metrics["detail"]["thumb8"]["2-5 px"] is None  # a 64x64 image holds nothing finer than 8 px of 256
    assert all(d["distance"] >= 0 for d in metrics["detail"].values())
    assert metrics["thumb16_psnr"] > metrics["thumb8_psnr"]  # more pixels, closer to the original
    assert set(metrics["points"]) == {"reconstructions", "thumb8", "thumb16", "thumb32"}
    assert all(0 <= p["placed"] <= 1 and 0 <= p["drawn"] <= 1 for p in metrics["points"].values())
    assert "of the originals' drawn" in metrics["printed"]
    model = load_model(tiny)
    images, _ = load_folder(images12, 64)
    x = images.float() / 255
    rec = latent.decode(model, latent.encode(model, images))
    psnr = np.mean([peak_signal_noise_ratio(a.numpy(), b.numpy(), data_range=1.0) for a, b in zip(x, rec)])
    assert metrics["psnr"] == pytest.approx(psnr, abs=1e-3)


def test_map_with_families_pca_and_a_heldout_folder(tmp_path, capsys, tiny, families12, images12):
    metrics = run_map(tmp_path, capsys, tiny, families12, "--method", "pca", "--heldout", str(images12))
    assert metrics["images"] == 12 and 0 <= metrics["knn_accuracy"] <= 1 and metrics["knn_k"] == 5
    assert "5-NN family accuracy" in metrics["printed"]
    held = metrics["heldout"]
    assert held["images"] == 12 and held["folder"] == str(images12) and held["psnr"] == pytest.approx(metrics["psnr"])
    assert f"held-out images (12, {images12})" in metrics["printed"]
    assert "heldout_reconstructions" in metrics["points"]
    assert all(m["counted"] == map_script.SAMPLES for m in metrics["samples"].values())  # 64 of the 256 drawn
    # the held-out images are the new real images of the copying test, in pixels (no domain network here)
    assert set(metrics["newness"]) == {"reconstructions", "middles", *(f"samples {law}" for law in latent.LAWS)}
    assert all(set(n) == {"pixels"} and math.isfinite(n["pixels"]["z"]) for n in metrics["newness"].values())
    assert "newness, the data-copying test" in metrics["printed"]
    # both kinds of middle against their ends, and the held-out images each between its two nearest training images
    fades = metrics["crossfade"]
    assert set(fades) == {"samples middle", "middles", "new real images"}
    assert all(0 < fades[m]["share"] < 1 and fades[m]["off"] > 0 for m in ("samples middle", "middles"))
    # here the "new" images are the training images: each is its own nearest, one end again
    assert fades["new real images"]["share"] == 0 and fades["new real images"]["off"] == pytest.approx(0.5)
    projector = tmp_path / "figures" / "projector"
    assert f"wrote {projector}: the 12 codes with their thumbnails and families" in metrics["printed"]
    model = load_model(tiny)
    images, paths = load_folder(families12, 64)
    run, codes, labels, sprite = projected(tmp_path / "figures")
    assert run == "projector" and codes == pytest.approx(latent.encode(model, images).numpy(), rel=1e-4, abs=1e-6)
    assert labels == "family\timage\n" + "".join(f"{p.stem[0]}\t{p.stem}\n" for p in paths)
    assert sprite == (4 * 64, 4 * 64)  # 12 thumbnails of 64x64 in a square of 4 x 4


def projected(folder):
    """What TensorBoard's projector plugin serves from folder: (run, codes, metadata, sprite size) of its one set."""
    from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.plugins.base_plugin import TBContext
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin
    from werkzeug.test import Client
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(folder))
    multiplexer.Reload()
    routes = ProjectorPlugin(TBContext(logdir=str(folder), data_provider=MultiplexerDataProvider(
        multiplexer, str(folder)))).get_plugin_apps()

    def get(route, **query):
        response = Client(routes[route]).get(route, query_string=query)
        assert response.status_code == 200, (route, response.get_data()[:300])
        return response.get_data()

    [run] = json.loads(get("/runs"))
    [embedding] = json.loads(get("/info", run=run))["embeddings"]
    name, shape = embedding["tensorName"], embedding["tensorShape"]
    codes = np.frombuffer(get("/tensor", run=run, name=name), dtype=np.float32).reshape(shape)
    sprite = iio.imread(get("/sprite_image", run=run, name=name))
    return run, codes, get("/metadata", run=run, name=name).decode(), sprite.shape[1::-1]


def test_heldout_set_made_by_one_test_py_is_never_seen_half_made_by_another(tmp_path, monkeypatch):
    """A second test.py starting while the first is still making the held-out set makes its own and sees all of it;
    the first then keeps the finished one, and no partial folder is left."""
    half_made, go_on = threading.Event(), threading.Event()

    def make_demo(out, count, seed):  # files as make_demo names them; the first maker stops halfway
        for k in range(count):
            (out / f"img_{k:02d}.png").touch()
            if k == count // 2 and not half_made.is_set():
                half_made.set()
                assert go_on.wait(10)

    monkeypatch.setattr(map_script.fantasy, "make_demo", make_demo)
    folder, seen = tmp_path / "held", {}
    first = threading.Thread(target=lambda: seen.update(first=len(list(map_script.demo_heldout(folder).iterdir()))))
    first.start()
    assert half_made.wait(10)
    seen["second"] = len(list(map_script.demo_heldout(folder).iterdir()))
    go_on.set()
    first.join()
    assert seen == {"first": 80, "second": 80} and [p.name for p in tmp_path.iterdir()] == ["held"]

def test_knn_is_left_out_where_it_cannot_mean_anything():
    assert map_script.knn_setting(list("aabbcc")) == (5, None)
    k, why = map_script.knn_setting(list("aabbc"))
    assert k is None and "single image" in why and "c" in why  # c's one image has no neighbour of its family
    assert map_script.knn_setting(None)[0] is None


def test_thumbnail_baseline_keeps_what_it_can():
    flat = torch.full((2, 3, 64, 64), 0.3)
    assert torch.allclose(map_script.thumbnail(flat, 8), flat, atol=1e-6)  # nothing to lose
    noise = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    errors = [(map_script.thumbnail(noise, k) - noise).square().mean() for k in (8, 16, 64)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-10  # 64x64 of a 64x64 image: the image


def test_map_of_five_images(tmp_path, capsys, tiny):
    metrics = run_map(tmp_path, capsys, tiny, write_images(tmp_path / "five", 5))
    assert metrics["images"] == 5


def test_knn_accuracy_leaves_the_point_itself_out():
    mu = np.array([[0.0], [0.01], [10.0], [10.01], [20.0], [20.01]])
    assert map_script.knn_accuracy(mu, list("aabbcc"), k=1) == 1.0
    assert map_script.knn_accuracy(mu, list("abbcca"), k=1) == 0.0  # each one's nearest other is another family


def test_families_need_a_pattern_and_two_of_them(families12, images12):
    assert map_script.families_of(sorted(families12.glob("*.png")))[:4] == ["a", "a", "a", "a"]
    assert map_script.families_of(sorted(images12.glob("*.png"))) is None  # only "img"
    assert map_script.families_of([ROOT / "castle_01.png", ROOT / "sunset.png"]) is None


def test_bad_model_file_and_empty_folder_are_one_line_errors(tmp_path, capsys, tiny):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    empty = tmp_path / "empty"
    empty.mkdir()
    for model, data in ((bad, empty), (tiny, empty)):
        assert map_script.main(["--model", str(model), "--data", str(data), "--out", str(tmp_path / "m.png")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1


def test_lerp_and_slerp_endpoints_and_norm():
    z0, z1 = torch.randn(32, generator=torch.Generator().manual_seed(0)), torch.randn(32)
    z1 = z1 * z0.norm() / z1.norm()  # equal norms
    for path in (latent.lerp(z0, z1, 7), latent.slerp(z0, z1, 7)):
        assert path.shape == (7, 32)
        assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    assert torch.allclose(latent.lerp(z0, z1, 3)[1], (z0 + z1) / 2)
    norms = latent.slerp(z0, z1, 7).norm(dim=1)
    assert torch.allclose(norms, z0.norm().expand(7), rtol=1e-4)


@pytest.mark.parametrize("scale", [1.0, 2.0, -1.0])
def test_slerp_of_parallel_codes_is_the_straight_line(scale):
    z0 = torch.randn(16)
    path = latent.slerp(z0, scale * z0, 5)
    assert torch.isfinite(path).all()
    assert torch.allclose(path, latent.lerp(z0, scale * z0, 5))


def test_gif_plays_forth_and_back(tmp_path):
    frames = torch.rand(5, 3, 24, 40, generator=torch.Generator().manual_seed(0))  # distinct frames
    assert latent.save_gif(tmp_path / "a.gif", frames) == 8  # 0 1 2 3 4 3 2 1
    read = iio.imread(tmp_path / "a.gif", index=None)
    assert read.shape == (8, 24, 40, 3)
    assert np.array_equal(read[1], read[7]) and np.array_equal(read[3], read[5])
    assert iio.immeta(tmp_path / "a.gif", index=None)["loop"] == 0


def test_a_gif_shrunk_to_the_size_a_page_shows_is_smaller_and_the_same_picture(tmp_path):
    frames = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)),
                                             size=64, mode="bilinear", align_corners=False)
    latent.save_gif(tmp_path / "full.gif", frames)
    latent.save_gif(tmp_path / "small.gif", frames, size=32)
    small = iio.imread(tmp_path / "small.gif", index=None)
    assert small.shape == (6, 32, 32, 3)
    assert (tmp_path / "small.gif").stat().st_size < (tmp_path / "full.gif").stat().st_size
    shrunk = torch.nn.functional.avg_pool2d(torch.from_numpy(iio.imread(tmp_path / "full.gif", index=None)[:4])
                                            .permute(0, 3, 1, 2).float(), 2)
    assert (shrunk - torch.from_numpy(small[:4]).permute(0, 3, 1, 2).float()).abs().mean() < 8  # palette rounding


def test_nearest_pick_and_samples(tmp_path, tiny, images12):
    model = load_model(tiny)
    images, _ = load_folder(images12, 64)
    bank = torch.randn(9, model.config.z_dim)
    assert latent.nearest(bank, bank).tolist() == list(range(9))  # each code is nearest to itself
    idx = latent.nearest(latent.lerp(bank[0], bank[1], 6), bank)
    assert idx.shape == (6,) and idx.min() >= 0 and idx.max() < 9 and idx[0] == 0 and idx[-1] == 1

    paths = sorted(write_images(tmp_path / "named", 3).glob("*.png"))
    assert latent.pick(paths, ["img_02", "img_00.png"]) == [2, 0]
    with pytest.raises(KeyError, match="castle_00"):
        latent.pick(paths, ["castle_00"])

    samples = latent.sample(model, 6, temperature=0.7)
    assert samples.shape == (6, 3, 64, 64) and 0 <= samples.min() and samples.max() <= 1
    assert torch.equal(samples, latent.sample(model, 6, temperature=0.7))  # seeded
    still = latent.sample(model, 3, temperature=0.0)  # z = 0 for all
    assert torch.allclose(still[0], still[2])
    mu, logvar = latent.posteriors(model, images)
    assert torch.equal(mu, latent.encode(model, images)) and logvar.shape == mu.shape
    codes = latent.sample_codes(40, "posterior", posterior=(mu, logvar), temperature=0.0)  # the means themselves
    assert all((mu == z).all(1).any() for z in codes)
    assert latent.sample(model, 4, "fitted", (mu, logvar)).shape == (4, 3, 64, 64)
    middles = latent.sample_codes(40, "middle", posterior=(mu, logvar))
    i, j = pairs(len(mu), 40, torch.Generator().manual_seed(0))  # the law's pairs, drawn as it draws them
    assert torch.allclose(middles, torch.stack([latent.slerp(mu[a], mu[b], 3)[1] for a, b in zip(i, j)]))
    assert torch.equal(middles, latent.sample_codes(40, "middle", posterior=(mu, logvar), temperature=0.3))  # no spread
    unit = mu / mu.norm(dim=1, keepdim=True)  # ends of one norm: their middles keep it, straight lines' do not
    assert torch.allclose(latent.sample_codes(40, "middle", posterior=(unit, logvar)).norm(dim=1), torch.ones(40))
    for law in latent.LAWS:  # the figures name a temperature where, and only where, it changes the codes
        cooler = latent.sample_codes(40, law, mu.shape[1], (mu, logvar), temperature=0.5)
        tempered = not torch.equal(cooler, latent.sample_codes(40, law, mu.shape[1], (mu, logvar)))
        assert tempered == (law not in latent.UNTEMPERED) == ("(x 0.5)" in latent.law_title(law, 0.5))
    with pytest.raises(ValueError, match="unknown sampling law"):
        latent.sample_codes(2, "uniform", posterior=(mu, logvar))
    latent.grid_figure(samples, "samples").savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").is_file()


def test_tile_puts_each_image_in_its_cell_on_white():
    images = torch.rand(5, 3, 4, 6)  # 5 images of 4x6 pixels, 2 to a row: 3 rows
    grid = latent.tile(images, nrow=2, padding=1)
    assert grid.shape == (3, 3 * 5 + 1, 2 * 7 + 1)
    white = torch.ones_like(grid, dtype=torch.bool)
    for i in range(5):
        top, left = (i // 2) * 5 + 1, (i % 2) * 7 + 1
        assert torch.equal(grid[:, top:top + 4, left:left + 6], images[i])
        white[:, top:top + 4, left:left + 6] = False
    assert (grid[white] == 1).all()  # the padding and the empty sixth cell
    assert latent.tile(images, nrow=8).shape == (3, 4 + 4, 5 * 8 + 2)  # one row when nrow exceeds N


def test_notebook_runs_headless(tmp_path, monkeypatch, tiny, images12):
    out = tmp_path / "out"
    for name, value in dict(MODEL=tiny, DATA=images12, OUT=out, FRAMES=6, SAMPLES=8).items():
        monkeypatch.setenv(name, str(value))
    nb = nbformat.read(ROOT / "img_interpolation.ipynb", as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")  # committed without outputs
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if any(k.startswith("image/") for k in o.get("data", {}))]  # shown by reference
    widgets = nb.metadata.pop("widgets")  # the explorer's state: what Jupyter shows of it without a kernel
    assert len(json.dumps(widgets)) < 200_000  # its images as JPEG
    nbformat.write(nb, tmp_path / "executed.ipynb")
    assert (tmp_path / "executed.ipynb").stat().st_size < 100_000
    gifs = sorted(out.glob("*.gif"))
    assert [g.stem for g in gifs] == list("abcdefgh")
    assert iio.imread(gifs[0], index=None).shape[1:] == (64, 64, 3)
    others = [f"random_sample_{law}.png" for law in latent.LAWS if law != latent.DEFAULT_LAW]
    for name in ("random_sample.png", *others, "path.png"):
        assert (out / name).is_file(), name
    widgets = [o for o in nb.cells[-1].outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 3  # the explorer: walk, directions, sampler


def test_explorer_decodes_what_its_widgets_choose(tiny, images12):
    model = load_model(tiny)
    images, paths = load_folder(images12, 64)
    names = [p.stem for p in paths]
    posterior = latent.posteriors(model, images)
    mu = posterior[0]

    def shows(*z):
        return explorer.jpeg(latent.decode(model, torch.stack(z)))

    walk = explorer.walk(model, mu, names)
    (start, end), way, t, view = walk.children[0].children, *walk.children[1:]
    end.value, t.value = names[3], 0.0
    assert view.value == shows(mu[0], mu[0], mu[3])  # from, the point t of the way, to
    t.value = 0.5
    assert view.value == shows(mu[0], latent.lerp(mu[0], mu[3], 3)[1], mu[3])
    way.value = "great circle"
    assert view.value == shows(mu[0], latent.slerp(mu[0], mu[3], 3)[1], mu[3]) != shows(mu[0], mu[0], mu[3])

    directions = explorer.directions(model, mu, names)
    (image, *sliders), view = directions.children[0].children, directions.children[1]
    assert len(sliders) == 5 and sliders[0].description.startswith("PC 1 (")
    image.value = names[2]
    assert view.value == shows(mu[2])
    sliders[0].value = 2.0
    assert view.value != shows(mu[2])
    sliders[0].value = 0.0
    assert view.value == shows(mu[2])

    sampler = explorer.sampler(model, posterior)
    (law, temperature, seed, again), caption, view = sampler.children[0].children, *sampler.children[1:]
    assert view.value == explorer.jpeg(latent.sample(model, 8, latent.DEFAULT_LAW, posterior), nrow=4)
    law.value, temperature.value = "prior", 0.5
    again.click()
    assert seed.value == 1 and caption.value == f"z from {latent.LAWS['prior']} (x 0.5)"
    assert view.value == explorer.jpeg(latent.sample(model, 8, "prior", posterior, 0.5, seed=1), nrow=4)
    assert not temperature.disabled
    law.value = "middle"  # a law the temperature does not change: its slider is off, its caption says no temperature
    assert temperature.disabled and caption.value == f"z from {latent.LAWS['middle']}"
