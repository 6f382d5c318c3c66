"""The fast step has the same mathematics as the spec's literal step."""
import copy
import math

import pytest
import torch

from losses import contrast_weighted_error, image_scale
from models import build_model, count_parameters, preset_config
from step import (Hyper, draw_noise, exemplars, fake_codes, fast_step, prior_kl, real_reconstruction,
                  reference_step)


def run(step_fn, model, x, noise, hp, c, memory_format):
    model = copy.deepcopy(model).to(memory_format=memory_format)
    ema = copy.deepcopy(model.decoder)
    opt_e = torch.optim.Adam(model.encoder.parameters(), 2e-4)
    opt_d = torch.optim.Adam(model.decoder.parameters(), 2e-4)
    stats = step_fn(model.encoder, model.decoder, ema, opt_e, opt_d, x.contiguous(memory_format=memory_format),
                    noise, hp, c)
    return stats, dict(model.named_parameters()), dict(ema.named_parameters())


@pytest.mark.parametrize("method,c,options", [
    ("as", 0.0, {}), ("as", 0.6, {}), ("soft", 1.0, {}), ("as", 0.6, {"tanh": "both"}),
    ("as", 0.6, {"augment": 0.5}), ("as", 0.6, {"rec_loss": "ffl"}), ("soft", 1.0, {"rec_loss": "features"}),
    ("as", 0.3, {"beta_adv": 2.0, "tanh": "as-only"}), ("soft", 1.0, {"fakes": "mix"}),
    ("as", 0.6, {"fakes": "prior+arc"}), ("as", 0.6, {"fakes": "fitted+mix", "tanh": "as-only"}),
    ("vae", 1.0, {"rec_loss": "features"}), ("as", 0.6, {"rec_loss": "features", "contrast_weight": 40.0}),
    ("as", 0.6, {"acai": 0.5}), ("soft", 1.0, {"acai": 0.1, "fakes": "prior+mix", "rec_loss": "features"}),
    ("as", 0.6, {"acai": 0.5, "critic": "net"}), ("as", 0.6, {"prior": "exemplar", "tanh": "as-only"}),
    ("vae", 1.0, {"prior": "exemplar"}), ("soft", 1.0, {"prior": "exemplar", "fakes": "prior+mix", "acai": 0.1}),
    ("as", 0.6, {"prior": "exemplar", "tanh": "as-only", "augment": 0.5})])
def test_fast_step_equals_reference(method, c, options):
    torch.manual_seed(0)
    options = dict(options)
    cfg = preset_config("tiny", critic=options.pop("critic", "head") if "acai" in options else "")
    model = build_model(cfg)
    x = torch.rand(4, 3, 64, 64)
    noise = draw_noise(4, cfg.z_dim, torch.Generator().manual_seed(1), "cpu", augment="augment" in options,
                       fakes=options.get("fakes", "prior"), acai="acai" in options)
    hp = Hyper(1.0, 0.5, 256.0, 0.0, image_scale(64), method, **options)
    ref = run(reference_step, model, x, noise, hp, c, torch.contiguous_format)
    fast = run(fast_step, model, x, noise, hp, c, torch.contiguous_format)
    for k in ref[0]:
        assert torch.equal(ref[0][k], fast[0][k]), k  # same operations in the same layout: bit for bit
    for k in ref[1]:
        assert torch.equal(ref[1][k], fast[1][k]), k
    for k in ref[2]:
        assert torch.allclose(ref[2][k], fast[2][k], rtol=1e-6, atol=1e-9), k  # lerp vs mul-add


def test_fast_step_equals_reference_with_anti_aliased_resampling_and_the_head_norm():
    torch.manual_seed(0)
    cfg = preset_config("tiny", upsample="bilinear", downsample="blur", head_norm=True)
    model = build_model(cfg).double()
    x = torch.rand(4, 3, 64, 64, dtype=torch.float64)
    noise = {k: v.double() for k, v in draw_noise(4, cfg.z_dim, torch.Generator().manual_seed(1), "cpu",
                                                  fakes="prior+mix").items()}
    hp = Hyper(0.1, 1.0, 256.0, 0.0, image_scale(64), "as", tanh="as-only", rec_loss="features", fakes="prior+mix")
    ref = run(reference_step, model, x, noise, hp, 0.6, torch.contiguous_format)
    fast = run(fast_step, model, x, noise, hp, 0.6, torch.channels_last)
    for k in ref[1]:
        assert torch.allclose(ref[1][k], fast[1][k], rtol=1e-10, atol=1e-13), k


