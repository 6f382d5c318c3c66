"""Properties the terms of docs/ALGORITHM.md must have."""
import math

import pytest
import torch

from losses import (as_distance, contrast_weighted_error, decoder_loss, encoder_loss, exp_elbo, feature_error,
                    focal_frequency_error, gaussian_kernel, image_scale, kl_divergence, kl_exemplars, local_contrast,
                    reconstruction_error, transition_coefficient)

torch.manual_seed(0)


def test_kl_is_zero_for_the_prior():
    assert torch.equal(kl_divergence(torch.zeros(4, 8), torch.zeros(4, 8)), torch.zeros(4))


def test_kl_matches_monte_carlo():
    mu, logvar = torch.tensor([[0.7, -1.2, 0.1]], dtype=torch.float64), torch.tensor([[-0.5, 0.4, 1.1]],
                                                                                     dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    z = q.sample((400_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean()
    assert kl_divergence(mu, logvar).item() == pytest.approx(mc.item(), abs=0.01)


def test_the_exemplar_priors_kl_is_exact_for_one_centre_and_bounds_the_mixtures_from_above():
    mu, logvar = torch.tensor([[0.7, -1.2, 0.1]], dtype=torch.float64), torch.tensor([[-0.5, 0.4, 1.1]],
                                                                                     dtype=torch.float64)
    assert torch.allclose(kl_exemplars(mu, logvar, torch.zeros(1, 3, dtype=torch.float64)), kl_divergence(mu, logvar))
    centres = torch.tensor([[0.0, -1.0, 0.5], [1.5, 0.0, -0.5], [-2.0, 2.0, 2.0]], dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    z = q.sample((400_000,))  # (n, 1, 3)
    log_p = torch.distributions.Normal(centres, 1.0).log_prob(z).sum(-1).logsumexp(-1) - math.log(3)
    mc = (q.log_prob(z).sum(-1).squeeze(1) - log_p).mean()  # the KL to the mixture itself
    bound = kl_exemplars(mu, logvar, centres)
    nearest = min(kl_divergence(mu - c, logvar) for c in centres)
    assert mc.item() < bound.item() <= nearest.item() + math.log(3) + 1e-9 and nearest.item() <= bound.item() + 1e-9


def test_the_exemplar_priors_kl_leaves_each_row_out_of_its_own_prior():
    mu, logvar = torch.randn(4, 8), torch.randn(4, 8)
    centres = torch.randn(4, 8)
    left_out = kl_exemplars(mu, logvar, centres, leave_out=True)
    for i in range(4):  # row i: the prior of the three other centres
        others = torch.cat([centres[:i], centres[i + 1:]])
        assert torch.allclose(left_out[i], kl_exemplars(mu[i:i + 1], logvar[i:i + 1], others)[0], atol=1e-5)


def test_kl_grows_away_from_the_prior():
    lv = torch.zeros(1, 4)
    assert kl_divergence(torch.full((1, 4), 2.0), lv) > kl_divergence(torch.full((1, 4), 1.0), lv) > 0


def test_reconstruction_error_is_a_per_image_sum():
    a, b = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    b[1, 0, 0, 0], b[1, 2, 3, 3] = 2.0, 1.0
    assert reconstruction_error(a, b).tolist() == [0.0, 5.0]
    assert image_scale(256) == 1 / (3 * 256 * 256)


def random_posterior(n=5, d=7):
    return torch.tanh(torch.randn(n, d)), torch.tanh(torch.randn(n, d))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_as_of_a_batch_against_itself_is_zero(reduction):
    mu, lv = random_posterior()
    assert as_distance(mu, lv, mu, lv, reduction).abs().item() < 1e-5


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_as_is_symmetric_and_non_negative(reduction):
    a, b = random_posterior(), random_posterior(6)
    ab, ba = as_distance(*a, *b, reduction), as_distance(*b, *a, reduction)
    assert ab.item() == pytest.approx(ba.item(), rel=1e-5)
    assert ab.item() > 0
    for _ in range(20):
        assert as_distance(*random_posterior(3, 2), *random_posterior(4, 2), reduction).item() > -1e-6


def test_as_by_hand_two_samples_two_dimensions():
    # A = {(mu, var)}: sample 1 mu (0, 1) var (1, 1); B: sample 1 mu (1, 1) var (1, 1); one sample each
    # in the first case; then two samples per batch.
    mu_a, var_a = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    mu_b, var_b = torch.tensor([[0.0, 2.0], [1.0, 0.0]]), torch.tensor([[1.0, 1.0], [1.0, 1.0]])

    def k(d2):  # kernel with v1 + v2 = 2
        return math.exp(-d2 / 4) / math.sqrt(2)

    # within A: dim 0 mus (0, 1): pairs (0,0),(1,1) d2=0, (0,1),(1,0) d2=1; dim 1 mus (0, 0): all d2=0
    kaa = 2 * k(0) + 2 * k(1) + 4 * k(0)
    # within B: dim 0 mus (0, 1): as A; dim 1 mus (2, 0): 2 k(0) + 2 k(4)
    kbb = 2 * k(0) + 2 * k(1) + 2 * k(0) + 2 * k(4)
    # across: dim 0 a (0, 1) b (0, 1): 2 k(0) + 2 k(1); dim 1 a (0, 0) b (2, 0): 2 k(4) + 2 k(0)
    kab = 2 * k(0) + 2 * k(1) + 2 * k(4) + 2 * k(0)
    want_sum = kaa + kbb - 2 * kab
    got = as_distance(mu_a, var_a.log(), mu_b, var_b.log(), "sum")
    assert got.item() == pytest.approx(want_sum, rel=1e-6)
    got_mean = as_distance(mu_a, var_a.log(), mu_b, var_b.log(), "mean")
    assert got_mean.item() == pytest.approx((kaa + kbb - 2 * kab) / 8, rel=1e-6)  # 4 pairs x 2 dims each


def test_kernel_is_the_overlap_of_two_gaussians():
    m1, v1, m2, v2 = 0.3, 0.5, -0.4, 1.2
    x = torch.linspace(-20, 20, 200_001, dtype=torch.float64)
    n1 = torch.distributions.Normal(m1, math.sqrt(v1)).log_prob(x).exp()
    n2 = torch.distributions.Normal(m2, math.sqrt(v2)).log_prob(x).exp()
    integral = torch.trapezoid(n1 * n2, x).item()
    k = gaussian_kernel(*(torch.tensor(v, dtype=torch.float64) for v in (m1, v1, m2, v2))).item()
    assert k / math.sqrt(2 * math.pi) == pytest.approx(integral, rel=1e-6)


def test_transition_coefficient():
    T = 1000
    cs = [transition_coefficient(t, T) for t in range(0, 2 * T, 7)]
    assert transition_coefficient(0, T) == 0
    assert all(b >= a for a, b in zip(cs, cs[1:]))
    assert max(cs) <= 1 and transition_coefficient(10 * T, T) == pytest.approx(1.0)
    assert transition_coefficient(int(0.4 * T), T) == pytest.approx(0.964, abs=1e-3)
    assert transition_coefficient(0, T, "soft") == 1.0


def test_exp_elbo_falls_as_its_terms_grow():
    r, kl = torch.full((3,), 1000.0), torch.full((3,), 20.0)
    dist, s = torch.tensor(5.0), image_scale(64)
    base = exp_elbo(r, kl, dist, 0.5, 256, 0.5, s)
    assert 0 < base < 1
    assert exp_elbo(r * 2, kl, dist, 0.5, 256, 0.5, s) < base
    assert exp_elbo(r, kl * 2, dist, 0.5, 256, 0.5, s) < base
    assert exp_elbo(r, kl, dist * 2, 0.5, 256, 0.5, s) < base
    assert exp_elbo(r, kl, dist, 0.5, 512, 0.5, s) < base  # a larger beta_neg pushes fakes harder
    assert exp_elbo(r, kl, dist, 0.5, 256, 1.0, s) == pytest.approx(
        torch.exp(-2 * s * (0.5 * r + 256 * kl)).mean().item())  # c = 1: Soft-IntroVAE's expELBO


def test_encoder_loss_directions():
    s = image_scale(64)
    base = encoder_loss(torch.tensor(100.0), torch.tensor(5.0), torch.tensor(0.3), torch.tensor(0.2), 0.5, 1.0, s)
    # the encoder minimises rec error and KL of real images...
    assert encoder_loss(torch.tensor(200.0), torch.tensor(5.0), torch.tensor(0.3), torch.tensor(0.2),
                        0.5, 1.0, s) > base
    assert encoder_loss(torch.tensor(100.0), torch.tensor(9.0), torch.tensor(0.3), torch.tensor(0.2),
                        0.5, 1.0, s) > base
    # ...and the expELBO of fakes: it wants their ELBO low (expELBO small)
    assert encoder_loss(torch.tensor(100.0), torch.tensor(5.0), torch.tensor(0.3), torch.tensor(0.6),
                        0.5, 1.0, s) > base


def test_encoder_gradient_raises_kl_of_fakes():
    """Through expELBO the encoder is pushed to give fakes a larger KL (it plays discriminator)."""
    mu_f = torch.zeros(4, 8, requires_grad=True)
    lv_f = torch.zeros(4, 8)
    s = image_scale(64)
    elbo_f = exp_elbo(torch.full((4,), 100.0), kl_divergence(mu_f + 0.1, lv_f), torch.tensor(0.0), 0.5, 256, 1.0, s)
    loss = encoder_loss(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0.0), elbo_f, 0.5, 1.0, s)
    loss.backward()
    step = -mu_f.grad  # gradient descent direction
    assert (kl_divergence(mu_f + 0.1 + 1e-3 * step.sign(), lv_f) > kl_divergence(mu_f + 0.1, lv_f)).all()


def test_decoder_loss_directions():
    s = image_scale(64)
    args = dict(beta_rec=0.5, beta_adv=1.0, c=0.5, scale=s)
    base = decoder_loss(torch.tensor(100.0), torch.tensor(5.0), torch.tensor(6.0), torch.tensor(0.1), **args)
    # the decoder wants low rec error, and fakes whose KL (and AS distance to recs) is low: it fools E
    assert decoder_loss(torch.tensor(150.0), torch.tensor(5.0), torch.tensor(6.0), torch.tensor(0.1), **args) > base
    assert decoder_loss(torch.tensor(100.0), torch.tensor(5.0), torch.tensor(9.0), torch.tensor(0.1), **args) > base
    assert decoder_loss(torch.tensor(100.0), torch.tensor(5.0), torch.tensor(6.0), torch.tensor(0.5), **args) > base
    with_rr = decoder_loss(torch.tensor(100.0), torch.tensor(5.0), torch.tensor(6.0), torch.tensor(0.1),
                           gamma_r=1.0, l_rr=torch.tensor(10.0), l_fr=torch.tensor(20.0), **args)
    assert with_rr.item() == pytest.approx(base.item() + s * 0.5 * 1.0 * 0.5 * 30.0)


def test_focal_frequency_error_is_at_most_r_and_equals_it_for_one_frequency():
    a = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    b = a + 0.1 * torch.randn_like(a)
    assert focal_frequency_error(a, a).abs().max() == 0
    ffl, r = focal_frequency_error(a, b), reconstruction_error(a, b)
    assert (ffl > 0).all() and (ffl < r).all()  # Parseval: the weights are at most 1
    wave = torch.cos(2 * math.pi * 3 * torch.arange(16.0, dtype=torch.float64) / 16).expand(1, 3, 16, 16)
    assert focal_frequency_error(a[:1] + wave, a[:1]).item() == pytest.approx(
        reconstruction_error(a[:1] + wave, a[:1]).item())  # the error's only frequency gets the full weight


def test_contrast_weighted_error_weighs_a_star_and_not_a_flat_or_shaded_sky():
    sky = torch.linspace(0.1, 0.3, 32).expand(1, 3, 32, 32).clone()  # a smooth vertical gradient
    star = sky.clone()
    star[..., 16, 16] += 0.5
    blur = star.clone()
    blur[..., 15:18, 15:18] = sky[..., 15:18, 15:18] + 0.5 / 9  # the star smeared over 3x3: R is small
    # a shaded sky has no contrast (but at the border, where the 7x7 mean repeats the edge): its error weighs little
    assert local_contrast(sky)[..., 3:-3].max() < 1e-6
    assert contrast_weighted_error(sky, sky + 0.1, 40.0) < 0.05 * reconstruction_error(sky, sky + 0.1)
    r, w = reconstruction_error(star, blur).item(), contrast_weighted_error(star, blur, 40.0).item()
    assert w > 10 * r  # the star's own pixel, 0.49 above its 7x7 mean, counts about 20 times over
    assert contrast_weighted_error(star, blur, 80.0).item() == pytest.approx(2 * w)
    assert contrast_weighted_error(star, star, 40.0).item() == 0


def test_feature_error_is_zero_for_equal_features_and_in_the_units_of_r():
    image = torch.rand(2, 3, 8, 8)
    target = [torch.randn(2, 4, 4, 4), torch.randn(2, 8, 2, 2)]
    assert feature_error(target, target, image).abs().max() == 0
    energy = (image - image.mean((1, 2, 3), keepdim=True)).square().flatten(1).sum(1)
    assert torch.allclose(feature_error(target, [torch.zeros_like(t) for t in target], image), energy)
