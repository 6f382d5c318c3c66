"""Differentiable augmentation of what the encoder judges (--augment P; Zhao et al., Differentiable
Augmentation for Data-Efficient GAN Training, NeurIPS 2020).

With 80 images the encoder, which plays the discriminator, can learn the training set by heart and reject
everything else. Showing it real and generated images under the same random colour change, translation
and cutout, with the gradient flowing through the augmentation into the decoder, keeps it from that. The
decoder is never asked to draw an augmented image (docs/ALGORITHM.md, "Augmentation").

Every random number is drawn up front (`draw`, called by step.draw_noise), so that the reference and the
fast step augment identically.
"""
import torch

TRANSLATION = 1 / 8  # largest shift, as a fraction of the image side
CUTOUT = 1 / 2  # side of the square cut out, as a fraction of the image side
UNIFORMS = 8  # per image: apply, brightness, saturation, contrast, shift x, shift y, cutout x, cutout y


def draw(batch, generator, device):
    """The uniforms of one batch's augmentation: (B, UNIFORMS) in [0, 1)."""
    return torch.rand(batch, UNIFORMS, generator=generator, device=device)


def augment(x, u, p):
    """x (B, 3, S, S) where each image, with probability p, gets a colour change, a translation and a cutout,
    all differentiable with respect to x. u: the uniforms of `draw`."""
    col = lambda k: u[:, k].view(-1, 1, 1, 1).to(x.dtype)  # noqa: E731  (one column as a per-image factor)
    y = x + (col(1) - 0.5)  # brightness: +-0.5
    mean = y.mean(1, keepdim=True)
    y = (y - mean) * (2 * col(2)) + mean  # saturation: x0 to x2 around the grey level
    mean = y.mean((1, 2, 3), keepdim=True)
    y = (y - mean) * (col(3) + 0.5) + mean  # contrast: x0.5 to x1.5 around the image's mean
    y = translate(y, u[:, 4:6])
    y = y * cutout_mask(x.shape, u[:, 6:8], x.device, x.dtype)
    return torch.where(u[:, :1].view(-1, 1, 1, 1) < p, y, x)


def translate(x, u):
    """Each image shifted by up to TRANSLATION of its side in x and y (integer pixels), zeros moved in."""
    b, _, h, w = x.shape
    limit = int(h * TRANSLATION)
    shift = (u * (2 * limit + 1)).long() - limit  # (B, 2) in [-limit, limit]
    rows = torch.arange(h, device=x.device).view(1, h, 1) - shift[:, 1].view(b, 1, 1)  # source row of each pixel
    cols = torch.arange(w, device=x.device).view(1, 1, w) - shift[:, 0].view(b, 1, 1)
    inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)  # (B, 1, H, W)
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(b, 1, h * w).expand(-1, x.shape[1], -1)
    moved = x.reshape(b, x.shape[1], h * w).gather(2, index).view_as(x)
    return moved * inside.to(x.dtype)


def cutout_mask(shape, u, device, dtype):
    """(B, 1, H, W): 0 inside a square of side CUTOUT x the image side centred anywhere in the image, else 1."""
    b, _, h, w = shape
    half = int(h * CUTOUT) // 2
    centre = (u * torch.tensor([w, h], device=device)).long()  # (B, 2): x, y
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    inside = ((ys - centre[:, 1].view(b, 1, 1)).abs() < half) & ((xs - centre[:, 0].view(b, 1, 1)).abs() < half)
    return (~inside).unsqueeze(1).to(dtype)
