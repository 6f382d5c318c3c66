"""One AS-IntroVAE training iteration, two ways: the literal reference and the fast default.

`reference_step` follows docs/ALGORITHM.md ("One iteration") line by line.
`fast_step` has the same mathematics and does less work:
  - fake = D(n) and rec = D(z) are computed once: the decoder's weights do not change between the
    encoder update and the decoder update, so the reference computes them twice with equal results;
  - nothing is computed for a term whose weight is 0 (L_rr and L_fr when gamma_r = 0);
  - no requires_grad toggling: each backward names the parameters it is for (`inputs=`), so autograd
    skips the frozen network's weight gradients, and the shared graph serves both updates;
  - the EMA is one foreach lerp over all tensors.
Both take all their random numbers from `draw_noise`, so the two can be compared exactly (bench.py).
BatchNorm running statistics differ between the two: the reference runs the decoder on n and z twice
(and on the L_rr, L_fr codes), so its running averages take more updates per step. Training uses batch
statistics, so the weights do not depend on them (exported models recompute them, see trainer.py).
Both return a dict of 0-d tensors (no host synchronisation); the caller reads them when it logs.
`finish_step` is the update of the phase after the run that finishes the decoder alone on fixed codes
(train.py's last phase, and finish.py for runs trained before it; docs/ALGORITHM.md).
"""
import itertools
from dataclasses import dataclass

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import get_ema_multi_avg_fn

import codes
from augment import augment
from augment import draw as augment_uniforms
from losses import (as_distance, contrast_weighted_error, decoder_loss, encoder_loss, exp_elbo, feature_error,
                    focal_frequency_error, kl_divergence, kl_exemplars, reconstruction_error, saturation, squash)
from models import reparameterize

# The finishing's settings (docs/STUDY.md, "Finishing the decoder"): its steps and contrast weight (the defaults of
# train.py's --finish-steps and --finish-weight, finish.py's --steps and --contrast-weight), Adam's learning rate
# (train.py's --lr) and the images per step.
FINISH_STEPS, FINISH_WEIGHT, FINISH_LR, FINISH_BATCH = 600, 160.0, 2e-4, 16
# --acai: ACAI's critic also sees real images blended with their reconstructions, this much of the real image, and
# must score them 0 (Berthelot et al. 2019: it keeps the critic's guesses from resting on reconstruction artefacts)
ACAI_BLEND = 0.2


@dataclass
class Hyper:
    """The loss weights of one step; beta_neg may change between steps (by hand or by --beta-neg auto)."""
    beta_kl: float
    beta_rec: float
    beta_neg: float
    gamma_r: float
    scale: float  # s = 1 / (3 S^2)
    method: str = "as"  # "as", "soft" (c = 1 and no tanh) or "vae" (no introspection: a plain VAE)
    ema_decay: float = 0.999  # decay of the decoder's exponential moving average at this step
    bf16: bool = False  # fast step: networks under bf16 autocast, the loss terms in float32
    tanh: str = "all"  # where rec's and fake's posteriors are tanh-squashed: "all": in AS and the decoder's KL
    #                    terms (official); "both": also in the encoder's KL terms; "as-only": in AS only
    beta_adv: float = None  # weight of the decoder's adversarial terms; None: beta_kl, as the official code
    augment: float = 0.0  # probability that an image the encoder judges is augmented (augment.py); 0: never
    fakes: str = "prior"  # where the fakes' codes come from: sources of FAKES joined by "+", an equal share each
    rec_loss: str = "mse"  # real images' reconstruction term: "mse" (R), "ffl" (R + focal frequency loss) or
    #                        "features" (R, plus the encoder-feature distance in the decoder update)
    feature_weight: float = 1.0  # with rec_loss "features": the weight of the feature distance beside R
    acai: float = 0.0  # weight of ACAI's critic terms in both updates (--acai); 0: none, as the official code
    prior: str = "normal"  # "normal": N(0, I), as the official code; "exemplar": the batch's codes' mixture (PRIORS)
    contrast_weight: float = 0.0  # L_rec weighs each pixel's squared error by 1 + this times the real image's contrast
    probe: bool = False  # fast step: also measure the decoder's gradient from each part of L_D (a logged step)


