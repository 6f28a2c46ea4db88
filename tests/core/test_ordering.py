"""Morton and Hilbert orderings of grids and point sets (domainvit.ordering)."""

from __future__ import annotations

import pytest
import torch

from domainvit.ordering import (
    grid_order,
    hilbert_code,
    inverse_permutation,
    morton_code,
    point_order,
)


def full_grid(side: int, ndim: int) -> torch.Tensor:
    axes = [torch.arange(side)] * ndim
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, ndim)


@pytest.mark.parametrize("code", [morton_code, hilbert_code])
@pytest.mark.parametrize(("ndim", "bits"), [(2, 1), (2, 4), (2, 5), (3, 1), (3, 3)])
def test_codes_are_a_bijection_onto_the_index_range(code, ndim, bits):
    coords = full_grid(2**bits, ndim)
    codes = code(coords, bits)
    assert codes.dtype == torch.int64
    assert torch.equal(codes.sort().values, torch.arange(2 ** (ndim * bits)))


@pytest.mark.parametrize(("ndim", "bits"), [(2, 1), (2, 2), (2, 5), (3, 1), (3, 2), (3, 4)])
def test_consecutive_hilbert_indices_are_grid_neighbours(ndim, bits):
    coords = full_grid(2**bits, ndim)
    along_curve = coords[torch.argsort(hilbert_code(coords, bits))]
    steps = (along_curve[1:] - along_curve[:-1]).abs().sum(dim=-1)
    assert torch.all(steps == 1)


def test_morton_interleaves_bits_with_axis_zero_most_significant():
    # (row, col) = (0b10, 0b01) -> bits row1 col1 row0 col0 = 1 0 0 1
    assert morton_code(torch.tensor([[2, 1]]), 2).tolist() == [0b1001]
    assert morton_code(torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]]), 1).tolist() == [0, 1, 2, 3]
    # (z, y, x) = (0b01, 0b10, 0b11) -> z1 y1 x1 z0 y0 x0 = 0 1 1 1 0 1
    assert morton_code(torch.tensor([[1, 2, 3]]), 2).tolist() == [0b011101]
    # the top level of a 3-bit 3D code comes from the top bit of each axis
    assert morton_code(torch.tensor([[4, 0, 0], [0, 0, 4]]), 3).tolist() == [0b100 << 6, 0b001 << 6]


def test_codes_keep_leading_batch_dimensions():
    coords = full_grid(8, 3).reshape(8, 64, 3)
    for code in (morton_code, hilbert_code):
        assert torch.equal(code(coords, 3), code(coords.reshape(-1, 3), 3).reshape(8, 64))


def test_codes_reject_coordinates_outside_the_grid_and_float_input():
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        hilbert_code(torch.tensor([[4, 0]]), 2)
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        morton_code(torch.tensor([[-1, 0]]), 2)
    with pytest.raises(TypeError, match="integers"):
        morton_code(torch.zeros(3, 2), 2)
    with pytest.raises(ValueError, match=r"bits must be an int in \[1, 21\]"):
        morton_code(torch.zeros(3, 3, dtype=torch.long), 22)
    with pytest.raises(ValueError, match=r"\[\.\.\., 2\]"):
        morton_code(torch.zeros(3, 4, dtype=torch.long), 2)


@pytest.mark.parametrize("curve", ["morton", "hilbert"])
@pytest.mark.parametrize("shape", [(5, 7), (1, 9), (12, 3), (3, 5, 6), (2, 2, 9), (8, 8)])
def test_grid_order_is_a_permutation_for_any_shape(curve, shape):
    perm = grid_order(shape, curve)
    numel = torch.Size(shape).numel()
    assert perm.dtype == torch.long
    assert torch.equal(perm.sort().values, torch.arange(numel))


