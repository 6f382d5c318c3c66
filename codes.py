"""Where latent codes come from besides an image: mixes of two codes, on the straight line or on the great circle,
and the Gaussian fitted to a set of codes.

The training step decodes its fakes from these laws (train.py --fakes) and latent.py samples and walks with them,
so that the decoder is trained where it is asked to draw. Every function takes its random numbers from the caller,
so that a step can be replayed exactly.
"""
import math

import torch


def mix(z0, z1, t):
    """The point t of the way from z0 to z1 on the straight line, (1 - t) z0 + t z1; t broadcasts over the rows."""
    return (1 - t) * z0 + t * z1


def arc(z0, z1, t, eps=1e-4):
    """The point t of the way from z0 to z1 on the great circle (slerp; White, Sampling Generative Networks, 2016),
    row by row: z0, z1 (..., d), t broadcasting as (..., 1). With equal norms the norm stays constant; rows nearly
    parallel (or opposite) have no unique great circle and take the straight line."""
    u0 = z0 / z0.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    u1 = z1 / z1.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    omega = 2 * torch.atan2((u0 - u1).norm(dim=-1, keepdim=True), (u0 + u1).norm(dim=-1, keepdim=True))  # exact
    sin = torch.sin(omega)  # near 0, unlike arccos of the dot product
    straight = sin < eps
    curved = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.where(straight, 1.0, sin)
    return torch.where(straight, mix(z0, z1, t), curved)


def fitted(codes, eps):
    """Codes of the Gaussian fitted to `codes` (N, z_dim): their mean plus eps (n, N) ~ N(0, I) times their
    deviations from it over sqrt(N - 1), which has exactly their sample covariance (of rank N - 1 at most, so it
    needs no factorisation). Each such code is a mix of the N codes with random weights, not a new direction."""
    mean = codes.mean(0)
    return mean + eps @ (codes - mean) / math.sqrt(max(len(codes) - 1, 1))


def pairs(n, count, generator):
    """count random pairs (i, j) of distinct indices below n: two (count,) tensors."""
    i = torch.randint(n, (count,), generator=generator)
    return i, (i + torch.randint(1, n, (count,), generator=generator)) % n  # never i itself