# The sources of the fakes' codes (--fakes). Every source but the prior starts from the posterior means of the batch's
# real images, as the encoder gives them before this step's update.
FAKES = {"prior": "n ~ N(0, I), as the official code",
         "mix": "the point t ~ U(0, 1) of the straight line from one real image's code to the next one's (a walk's "
                "frame, as ACAI's and AMR's mixes)",
         "arc": "the same point on the great circle (slerp)",
         "fitted": "the Gaussian fitted to the batch's codes (codes.fitted)"}


# The priors of the KL terms and of the fakes (--prior). The exemplar prior takes the batch's real images as its
# random subset of exemplars, their codes as the encoder gives them before this step's update (Exemplar VAE's
# subsampling); each real image's KL leaves its own code out of its prior.
PRIORS = {"normal": "N(0, I), as the official code",
          "exemplar": "the mixture of N(code, I) over the batch's real images' codes (Exemplar VAE, Norouzi et al. "
                      "2020), each real image's own code left out of its prior; the fakes are drawn from it"}


def fake_sources(fakes):
    """The sources of a --fakes value, "prior" or e.g. "prior+mix"; ValueError if one is unknown or repeated."""
    sources = fakes.split("+")
    if not set(sources) <= set(FAKES) or len(set(sources)) < len(sources):
        raise ValueError(f"--fakes takes sources among {', '.join(FAKES)}, each once, joined by +; got {fakes!r}")
    return sources


def draw_noise(batch, z_dim, generator, device, augment=False, fakes="prior", acai=False):
    """Every random number of one step, drawn up front: n, eps for each reparameterisation, with augment the
    augmentations of the real, rec and fake images the encoder judges, what the fakes' sources need: t, where
    on a mix or an arc a fake lies, w, the weights of a fitted code, and with acai a ~ U(0, 1/2), where the mix that
    ACAI's critic scores lies."""
    names = ("n", "eps", "eps_r", "eps_f", "eps_dr", "eps_df")  # eps_dr, eps_df: the decoder's L_rr, L_fr
    noise = {k: torch.randn(batch, z_dim, generator=generator, device=device) for k in names}
    if augment:
        noise.update({k: augment_uniforms(batch, generator, device) for k in ("aug_x", "aug_r", "aug_f")})
    sources = fake_sources(fakes)
    if {"mix", "arc"} & set(sources):
        noise["t"] = torch.rand(batch, 1, generator=generator, device=device)
    if "fitted" in sources:
        noise["w"] = torch.randn(batch, batch, generator=generator, device=device)
    if acai:
        noise["a"] = 0.5 * torch.rand(batch, 1, generator=generator, device=device)
    return noise


def bare(net):
    """The module itself, outside DistributedDataParallel: for passes that must not synchronise gradients."""
    return net.module if isinstance(net, DistributedDataParallel) else net


