"""The notebook's explorer (img_interpolation.ipynb): ipywidgets that decode as their sliders move.

walk: two chosen images and the point t of the way between their codes, straight or on the great circle;
directions: a chosen image's code moved along the main directions of the codes (PCA);
sampler: samples of a chosen law of latent.LAWS, at a temperature, again with another seed.
Each returns a widget for IPython's display; run headless (nbconvert), it is drawn once, as it starts.
"""
import io

import ipywidgets as widgets
import torch
from PIL import Image
from sklearn.decomposition import PCA

import codes
from latent import DEFAULT_LAW, LAWS, UNTEMPERED, decode, law_title, sample, tile

WAYS = {"straight": codes.mix, "great circle": codes.arc}
WIDE = {"description_width": "initial"}
LEFT = {"align_items": "flex-start"}  # the layout of a column of widgets at their own widths, not stretched to its own


def jpeg(images, nrow=8):
    """Images (N, 3, S, S) in [0, 1] side by side, as JPEG bytes for an Image widget: an executed notebook keeps
    the state of its widgets, and a JPEG of decoded images (quality 85) is about an eighth of a PNG."""
    grid = (tile(images.clamp(0, 1), nrow) * 255).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="jpeg", quality=85)
    return buffer.getvalue()


def walk(model, mu, names):
    """Two images and a slider between them: from, the point t of the way (straight or on the great circle),
    to, decoded side by side. mu: the images' codes (N, z_dim), names: theirs."""
    ends = [widgets.Dropdown(options=names, value=names[i], description=d) for i, d in ((0, "from"), (-1, "to"))]
    way = widgets.ToggleButtons(options=list(WAYS), description="path")
    t = widgets.FloatSlider(0.5, min=0, max=1, step=0.02, description="t")
    view = widgets.Image(format="jpeg")

    def draw(_=None):
        z0, z1 = (mu[names.index(end.value)] for end in ends)
        view.value = jpeg(decode(model, torch.stack([z0, WAYS[way.value](z0, z1, torch.tensor(t.value)), z1])))

    for w in (*ends, way, t):
        w.observe(draw, "value")
    draw()
    return widgets.VBox([widgets.HBox(ends), way, t, view], layout=LEFT)


def directions(model, mu, names, count=5):
    """A chosen image's code moved along the count main directions of the codes (principal components), each
    slider in standard deviations of the codes along its direction."""
    pca = PCA(min(count, len(mu) - 1)).fit(mu.numpy())
    axes = torch.from_numpy(pca.components_ * pca.explained_variance_[:, None] ** 0.5).float()  # one sd each
    start = widgets.Dropdown(options=names, value=names[0], description="image")
    sliders = [widgets.FloatSlider(0.0, min=-3, max=3, step=0.1, description=f"PC {i + 1} ({share:.0%})", style=WIDE)
               for i, share in enumerate(pca.explained_variance_ratio_)]
    view = widgets.Image(format="jpeg")

    def draw(_=None):
        shift = torch.tensor([s.value for s in sliders]) @ axes
        view.value = jpeg(decode(model, (mu[names.index(start.value)] + shift)[None]))

    for w in (start, *sliders):
        w.observe(draw, "value")
    draw()
    return widgets.HBox([widgets.VBox([start, *sliders]), view])


def sampler(model, posterior, count=8, nrow=4):
    """count samples of a chosen law (latent.sample_codes) at a temperature, nrow to a row; "again" draws with the
    next seed. posterior: (mu, logvar) of the training images."""
    law = widgets.Dropdown(options=list(LAWS), value=DEFAULT_LAW, description="law")
    temperature = widgets.FloatSlider(1.0, min=0, max=2, step=0.05, description="temperature", style=WIDE)
    seed = widgets.IntText(0, description="seed")
    again = widgets.Button(description="again")
    again.on_click(lambda _: setattr(seed, "value", seed.value + 1))
    caption, view = widgets.Label(), widgets.Image(format="jpeg")

    def draw(_=None):
        caption.value = law_title(law.value, temperature.value)
        temperature.disabled = law.value in UNTEMPERED
        view.value = jpeg(sample(model, count, law.value, posterior, temperature.value, seed.value), nrow)

    for w in (law, temperature, seed):
        w.observe(draw, "value")
    draw()
    return widgets.VBox([widgets.HBox([law, temperature, seed, again]), caption, view], layout=LEFT)
