"""The terms of AS-IntroVAE as pure functions (docs/ALGORITHM.md, "Terms").

Per-image terms return a (B,) tensor; the caller takes means. Nothing here holds state.
"""
import math

import torch
import torch.nn.functional as F

EXPELBO_WEIGHT = 0.25  # L_E weighs the two expELBO terms by 1/4 (Soft-IntroVAE, eq. 6 with alpha = 2)
HALF = 0.5  # L_D averages the rec and fake terms: 1/2 (K_r + K_f), 1/2 gamma_r (L_rr + L_fr)


def image_scale(image_size):
    """s = 1 / (3 S^2): normalises per-image sums by the number of values in an image."""
    return 1.0 / (3 * image_size * image_size)


def reconstruction_error(a, b):
    """R(a, b)_i = sum over the pixels of image i of (a - b)^2."""
    return (a - b).square().flatten(1).sum(1)


def focal_frequency_error(a, b, alpha=1.0):
    """Focal frequency loss per image (Jiang et al., ICCV 2021), summed like R: sum over channels and frequencies
    of w |F(a - b)|^2, F the orthonormal 2-D DFT, w = (|F(a - b)| / its largest value in the channel)^alpha, not
    differentiated. By Parseval it is at most R(a, b); it weighs most the frequencies the model gets most wrong."""
    spectrum = torch.fft.fft2(a - b, norm="ortho").abs()  # (B, 3, S, S)
    w = spectrum.detach().pow(alpha)
    w = w / w.amax((-2, -1), keepdim=True).clamp_min(1e-12)
    return (w * spectrum.square()).flatten(1).sum(1)


def luminance(x):
    """(N, S, S) grey levels of images (N, 3, S, S) in [0, 1] (Rec. 601 weights)."""
    return torch.einsum("nchw,c->nhw", x.float(), x.new_tensor([0.299, 0.587, 0.114], dtype=torch.float32))


def lift(x, size=7):
    """(N, 1, S, S): each pixel's luminance less the mean of its size x size neighbourhood (the border repeated):
    about a star's or a lit window's height above its sky, a line's depth below its wall (negative), and 0 on
    flat or smoothly shaded regions."""
    grey = luminance(x)[:, None]
    pad = size // 2
    return grey - F.avg_pool2d(F.pad(grey, (pad,) * 4, mode="replicate"), size, stride=1)


def local_contrast(x):
    """(N, 1, S, S): the size of each pixel's lift, up or down."""
    return lift(x).abs()


def contrast_weighted_error(target, image, weight):
    """The squared error of the pixels where target has local contrast, each weighed by weight times that contrast;
    summed like R. R weighs a star by its few pixels, so a decoder that smooths the sky away loses almost nothing;
    with weight 40, a star 0.5 above its sky counts 21 times (1 + 40 x 0.49). R plus this is R with a per-pixel weight
    1 + weight * contrast, fixed by the real image."""
    return (weight * local_contrast(target.detach()) * (image - target).square()).flatten(1).sum(1)


def feature_error(target, features, image):
    """The distance of VAE/GAN's learned similarity (Larsen et al., ICML 2016) per image, in the units of R: the
    mean over layers of ||f - target||^2 / ||target||^2, times the image's squared deviation from its mean. A
    reconstruction whose features are as far off, relatively, as its pixels scores about R."""
    energy = (image - image.mean((1, 2, 3), keepdim=True)).square().flatten(1).sum(1)  # (B,)
    relative = [(f - t).square().flatten(1).sum(1) / t.square().flatten(1).sum(1).clamp_min(1e-12)
                for t, f in zip(target, features)]
    return energy * torch.stack(relative).mean(0)


def kl_divergence(mu, logvar):
    """KL(q || N(0, I))_i = -1/2 sum_d (1 + logvar - exp(logvar) - mu^2), summed over the last dimension."""
    return -0.5 * (1 + logvar - logvar.exp() - mu.square()).sum(-1)