def full(t):
    """t in float32 when autocast made it bf16: KL, AS, expELBO and errors are computed in float32."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def encode(E, x):
    mu, logvar = E(x)
    return full(mu), full(logvar)


def real_means(E, x):
    """The real images' codes: their posterior means from the encoder as it is before this step's update."""
    with torch.no_grad():
        return full(bare(E)(x)[0])


def exemplars(E, x, hp):
    """The exemplar prior's centres (--prior exemplar): the real images' codes (real_means); None for N(0, I)."""
    return real_means(E, x) if hp.prior == "exemplar" else None


def prior_kl(mu, logvar, centres, real=False):
    """KL(q || prior) per image: to N(0, I), or to the exemplar prior of these centres (losses.kl_exemplars), from
    which real images leave their own codes out."""
    return kl_divergence(mu, logvar) if centres is None else kl_exemplars(mu, logvar, centres, leave_out=real)


def game_codes(E, x, noise, hp, centres=None):
    """The codes the game decodes: the fakes' (fake_codes), and with --acai the mixes that ACAI's critic scores
    (else None): the point a of the way from each real image's code to the next one's. centres: the real images'
    codes, where the exemplar prior has them already."""
    if not hp.acai:
        return fake_codes(E, x, noise, hp, centres), None
    mu = real_means(E, x) if centres is None else centres
    return fake_codes(E, x, noise, hp, mu), codes.mix(mu, mu.roll(1, 0), noise["a"])


def fake_codes(E, x, noise, hp, mu=None):
    """The codes the fakes are decoded from: each source of --fakes (FAKES) gives an equal share of the batch, in
    order. The prior's are n, or under --prior exemplar each real image's code plus n, a draw of that prior. Every
    other source starts from the real images' codes mu too (real_means, unless given); a mix or an arc joins each
    to the next one's."""
    sources = fake_sources(hp.fakes)
    if sources == ["prior"] and hp.prior == "normal":
        return noise["n"]
    mu = real_means(E, x) if mu is None else mu
    made = {"prior": lambda: noise["n"] if hp.prior == "normal" else mu + noise["n"],
            "mix": lambda: codes.mix(mu, mu.roll(1, 0), noise["t"]),
            "arc": lambda: codes.arc(mu, mu.roll(1, 0), noise["t"]), "fitted": lambda: codes.fitted(mu, noise["w"])}
    rows = torch.arange(len(x), device=x.device).tensor_split(len(sources))
    return torch.cat([made[source]()[r] for source, r in zip(sources, rows)])


def judged(y, noise, kind, hp):
    """An image as the encoder judges it: augmented with the step's uniforms of its kind under --augment."""
    return augment(y, noise["aug_" + kind], hp.augment) if hp.augment else y


def real_reconstruction(x, rec, hp, E=None):
    """L_rec: the mean over the batch of R(x, rec), plus the --contrast-weight and --rec-loss terms. The
    encoder-feature distance enters the decoder update only (E given): the encoder could make any two images alike
    in its own features."""
    r = reconstruction_error(x, rec)
    if hp.contrast_weight:
        r = r + contrast_weighted_error(x, rec, hp.contrast_weight)
    if hp.rec_loss == "ffl":
        r = r + focal_frequency_error(x, rec)
    elif hp.rec_loss == "features" and E is not None:
        with torch.no_grad():
            target = [full(f) for f in E.features(x)]
        r = r + hp.feature_weight * feature_error(target, [full(f) for f in E.features(rec)], x)
    return r.mean()


def as_term(mu_a, lv_a, mu_b, lv_b, c, reduction):
    """AS of two batches of (tanh-squashed) posteriors; not computed when its weight 1 - c is 0 (always computed when c
    is a device tensor, as in a CUDA graph: a graph cannot choose by its value)."""
    if not torch.is_tensor(c) and c == 1:
        return mu_a.new_zeros(())
    return as_distance(mu_a, lv_a, mu_b, lv_b, reduction)


