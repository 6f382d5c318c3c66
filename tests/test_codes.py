"""codes.py: mixes of two codes and the Gaussian fitted to a set of codes."""
import pytest
import torch

import codes
import latent


def test_fitted_codes_have_the_mean_and_covariance_of_the_codes():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(12, 5, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1, 0.1, 2, 1]) + 4
    z = codes.fitted(bank, torch.randn(200_000, 12, generator=g, dtype=torch.float64))
    assert torch.allclose(z.mean(0), bank.mean(0), atol=0.03)
    assert torch.allclose(torch.cov(z.T), torch.cov(bank.T), rtol=0.03, atol=0.02)
    # the codes span at most N - 1 directions: the samples stay in the codes' affine hull
    one = codes.fitted(bank[:2], torch.randn(50, 2, generator=g, dtype=torch.float64))
    direction = (bank[1] - bank[0]) / (bank[1] - bank[0]).norm()
    off = (one - bank[0]) - ((one - bank[0]) @ direction)[:, None] * direction
    assert off.abs().max() < 1e-9


def test_arc_row_by_row_is_the_walk_of_each_pair():
    """The batched great circle of the fakes equals the notebook's walk of each pair, straight lines included."""
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(5, 16, generator=g, dtype=torch.float64), torch.randn(5, 16, generator=g, dtype=torch.float64)
    z1[2] = 3 * z0[2]  # parallel: no unique great circle
    t = torch.rand(5, 1, generator=g, dtype=torch.float64)
    batched = codes.arc(z0, z1, t)
    for k in range(5):
        walk = latent.slerp(z0[k], z1[k], 101)  # t on a grid of 0.01: compare at the grid point nearest t
        step = round(t[k].item() * 100)
        assert torch.allclose(codes.arc(z0[k], z1[k], torch.tensor([step / 100], dtype=torch.float64)), walk[step])
        assert torch.allclose(batched[k], codes.arc(z0[k:k + 1], z1[k:k + 1], t[k:k + 1])[0])
    assert torch.allclose(batched[2], codes.mix(z0[2], z1[2], t[2]))
    equal = z1 / z1.norm(dim=1, keepdim=True) * z0.norm(dim=1, keepdim=True)  # equal norms: the norm is kept
    assert torch.allclose(codes.arc(z0, equal, t).norm(dim=1), z0.norm(dim=1))


@pytest.mark.parametrize("n", [2, 7])
def test_pairs_are_of_two_distinct_indices(n):
    i, j = codes.pairs(n, 500, torch.Generator().manual_seed(0))
    assert (i != j).all() and i.max() < n and j.max() < n and len(set(zip(i.tolist(), j.tolist()))) > 1
