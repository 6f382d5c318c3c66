"""The augmentation of what the encoder judges: what each part does, and that gradients pass through it."""
import torch

from augment import CUTOUT, TRANSLATION, augment, cutout_mask, draw, translate


def test_probability_zero_is_the_identity_and_one_changes_every_image():
    x = torch.rand(5, 3, 32, 32)
    u = draw(5, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(augment(x, u, 0.0), x)
    y = augment(x, u, 1.0)
    assert all(not torch.equal(a, b) for a, b in zip(x, y))


def test_translation_moves_pixels_by_whole_pixels_and_fills_with_zeros():
    x = torch.arange(2 * 16 * 16, dtype=torch.float).view(1, 2, 16, 16) + 1
    limit = int(16 * TRANSLATION)  # 2 pixels
    u = torch.tensor([[1.0 - 1e-6, 0.0]])  # the largest shift right, the largest shift up
    y = translate(x, u)
    assert torch.equal(y[0, :, :-limit, limit:], x[0, :, limit:, :-limit])
    assert y[0, :, :, :limit].abs().sum() == 0 and y[0, :, -limit:, :].abs().sum() == 0
    assert torch.equal(translate(x, torch.full((1, 2), 0.5)), x)  # the middle of the range: no shift


def test_cutout_removes_one_square_of_the_stated_side():
    mask = cutout_mask((3, 3, 32, 32), torch.tensor([[0.5, 0.5], [0.0, 0.0], [0.99, 0.2]]), "cpu", torch.float)
    side = int(32 * CUTOUT) - 1  # |offset| < half: 2 half - 1 pixels
    assert (mask[0] == 0).sum() == side * side  # in the middle: the whole square
    assert 0 < (mask[1] == 0).sum() < side * side  # at a corner: part of it falls outside
    assert set(mask.unique().tolist()) == {0.0, 1.0}


def test_gradients_flow_through_the_augmentation():
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    u = draw(2, torch.Generator().manual_seed(1), "cpu")
    assert torch.autograd.gradcheck(lambda t: augment(t, u, 1.0), (x,))  # analytic gradient = finite differences