def kl_exemplars(mu, logvar, centres, leave_out=False):
    """KL(q_i || p) per image for the exemplar prior p = mean over k of N(centres_k, I) (--prior exemplar), bounded
    from above in closed form: -log mean_k exp(-KL(q_i || N(centres_k, I))) (Hershey and Olsen 2007, by Jensen's
    inequality; it is the KL to the nearest centre less at most log K, and exact for one centre). leave_out: row i
    of the batch leaves centre i, its own code, out of its prior (Exemplar VAE's leave-one-out), for real images."""
    kl = kl_divergence(mu[:, None] - centres[None], logvar[:, None])  # (B, K): the KL to each centre
    if leave_out:
        kl = kl.masked_fill(torch.eye(*kl.shape, dtype=torch.bool, device=kl.device), math.inf)
    return math.log(len(centres) - leave_out) - torch.logsumexp(-kl, 1)


def squash(mu, logvar):
    """AS-IntroVAE's tanh on the encoder outputs: (tanh mu, tanh logvar)."""
    return torch.tanh(mu), torch.tanh(logvar)


def saturation(mu, logvar, slope=0.01):
    """Fraction of the coordinates of (mu, logvar) where tanh is flat (derivative below slope, |x| > 3):
    there a term of the squashed posterior passes almost no gradient back. A diagnostic, not a loss."""
    flat = math.atanh(math.sqrt(1 - slope))
    return (torch.cat([mu, logvar], 1).abs() > flat).float().mean()


def gaussian_kernel(m1, v1, m2, v2):
    """k = exp(-(m1 - m2)^2 / (2 (v1 + v2))) / sqrt(v1 + v2): the overlap of two 1-D Gaussians."""
    v = v1 + v2
    return torch.exp(-(m1 - m2).square() / (2 * v)) * torch.rsqrt(v)


def as_distance(mu_a, logvar_a, mu_b, logvar_b, reduction="sum"):
    """AS(A, B) = sum k(A, A') + sum k(B, B') - 2 sum k(A, B), per latent dimension.

    "sum" adds every pair and dimension; "mean" averages each of the three sums instead.
    Inputs are (B, d) posterior parameters, already squashed by the caller.
    """
    var_a, var_b = logvar_a.exp(), logvar_b.exp()

    def cross(m1, v1, m2, v2):  # (B1, B2, d): every pair, every dimension
        k = gaussian_kernel(m1[:, None], v1[:, None], m2[None], v2[None])
        return k.sum() if reduction == "sum" else k.mean()

    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    return (cross(mu_a, var_a, mu_a, var_a) + cross(mu_b, var_b, mu_b, var_b)
            - 2 * cross(mu_a, var_a, mu_b, var_b))


def transition_coefficient(t, total, method="as"):
    """c(t) = min(1, tanh(5 t / T)); Soft-IntroVAE is c = 1 throughout."""
    if method == "soft":
        return 1.0
    return min(1.0, math.tanh(5.0 * t / max(total, 1)))


def exp_elbo(rec_err, kl, dist, beta_rec, beta_neg, c, scale):
    """expELBO = mean_i exp(-2 s (beta_rec r_i + beta_neg (c kl_i + (1 - c) dist)))."""
    neg_elbo = beta_rec * rec_err + beta_neg * (c * kl + (1 - c) * dist)
    return torch.exp(-2 * scale * neg_elbo).mean()


def encoder_loss(l_rec, l_kl, exp_elbo_r, exp_elbo_f, beta_rec, beta_kl, scale):
    """L_E = s (beta_rec L_rec + beta_kl L_kl) + 1/4 (expELBO_r + expELBO_f)."""
    return scale * (beta_rec * l_rec + beta_kl * l_kl) + EXPELBO_WEIGHT * (exp_elbo_r + exp_elbo_f)


def decoder_loss(l_rec, kl_r, kl_f, dist, beta_rec, beta_adv, c, scale, gamma_r=0.0, l_rr=None, l_fr=None):
    """L_D = s (beta_rec L_rec + 1/2 beta_adv (c (K_r + K_f) + (1 - c) dist) + 1/2 gamma_r beta_rec (L_rr + L_fr)).

    beta_adv, the weight of the adversarial terms, is beta_kl in the official code (--beta-adv unties them).
    L_rr and L_fr may be left out (None) when gamma_r = 0: then they are never computed.
    """
    loss = beta_rec * l_rec + HALF * beta_adv * (c * (kl_r + kl_f) + (1 - c) * dist)
    if l_rr is not None:
        loss = loss + HALF * gamma_r * beta_rec * (l_rr + l_fr)
    return scale * loss
