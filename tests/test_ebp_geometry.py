"""EBP geometry: directions, the signed target, sampling and network input on shells,
the oracle iteration onto voxel balls, shell Dice, convergence and the pivot grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segline.experiments.ebp.geometry import (
    D0,
    TARGET_CLIP,
    TEST_ITERATIONS,
    converged,
    directions,
    end_points,
    input_channels,
    iterate,
    pivot_grid,
    reach,
    sample,
    shell_dice,
    shell_inputs,
    signed_target,
    target_step,
    update,
)

H = W = 32


def ball(n: int, centre: tuple[int, int, int], radius: float) -> np.ndarray:
    """Voxels whose centre is at most ``radius`` from ``centre`` in an ``n``³ volume."""
    z, y, x = np.ogrid[:n, :n, :n]
    d2 = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2
    return d2 <= radius * radius


def oracle_history(
    mask: np.ndarray, pivot: np.ndarray, h: int = H, w: int = W, iterations: int = 11
) -> torch.Tensor:
    """History (iterations + 1, 1, h, w) of the target-driven shell from D0."""
    target = torch.from_numpy(signed_target(mask))[None]
    dirs = torch.from_numpy(directions(h, w))
    p = torch.tensor(np.asarray(pivot, np.float32)[None])
    r0 = torch.full((1, h, w), D0)
    return iterate(lambda r: target_step(target, p, r, dirs), r0, iterations)


def test_constants():
    assert reach(TEST_ITERATIONS) == 27.0
    assert reach(10) == 25.0
    assert input_channels(1) == 16 and input_channels(2) == 26


def test_directions_unit_norm_and_published_angles():
    h, w = 5, 8
    u = directions(h, w).astype(np.float64)
    assert u.shape == (5, 8, 3) and directions(h, w).dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(u, axis=-1), 1.0, atol=1e-6)
    # cos p_i = 2 (i + 1) / (h + 1) - 1: -2/3, -1/3, 0, 1/3, 2/3 in every column
    rows = np.broadcast_to(np.array([-2, -1, 0, 1, 2])[:, None] / 3, (h, w))
    np.testing.assert_allclose(u[..., 0], rows, atol=1e-6)
    # azimuth q_j = 2 pi j / w of the (y, x) part: 0, 45, 90, ... degrees
    q = np.mod(np.arctan2(u[..., 1], u[..., 2]), 2 * math.pi)
    np.testing.assert_allclose(
        q, np.broadcast_to(2 * math.pi * np.arange(w) / w, (h, w)), atol=1e-6
    )
    # by hand: h = 2, w = 4, row 0 column 1: cos p = -1/3, q = 90 deg
    np.testing.assert_allclose(directions(2, 4)[0, 1], [-1 / 3, math.sqrt(8 / 9), 0.0], atol=1e-6)


def test_signed_target_by_hand_on_a_row():
    m = np.zeros((1, 1, 7), bool)
    m[0, 0, 1:6] = True
    t = signed_target(m)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t[0, 0], [-0.5, 0.5, 1.5, 2.5, 1.5, 0.5, -0.5])
    np.testing.assert_array_equal(
        signed_target(m, clip=1.0)[0, 0], [-0.5, 0.5, 1.0, 1.0, 1.0, 0.5, -0.5]
    )
    np.testing.assert_array_equal(signed_target(np.zeros((2, 3, 4), bool)), -TARGET_CLIP)
    np.testing.assert_array_equal(signed_target(np.ones((2, 3, 4), bool)), TARGET_CLIP)


def test_signed_target_on_a_voxel_ball():
    n, c = 41, (20, 20, 20)
    m = ball(n, c, 6)
    t = signed_target(m)
    six = np.zeros((3, 3, 3), bool)
    six[1, 1, :] = six[1, :, 1] = six[:, 1, 1] = True
    from scipy import ndimage

    surface = m & ~ndimage.binary_erosion(m, six)  # inside, a 6-neighbour outside
    outer = ~m & ndimage.binary_dilation(m, six)  # outside, a 6-neighbour inside
    assert surface.sum() > 100 and outer.sum() > 100
    np.testing.assert_array_equal(t[surface], 0.5)
    np.testing.assert_array_equal(t[outer], -0.5)
    assert (t[m] > 0).all() and (t[~m] < 0).all()
    # the nearest background voxels of the centre are the offsets (6, 1, 0) and the like
    assert t[c] == pytest.approx(math.sqrt(37) - 0.5)
    assert t[20, 20, 30] == -3.5  # 4 voxels beyond the surface voxel (20, 20, 26)
    assert t[0, 0, 0] == -TARGET_CLIP and t.max() == t[c] and t.min() == -TARGET_CLIP


def test_sample_trilinear_and_border():
    vol = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    # value = 60 c + 20 z + 5 y + x: linear, so trilinear sampling is exact
    pts = torch.tensor([[0.5, 1.25, 2.75], [2.0, 3.0, 4.0], [-3.0, 1.0, 9.0]])
    s = sample(vol, pts)
    assert s.shape == (2, 3)
    np.testing.assert_allclose(
        s[0].numpy(), [10 + 6.25 + 2.75, 40 + 15 + 4, 0 + 5 + 4], atol=1e-4
    )  # the last point reads the border: z clipped to 0, x to 4
    np.testing.assert_allclose((s[1] - s[0]).numpy(), 60.0, atol=1e-4)


def test_end_points_and_update():
    p = torch.tensor([[1.0, 2.0, 3.0]])
    u = torch.from_numpy(directions(2, 2))
    e = end_points(p, torch.full((1, 2, 2), 2.0), u)
    np.testing.assert_allclose(e[0].numpy(), (p[0] + 2 * u).numpy(), atol=1e-6)
    r = update(torch.tensor([1.0, 1.0, 3.0]), torch.tensor([-2.0, 0.5, -1.0]))
    assert r.tolist() == [0.0, 1.5, 2.0]


@pytest.mark.parametrize("radius", [3, 8, 12, 20])
def test_target_converges_onto_a_centred_ball(radius):
    n = 2 * radius + 21
    c = (n // 2,) * 3
    h = oracle_history(ball(n, c, radius), np.array(c))
    assert h.shape == (12, 1, H, W)
    assert abs(float(h[-1].mean()) - radius) <= 0.2
    assert float(h[-1].min()) > radius - 0.5 and float(h[-1].max()) < radius + 0.5


def test_target_is_limited_by_the_reach():
    radius = 26
    n = 2 * radius + 21
    c = (n // 2,) * 3
    h = oracle_history(ball(n, c, radius), np.array(c))
    # every direction grows by the clip (2) for 10 iterations: D = 5 + 2 t
    for t in range(11):
        np.testing.assert_array_equal(h[t].numpy(), D0 + 2 * t)
    assert 25.0 < float(h[-1].mean()) < radius - 0.05  # the last step falls short of R


@pytest.mark.parametrize("offset", [(0, 3, 0), (2, 2, -3), (1, 1, 1)])
def test_off_centre_pivot_matches_ray_sphere_lengths(offset):
    radius, n = 12, 45
    c = np.array((22, 22, 22))
    p = c + np.array(offset)
    h = oracle_history(ball(n, tuple(c), radius), p)
    u = directions(H, W).astype(np.float64)
    m = (p - c).astype(np.float64)
    b = u @ m  # |p + L u - c| = R  =>  L = -b + sqrt(b^2 - (|m|^2 - R^2))
    exact = -b + np.sqrt(b * b - (m @ m - radius * radius))
    err = np.abs(h[-1, 0].numpy() - exact)
    assert err.mean() <= 0.2 and err.max() <= 0.5


def test_pivot_far_outside_shrinks_to_zero():
    m = ball(30, (20, 20, 20), 6)
    h = oracle_history(m, np.array((2, 2, 2)))
    # target <= -(19.4 - 6.5) clips to -2 per step: 5, 3, 1, 0, ...
    assert h[:4, 0, 0, 0].tolist() == [5.0, 3.0, 1.0, 0.0]
    np.testing.assert_array_equal(h[-1].numpy(), 0.0)


def test_shell_dice_by_hand():
    one, two = torch.ones(1, 4, 4), torch.full((1, 4, 4), 2.0)
    assert shell_dice(one, two).item() == pytest.approx(2 / 9)  # 2·1 / (1 + 8)
    assert shell_dice(two, two).item() == 1.0
    z = torch.zeros(3, 2, 2)
    assert shell_dice(z, z).tolist() == [1.0, 1.0, 1.0]
    assert shell_dice(z, torch.ones(3, 2, 2)).tolist() == [0.0, 0.0, 0.0]
    a = torch.tensor([[[1.0, 2.0]]])
    b = torch.tensor([[[2.0, 2.0]]])
    assert shell_dice(a, b).item() == pytest.approx(2 * (1 + 8) / (9 + 16))


def test_converged_picks_the_first_frozen_iteration():
    # pivot 0: 5, 7, 7, 7.01, 9: frozen at t = 2 (Dice 1 >= 0.99)
    # pivot 1: 5, 7, 9, 11, 13: never frozen -> the last, t = 4
    # pivot 2: 5, 5, ...: frozen at once, t = 1
    seq = [[5, 5, 5], [7, 7, 5], [7, 9, 5], [7.01, 11, 5], [9, 13, 5]]
    hist = torch.tensor(seq, dtype=torch.float32)[:, :, None, None].expand(5, 3, 2, 2)
    radii, index = converged(hist, 0.99)
    assert index.tolist() == [2, 4, 1] and index.dtype == torch.long
    assert radii[:, 0, 0].tolist() == [7.0, 13.0, 5.0]
    # a stricter threshold moves pivot 0 to the last iteration: Dice(7.01, 7) < 1 - 1e-6
    _, index = converged(hist, 1.0)
    assert index.tolist() == [2, 4, 1]
    _, index = converged(hist[[0, 1, 3, 4]], 0.999999)  # 5, 7, 7.01, 9
    assert index.tolist()[0] == 3


def test_shell_inputs_on_a_linear_image():
    coef = [(0.3, -0.2, 0.1, 2.0), (-0.1, 0.4, 0.25, -1.0)]  # (a, b, c, e) per channel
    n = 30
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float64)] * 3, indexing="ij")
    image = torch.from_numpy(
        np.stack([a * z + b * y + c * x + e for a, b, c, e in coef]).astype(np.float32)
    )
    h, w = 4, 6
    u = directions(h, w)
    rng = np.random.default_rng(0)
    pivots = np.array([[15, 15, 15], [12, 16, 14]], np.float64)
    radii = rng.uniform(0.0, 7.0, (2, h, w))
    radii[0, 0, 0] = 0.5  # max(D - 2, 0) = 0 there
    x_in = shell_inputs(
        image,
        torch.tensor(pivots, dtype=torch.float32),
        torch.tensor(radii, dtype=torch.float32),
        torch.from_numpy(u),
    ).numpy()
    assert x_in.shape == (2, input_channels(2), h, w)

    def f(ch: int, r: np.ndarray) -> np.ndarray:
        pts = pivots[:, None, None, :] + r[..., None] * u[None].astype(np.float64)
        a, b, c, e = coef[ch]
        return a * pts[..., 0] + b * pts[..., 1] + c * pts[..., 2] + e

    for ch in range(2):
        for k, off in enumerate((-2, -1, 0, 1, 2)):
            want = f(ch, np.maximum(radii + off, 0.0))
            np.testing.assert_allclose(x_in[:, 5 * ch + k], want, atol=2e-3)
        for i in range(5):
            want = f(ch, radii * (i + 1) / 6)
            np.testing.assert_allclose(x_in[:, 13 + 5 * ch + i], want, atol=2e-3)
    np.testing.assert_allclose(x_in[:, 10:13], np.broadcast_to(u.transpose(2, 0, 1), (2, 3, h, w)))
    shape = radii[:, None] * u.transpose(2, 0, 1)[None] / 27.0
    np.testing.assert_allclose(x_in[:, 23:26], shape, atol=1e-6)
    # the clipped outer layer at D = 0.5: the pivot's own value
    assert x_in[0, 0, 0, 0] == pytest.approx(f(0, np.zeros_like(radii))[0, 0, 0], abs=2e-3)


def test_pivot_grid_on_a_hand_box():
    g = pivot_grid((12, 20, 20), (15, 25, 26), (30, 40, 40))
    assert g.dtype == np.int64
    zs, ys, xs = [2, 5, 8, 11, 14, 17, 20, 23], [10, 16, 22, 28, 34], [10, 16, 22, 28, 34]
    want = np.array([(a, b, c) for a in zs for b in ys for c in xs])
    np.testing.assert_array_equal(g, want)
    # clipped to the volume: z -8, -5, -2, 1, 4, 7, 10, 13 -> 1, 4, 7; y, x -7, -1, 5, 11
    g = pivot_grid((2, 3, 3), (4, 5, 5), (10, 12, 12))
    want = np.array([(a, b, c) for a in (1, 4, 7) for b in (5, 11) for c in (5, 11)])
    np.testing.assert_array_equal(g, want)
    assert (np.diff(g @ np.array([144, 12, 1])) > 0).all()  # sorted
    assert pivot_grid((5, 5, 5), (5, 9, 9), (10, 12, 12)).shape == (0, 3)