def encoder_objective(E, D, x, fake, noise, hp, c, mixed=None, centres=None):
    """Steps 2-6 of the encoder update: L_E and the logged terms; with --acai, ACAI's critic learns on the decoded
    mixes `mixed` (as fake, without the decoder's graph); with --prior exemplar, the KL terms are to the prior of
    the centres (exemplars).

    rec = D(z) runs through D as given (the fast step reuses its graph for the decoder update); the
    other decoder passes run outside DistributedDataParallel, since they never update D.
    """
    mu, logvar = encode(E, x)
    z = reparameterize(mu, logvar, noise["eps"])
    rec = full(D(z))
    l_rec = real_reconstruction(x, rec, hp)
    l_kl = prior_kl(mu, logvar, centres, real=True).mean()
    if fake is None:  # --method vae: the plain VAE's ELBO, no introspection
        loss = encoder_loss(l_rec, l_kl, 0.0, 0.0, hp.beta_rec, hp.beta_kl, hp.scale)
        return loss, z, rec, _detached(dict(loss_e=loss, rec=hp.scale * l_rec, kl_real=l_kl))

    seen_r, seen_f = judged(rec, noise, "r", hp), judged(fake, noise, "f", hp)  # as the encoder judges them
    mu_r, lv_r = encode(E, seen_r.detach())
    rec_rec = full(bare(D)(reparameterize(mu_r, lv_r, noise["eps_r"])))
    mu_f, lv_f = encode(E, seen_f)
    rec_fake = full(bare(D)(reparameterize(mu_f, lv_f, noise["eps_f"])))

    squashed_r, squashed_f = squash(mu_r, lv_r), squash(mu_f, lv_f)
    if hp.method == "as" and hp.tanh == "both":
        mu_r, lv_r, mu_f, lv_f = *squashed_r, *squashed_f
    kl_r, kl_f = prior_kl(mu_r, lv_r, centres), prior_kl(mu_f, lv_f, centres)  # (B,) each, raw unless --tanh both
    r_r, r_f = reconstruction_error(seen_r, rec_rec), reconstruction_error(seen_f, rec_fake)  # rec not detached
    dist = as_term(*squashed_r, *squashed_f, c, "sum")
    elbo_r = exp_elbo(r_r, kl_r, dist, hp.beta_rec, hp.beta_neg, c, hp.scale)
    elbo_f = exp_elbo(r_f, kl_f, dist, hp.beta_rec, hp.beta_neg, c, hp.scale)
    loss = encoder_loss(l_rec, l_kl, elbo_r, elbo_f, hp.beta_rec, hp.beta_kl, hp.scale)
    stats = dict(loss_e=loss, rec=hp.scale * l_rec, kl_real=l_kl, exp_elbo_r=elbo_r, exp_elbo_f=elbo_f,
                 dist_e=dist)
    if hp.augment:  # augmented real images must look real too, or augmentation itself would tell fakes apart
        kl_aug = prior_kl(*encode(E, judged(x, noise, "x", hp)), centres, real=True).mean()
        loss = loss + hp.scale * hp.beta_kl * kl_aug
        stats.update(loss_e=loss, kl_real_aug=kl_aug)
    if hp.acai:  # the critic guesses where between two codes each mix lay, and 0 for real images and blends of them
        blend = ACAI_BLEND * x + (1 - ACAI_BLEND) * rec.detach()
        l_critic = ((full(E(mixed, critic=True)) - noise["a"].squeeze(1)) ** 2).mean() \
            + (full(E(blend, critic=True)) ** 2).mean()
        loss = loss + hp.acai * l_critic
        stats.update(loss_e=loss, critic=l_critic)
    return loss, z, rec, _detached(stats)


def decoder_objective(E, D, x, fake, rec, noise, hp, c, literal=False, mixed=None, centres=None):
    """Steps 1-5 of the decoder update given fake = D(n) and rec = D(z): L_D, its reconstruction part
    s beta_rec L_rec, and the logged terms (with the fraction of saturated posterior coordinates). With --acai,
    mixed = D(m), the decoded mixes, which ACAI's critic should take for real images; with --prior exemplar, the
    KL terms are to the prior of the centres.

    literal: compute L_rr and L_fr even when gamma_r = 0 (the reference computes every term).
    """
    l_rec = real_reconstruction(x, rec, hp, bare(E))
    rec_part = hp.scale * hp.beta_rec * l_rec  # the rest of L_D is the adversarial part
    if fake is None:  # --method vae
        return rec_part, rec_part, _detached(dict(loss_d=rec_part))
    seen_r, seen_f = judged(rec, noise, "r", hp), judged(fake, noise, "f", hp)  # gradients flow through them
    mu_r, lv_r = encode(bare(E), seen_r)
    mu_f, lv_f = encode(bare(E), seen_f)
    l_rr = l_fr = None
    if hp.gamma_r or literal:  # the reconstructions of rec and fake only enter L_D weighted by gamma_r
        rec_rec = full(D(reparameterize(mu_r, lv_r, noise["eps_dr"]).detach()))
        rec_fake = full(D(reparameterize(mu_f, lv_f, noise["eps_df"]).detach()))
        l_rr = reconstruction_error(seen_r.detach(), rec_rec).mean()
        l_fr = reconstruction_error(seen_f.detach(), rec_fake).mean()
    stats = dict(sat_rec=saturation(mu_r, lv_r), sat_fake=saturation(mu_f, lv_f))
    kl_r, kl_f = (mu_r, lv_r), (mu_f, lv_f)
    if hp.method == "as":  # AS sees the squashed posteriors; the KL terms too unless --tanh as-only
        mu_r, lv_r = squash(mu_r, lv_r)
        mu_f, lv_f = squash(mu_f, lv_f)
        if hp.tanh == "all":
            kl_r, kl_f = (mu_r, lv_r), (mu_f, lv_f)
    k_r, k_f = prior_kl(*kl_r, centres).mean(), prior_kl(*kl_f, centres).mean()
    dist = as_term(mu_r, lv_r, mu_f, lv_f, c, "mean")
    beta_adv = hp.beta_kl if hp.beta_adv is None else hp.beta_adv
    loss = decoder_loss(l_rec, k_r, k_f, dist, hp.beta_rec, beta_adv, c, hp.scale, hp.gamma_r, l_rr, l_fr)
    if hp.acai:  # ACAI: the decoder draws mixes that the critic scores as real images, 0
        stats["acai"] = (full(bare(E)(mixed, critic=True)) ** 2).mean()
        loss = loss + hp.acai * stats["acai"]
    return loss, rec_part, _detached(dict(loss_d=loss, kl_rec=k_r, kl_fake=k_f, dist_d=dist, **stats))