def test_fast_step_in_channels_last_matches_closely():
    torch.manual_seed(0)
    cfg = preset_config("tiny")
    model = build_model(cfg)
    x = torch.rand(4, 3, 64, 64)
    noise = draw_noise(4, cfg.z_dim, torch.Generator().manual_seed(1), "cpu")
    hp = Hyper(1.0, 0.5, 256.0, 0.0, image_scale(64))
    ref = run(reference_step, model, x, noise, hp, 0.3, torch.contiguous_format)
    fast = run(fast_step, model, x, noise, hp, 0.3, torch.channels_last)
    for k in ref[0]:
        assert fast[0][k].item() == pytest.approx(ref[0][k].item(), rel=1e-3, abs=1e-5), k


def test_bf16_autocast_rounds_but_leaves_float64_alone():
    """bench.py's max_rel_diff compares the steps in float64, which autocast does not touch; in float32,
    bf16 autocast changes the losses by rounding only."""
    torch.manual_seed(0)
    cfg = preset_config("tiny")
    model = build_model(cfg)
    x = torch.rand(4, 3, 64, 64)
    noise = draw_noise(4, cfg.z_dim, torch.Generator().manual_seed(1), "cpu")
    hp, hp_bf16 = Hyper(1.0, 0.5, 256.0, 0.0, image_scale(64)), Hyper(1.0, 0.5, 256.0, 0.0, image_scale(64), bf16=True)
    ref = run(reference_step, model, x, noise, hp, 0.3, torch.contiguous_format)
    fast = run(fast_step, model, x, noise, hp_bf16, 0.3, torch.channels_last)
    rounded = [abs(fast[0][k].item() / ref[0][k].item() - 1) for k in ("rec", "kl_real", "loss_d")]
    assert 1e-6 < max(rounded) < 0.05  # bf16 really ran, and it only rounds
    model64 = copy.deepcopy(model).double()
    x64, noise64 = x.double(), {k: v.double() for k, v in noise.items()}
    ref = run(reference_step, model64, x64, noise64, hp, 0.3, torch.contiguous_format)
    fast = run(fast_step, model64, x64, noise64, hp_bf16, 0.3, torch.channels_last)
    for k in ref[1]:
        assert torch.allclose(ref[1][k], fast[1][k], rtol=1e-10, atol=1e-13), k


def test_gamma_r_terms_change_the_reference_loss():
    torch.manual_seed(0)
    cfg = preset_config("tiny")
    model = build_model(cfg)
    x = torch.rand(4, 3, 64, 64)
    noise = draw_noise(4, cfg.z_dim, torch.Generator().manual_seed(1), "cpu")
    losses = [run(reference_step, model, x, noise, Hyper(1.0, 0.5, 256.0, g, image_scale(64)), 0.3,
                  torch.contiguous_format)[0]["loss_d"].item() for g in (0.0, 1.0)]
    assert losses[1] > losses[0]  # the reconstruction-of-reconstruction terms are really there


def test_presets():
    assert count_parameters(build_model(preset_config("full"))) == pytest.approx(43e6, rel=0.05)
    assert count_parameters(build_model(preset_config("small"))) == pytest.approx(3.8e6, rel=0.05)
    tiny = build_model(preset_config("tiny"))
    mu, logvar = tiny.encoder(torch.rand(2, 3, 64, 64))
    assert mu.shape == logvar.shape == (2, 32)
    assert tiny.decoder(mu).shape == (2, 3, 64, 64)
    assert preset_config("full", image_size=128).widths == (64, 128, 256, 512, 512)
    with pytest.raises(ValueError):
        preset_config("full", image_size=100)