def test_grid_order_follows_the_curve_on_power_of_two_grids():
    perm = grid_order((8, 8), "hilbert")
    coords = full_grid(8, 2)
    assert torch.equal(hilbert_code(coords[perm], 3), torch.arange(64))
    assert grid_order((2, 2), "morton").tolist() == [0, 1, 2, 3]


def test_grid_order_drops_the_cells_outside_a_non_power_of_two_shape():
    # 3x5 inside the 8x8 enclosing grid: keep the in-range cells in enclosing-curve order
    perm = grid_order((3, 5), "hilbert")
    coords = full_grid(8, 2)
    enclosing = coords[grid_order((8, 8), "hilbert")]
    expected = [int(r * 5 + c) for r, c in enclosing.tolist() if r < 3 and c < 5]
    assert perm.tolist() == expected


def test_grid_order_rejects_bad_arguments():
    with pytest.raises(ValueError, match="curve must be one of"):
        grid_order((4, 4), "peano")
    with pytest.raises(ValueError, match="2 or 3 positive ints"):
        grid_order((4, 0))
    with pytest.raises(ValueError, match="2 or 3 positive ints"):
        grid_order((4,))


def mean_step(points: torch.Tensor) -> float:
    return (points[1:] - points[:-1]).norm(dim=-1).mean().item()


@pytest.mark.parametrize("curve", ["morton", "hilbert"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_point_order_puts_nearby_points_next_to_each_other(curve, ndim):
    generator = torch.Generator().manual_seed(0)
    # a lidar-like cloud: wide in x/y, thin in z, offset far from the origin
    scale = torch.tensor([100.0, 60.0, 4.0][:ndim])
    points = torch.rand(4000, ndim, generator=generator) * scale + 1e4
    perm = point_order(points, bits=10, curve=curve)
    assert torch.equal(perm.sort().values, torch.arange(4000))
    random_step = mean_step(points[torch.randperm(4000, generator=generator)])
    curve_step = mean_step(points[perm])
    assert curve_step < random_step / 8


def test_hilbert_windows_are_more_compact_than_morton_windows():
    generator = torch.Generator().manual_seed(1)
    points = torch.rand(8192, 3, generator=generator)

    def mean_window_diameter(curve: str) -> float:
        windows = points[point_order(points, curve=curve)].reshape(-1, 64, 3)
        return (windows.amax(dim=1) - windows.amin(dim=1)).norm(dim=-1).mean().item()

    assert mean_window_diameter("hilbert") < mean_window_diameter("morton")


def test_point_order_handles_batches_duplicates_and_single_points():
    generator = torch.Generator().manual_seed(2)
    points = torch.rand(3, 500, 3, generator=generator)
    perm = point_order(points, curve="hilbert")
    assert perm.shape == (3, 500)
    for b in range(3):
        assert torch.equal(perm[b], point_order(points[b], curve="hilbert"))
    # identical points fall in one cell and keep their input order
    assert point_order(torch.ones(5, 2)).tolist() == [0, 1, 2, 3, 4]
    assert point_order(torch.zeros(0, 3)).shape == (0,)


def test_point_order_rejects_bad_points():
    with pytest.raises(ValueError, match="NaN or infinite"):
        point_order(torch.tensor([[0.0, float("nan")], [1.0, 1.0]]))
    with pytest.raises(TypeError, match="floating-point"):
        point_order(torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[\.\.\., N, 3\]"):
        point_order(torch.zeros(4, 5))


def test_inverse_permutation_restores_the_original_order():
    generator = torch.Generator().manual_seed(3)
    points = torch.rand(300, 3, generator=generator)
    perm = point_order(points, curve="hilbert")
    inverse = inverse_permutation(perm)
    assert torch.equal(points[perm][inverse], points)
    assert torch.equal(inverse[perm], torch.arange(300))
    batch = torch.stack([torch.randperm(50, generator=generator) for _ in range(4)])
    assert torch.equal(torch.gather(batch, -1, inverse_permutation(batch)),
                       torch.arange(50).expand(4, 50))