def _set_requires_grad(module, flag):
    for p in module.parameters():
        p.requires_grad_(flag)


def reference_step(E, D, ema, opt_e, opt_d, x, noise, hp, c):
    """The literal iteration of the spec: encoder update, decoder update, EMA, each pass as written."""
    centres = exemplars(E, x, hp)
    n, m = game_codes(E, x, noise, hp, centres) if hp.method != "vae" else (None, None)
    # Encoder update: decoder parameters frozen.
    _set_requires_grad(E, True)
    _set_requires_grad(D, False)
    with torch.no_grad():
        fake = bare(D)(n) if n is not None else None
        mixed = bare(D)(m) if m is not None else None
    loss_e, z, _, stats = encoder_objective(E, D, x, fake, noise, hp, c, mixed, centres)
    opt_e.zero_grad(set_to_none=True)
    loss_e.backward()
    opt_e.step()

    # Decoder update: encoder parameters frozen.
    _set_requires_grad(E, False)
    _set_requires_grad(D, True)
    fake = D(n) if n is not None else None
    mixed = D(m) if m is not None else None
    rec = D(z.detach())
    loss_d, _, stats_d = decoder_objective(E, D, x, fake, rec, noise, hp, c, literal=True, mixed=mixed,
                                           centres=centres)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    _set_requires_grad(E, True)

    with torch.no_grad():  # EMA of the decoder, parameter by parameter
        for p_ema, p in zip(ema.parameters(), bare(D).parameters()):
            p_ema.copy_(hp.ema_decay * p_ema + (1 - hp.ema_decay) * p)
    return _finish(stats, stats_d)