def test_beta_adv_weighs_the_decoders_adversarial_terms_only():
    torch.manual_seed(0)
    cfg = preset_config("tiny")
    model = build_model(cfg)
    x = torch.rand(4, 3, 64, 64)
    noise = draw_noise(4, cfg.z_dim, torch.Generator().manual_seed(1), "cpu")

    def step(beta_rec, beta_adv):
        hp = Hyper(0.1, beta_rec, 256.0, 0.0, image_scale(64), beta_adv=beta_adv)
        return run(fast_step, model, x, noise, hp, 0.5, torch.contiguous_format)[0]

    assert torch.equal(step(1.0, None)["loss_d"], step(1.0, 0.1)["loss_d"])  # tied to beta_kl by default, as official
    assert torch.equal(step(1.0, 0.1)["loss_e"], step(1.0, 1.0)["loss_e"])  # the encoder's loss does not see it
    # without the reconstruction term, L_D is the adversarial part alone: ten times the weight, ten times the loss
    assert step(0.0, 1.0)["loss_d"].item() == pytest.approx(10 * step(0.0, 0.1)["loss_d"].item(), rel=1e-5)


def test_feature_weight_scales_the_feature_distance_of_the_decoder_update():
    torch.manual_seed(0)
    E = build_model(preset_config("tiny")).encoder
    x, rec = torch.rand(4, 3, 64, 64), torch.rand(4, 3, 64, 64)

    def l_rec(weight, rec_loss="features", encoder=E):
        hp = Hyper(1.0, 0.5, 256.0, 0.0, image_scale(64), rec_loss=rec_loss, feature_weight=weight)
        return real_reconstruction(x, rec, hp, encoder).item()

    assert l_rec(0.0) == pytest.approx(l_rec(1.0, "mse"))  # weight 0: the squared error alone
    assert l_rec(1.0) > l_rec(0.0)
    assert l_rec(3.0) - l_rec(0.0) == pytest.approx(3 * (l_rec(1.0) - l_rec(0.0)), rel=1e-4)
    assert l_rec(3.0, encoder=None) == l_rec(0.0)  # the encoder update (no E given) never sees it


def test_contrast_weight_adds_the_weighted_error_to_both_updates():
    torch.manual_seed(0)
    E = build_model(preset_config("tiny")).encoder
    x, rec = torch.rand(4, 3, 64, 64), torch.rand(4, 3, 64, 64)

    def l_rec(weight, encoder=None):
        hp = Hyper(1.0, 0.5, 256.0, 0.0, image_scale(64), rec_loss="features", contrast_weight=weight)
        return real_reconstruction(x, rec, hp, encoder).item()

    extra = contrast_weighted_error(x, rec, 40.0).mean().item()
    assert extra > 0
    assert l_rec(40.0) == pytest.approx(l_rec(0.0) + extra, rel=1e-5)  # the encoder update
    assert l_rec(40.0, E) == pytest.approx(l_rec(0.0, E) + extra, rel=1e-5)  # the decoder update


def test_mixed_fakes_are_decoded_from_points_between_two_real_codes():
    torch.manual_seed(0)
    model = build_model(preset_config("tiny"))
    x = torch.rand(6, 3, 64, 64)
    noise = draw_noise(6, 32, torch.Generator().manual_seed(1), "cpu", fakes="prior+mix+fitted")
    n = fake_codes(model.encoder, x, noise, Hyper(1.0, 0.5, 256.0, 0.0, image_scale(64), fakes="prior+mix+fitted"))
    mu = model.encoder(x)[0].detach()
    t = noise["t"]
    assert not n.requires_grad and n.shape == (6, 32)
    assert torch.equal(n[:2], noise["n"][:2])  # an equal share of the batch each, in order
    assert torch.allclose(n[2:4], ((1 - t) * mu + t * mu.roll(1, 0))[2:4], atol=1e-6)
    fit = mu.mean(0) + noise["w"] @ (mu - mu.mean(0)) / 5 ** 0.5
    assert torch.allclose(n[4:], fit[4:], atol=1e-5)
    assert fake_codes(model.encoder, x, noise, Hyper(1.0, 0.5, 256.0, 0.0, image_scale(64))) is noise["n"]