def fast_step(E, D, ema, opt_e, opt_d, x, noise, hp, c):
    """Same mathematics as reference_step; fake and rec are computed once and serve both updates."""
    # (a CUDA graph being captured must not keep autocast's casts of the weights from one replay to the next)
    capturing = x.device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()
    autocast = torch.autocast(x.device.type, torch.bfloat16, enabled=hp.bf16, cache_enabled=not capturing)
    with autocast:
        # fake and mixed keep the decoder's graph: the decoder update backpropagates through them
        centres = exemplars(E, x, hp)
        n, m = game_codes(E, x, noise, hp, centres) if hp.method != "vae" else (None, None)
        fake = full(D(n)) if n is not None else None
        mixed = full(D(m)) if m is not None else None
        # Encoder update: gradients flow through D to E, but only E's parameters receive them.
        loss_e, _, rec, stats = encoder_objective(E, D, x, _detach(fake), noise, hp, c, _detach(mixed), centres)
    opt_e.zero_grad(set_to_none=True)
    loss_e.backward(inputs=list(bare(E).parameters()), retain_graph=True)  # D(z)'s graph is reused below
    opt_e.step()
    del loss_e  # frees the rest of the encoder update's graph before the decoder update builds its own

    # Decoder update: D's weights are unchanged, so fake and rec are the same tensors the spec recomputes.
    # The updated encoder runs on them; only D's parameters receive gradients.
    with autocast:
        loss_d, rec_part, stats_d = decoder_objective(E, D, x, fake, rec, noise, hp, c, mixed=mixed, centres=centres)
    params = list(bare(D).parameters())
    opt_d.zero_grad(set_to_none=True)
    if hp.probe:  # what drives the decoder: the gradient of its reconstruction part, apart from the rest
        grad_rec = torch.autograd.grad(rec_part, params, retain_graph=True, allow_unused=True)
    loss_d.backward(inputs=params)
    if hp.probe:
        stats_d.update(gradient_norms(grad_rec, [p.grad for p in params]))
    opt_d.step()

    follow(ema, D, hp.ema_decay)
    return _finish(stats, stats_d)


def finish_step(E, D, opt, z, x, hp, ema=None):
    """One update of the decoder alone on fixed codes z of the images x: s L_rec(x, D(z)) with the finishing's
    weights in hp (its contrast weight; the run's --rec-loss and --feature-weight), the game's terms left out. E,
    frozen in eval mode, only judges the feature distance. The moving average ema, if given, follows the decoder.
    Returns the loss and rec, s times the plain squared error (as the training steps' rec)."""
    with torch.autocast(x.device.type, torch.bfloat16, enabled=hp.bf16):
        rec = full(D(z))
        loss = hp.scale * real_reconstruction(x, rec, hp, E)
    params = list(bare(D).parameters())
    opt.zero_grad(set_to_none=True)
    loss.backward(inputs=params)
    opt.step()
    if ema is not None:
        follow(ema, D, hp.ema_decay)
    return _detached(dict(loss_finish=loss, rec=hp.scale * reconstruction_error(x, rec.detach()).mean()))


def finish_order(n, batch_size, seed, start=0):
    """The finishing's batches of indices of n images from its step `start` on, endless: pass after pass, each in
    a new order drawn from seed. The orders of the passes before start are drawn again, so that a finishing resumed
    at any step takes the batches it would have taken."""
    order = torch.Generator().manual_seed(seed)
    passes = (torch.randperm(n, generator=order).split(batch_size) for _ in itertools.count())
    return itertools.islice(itertools.chain.from_iterable(passes), start, None)


def follow(ema, D, decay):
    """The moving average ema of the decoder's weights one step further: one foreach lerp over all tensors, or, for a
    decay in a device tensor (a CUDA graph reads it at each replay), decay x ema + (1 - decay) x weights."""
    averaged, weights = list(ema.parameters()), list(bare(D).parameters())
    if torch.is_tensor(decay):
        with torch.no_grad():
            torch._foreach_mul_(averaged, decay)
            torch._foreach_add_(averaged, torch._foreach_mul(weights, 1 - decay))
    else:
        get_ema_multi_avg_fn(decay)(averaged, weights, None)


def gradient_norms(grad_rec, grad_total):
    """Norms of the decoder's gradient from reconstruction and from the adversarial rest of L_D."""
    pairs = [(r if r is not None else torch.zeros_like(t), t) for r, t in zip(grad_rec, grad_total) if t is not None]
    rec = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(r.float()) for r, _ in pairs]))
    adv = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm((t - r).float()) for r, t in pairs]))
    return dict(grad_rec=rec, grad_adv=adv)


def _detach(t):
    return None if t is None else t.detach()


def _detached(stats):
    """Logged values without their graphs, which would otherwise live until the step ends."""
    return {k: v.detach() for k, v in stats.items()}


def _finish(stats_e, stats_d):
    stats = {**stats_e, **stats_d}
    if "kl_fake" in stats:
        stats["diff_kl"] = stats["kl_fake"] - stats["kl_real"]
    return stats