def test_the_exemplar_priors_fakes_are_real_codes_plus_n_and_its_kl_leaves_each_real_image_out():
    torch.manual_seed(0)
    model = build_model(preset_config("tiny"))
    x = torch.rand(6, 3, 64, 64)
    noise = draw_noise(6, 32, torch.Generator().manual_seed(1), "cpu", fakes="prior+mix")
    hp = Hyper(1.0, 0.5, 256.0, 0.0, image_scale(64), fakes="prior+mix", prior="exemplar")
    mu = model.encoder(x)[0].detach()
    n = fake_codes(model.encoder, x, noise, hp)
    assert torch.allclose(n[:3], (mu + noise["n"])[:3], atol=1e-6)  # a draw of the prior: a code plus N(0, I)
    assert torch.allclose(n[3:], ((1 - noise["t"]) * mu + noise["t"] * mu.roll(1, 0))[3:], atol=1e-6)
    centres = exemplars(model.encoder, x, hp)
    assert torch.allclose(centres, mu, atol=1e-6)
    assert exemplars(model.encoder, x, Hyper(1.0, 0.5, 256.0, 0.0, 1.0)) is None  # N(0, I) has none
    unit = torch.zeros(6, 32)  # posteriors N(centre, I): each a component of the prior
    assert (prior_kl(mu, unit, centres) <= math.log(6) + 1e-5).all()
    others = -0.5 * torch.cdist(mu, mu).square() - torch.eye(6) * 1e9  # log of each other component's overlap
    assert torch.allclose(prior_kl(mu, unit, centres, real=True), math.log(5) - others.logsumexp(1), atol=1e-4)


@pytest.mark.parametrize("fakes", ["mix+mix", "prior+normal", "", "Prior"])
def test_unknown_or_repeated_fake_sources_are_refused(fakes):
    with pytest.raises(ValueError, match="--fakes takes sources among prior, mix, arc, fitted"):
        draw_noise(6, 32, torch.Generator(), "cpu", fakes=fakes)


def test_acai_adds_its_weighted_terms_and_trains_the_critic_head_in_the_encoder_update_only():
    torch.manual_seed(0)
    cfg = preset_config("tiny", critic="head")
    model = build_model(cfg)
    x = torch.rand(4, 3, 64, 64)
    noise = draw_noise(4, cfg.z_dim, torch.Generator().manual_seed(1), "cpu", acai=True)
    assert 0 <= noise["a"].min() and noise["a"].max() <= 0.5  # ACAI's mixes lie up to halfway to the other code

    def step(weight):
        return run(fast_step, model, x, noise, Hyper(0.1, 1.0, 256.0, 0.0, image_scale(64), acai=weight), 0.5,
                   torch.contiguous_format)

    (plain, plain_weights, _), (stats, weights, _) = step(0.0), step(0.5)
    # the critic's terms: its squared error on the mixes' positions and on real images blended with their
    # reconstructions (target 0) in L_E, the squared scores of the mixes in L_D, each times the weight
    assert stats["loss_e"].item() == pytest.approx(plain["loss_e"].item() + 0.5 * stats["critic"].item(), rel=1e-5)
    assert stats["loss_d"].item() == pytest.approx(plain["loss_d"].item() + 0.5 * stats["acai"].item(), rel=1e-5)
    assert stats["critic"] > 0 and stats["acai"] > 0
    head = model.encoder.critic.weight
    assert torch.equal(plain_weights["encoder.critic.weight"], head)  # without the terms it idles
    assert not torch.equal(weights["encoder.critic.weight"], head)
    assert model.encoder(x, critic=True).shape == (4,)


@pytest.mark.parametrize("critic", ["head", "net"])
def test_a_critic_net_learns_apart_from_the_encoder_where_the_head_moves_its_features(critic):
    """ACAI's terms move the encoder's own weights (its convolutions and code layer) through a head that reads its
    features, and leave them as they would be without the terms when the critic is a network of its own."""
    torch.manual_seed(0)
    model = build_model(preset_config("tiny", critic=critic))
    torch.nn.init.normal_(model.encoder.critic.weight if critic == "head" else model.encoder.critic.head.weight)
    x = torch.rand(4, 3, 64, 64)
    noise = draw_noise(4, 32, torch.Generator().manual_seed(1), "cpu", acai=True)

    def step(weight):
        hp = Hyper(0.1, 1.0, 256.0, 0.0, image_scale(64), acai=weight)
        return run(fast_step, model, x, noise, hp, 0.5, torch.contiguous_format)[1]

    plain, weighed = step(0.0), step(0.5)
    own = [k for k in plain if k.startswith("encoder.") and not k.startswith("encoder.critic")]
    moved = [k for k in own if not torch.equal(plain[k], weighed[k])]
    assert moved if critic == "head" else not moved
    assert not torch.equal(plain["decoder.fc.0.weight"], weighed["decoder.fc.0.weight"])  # the decoder felt it
    critic_moved = [not torch.equal(plain[k], weighed[k]) for k in plain if k.startswith("encoder.critic")]
    assert critic_moved and all(critic_moved)
