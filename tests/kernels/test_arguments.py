"""Argument checks of the functional front door: one test per message.

Every bad argument must raise ``TypeError``/``ValueError`` naming the argument and what
is allowed, before any backend runs.
"""

from __future__ import annotations

import pytest
import torch

from domainvit.kernels import na1d, na2d, na3d


def inputs(spatial=(8, 8), heads=4, kv_heads=4, head_dim=6, batch=2, dtype=torch.float32):
    q = torch.randn(batch, *spatial, heads, head_dim, dtype=dtype)
    k = torch.randn(batch, *spatial, kv_heads, head_dim, dtype=dtype)
    return q, k, k.clone()


def extra(m=3, kv_heads=4, head_dim=6, batch=2, dtype=torch.float32):
    return torch.randn(batch, m, kv_heads, head_dim, dtype=dtype)


BAD_WINDOWS = [
    (dict(kernel_size=1), r"kernel_size\[0\]=1 must be in \[2, 8\]"),
    (dict(kernel_size=(3, 9)), r"kernel_size\[1\]=9 must be in \[2, 8\]"),
    (
        dict(kernel_size=3, dilation=3),
        r"kernel_size\[0\] \* dilation\[0\] = 3 \* 3 = 9 must be <= 8",
    ),
    (dict(kernel_size=3, dilation=(1, 0)), r"dilation\[1\]=0 must be >= 1"),
    (dict(kernel_size=3, stride=0), r"stride\[0\]=0 must be in \[1, 3\]"),
    (dict(kernel_size=(3, 2), stride=(1, 3)), r"stride\[1\]=3 must be in \[1, 2\]"),
]


@pytest.mark.parametrize("window, message", BAD_WINDOWS, ids=[m for _, m in BAD_WINDOWS])
def test_out_of_range_window_arguments_name_the_argument_and_range(window, message):
    with pytest.raises(ValueError, match=message):
        na2d(*inputs(), **window)


def test_one_dimensional_messages_use_the_plain_argument_name():
    with pytest.raises(ValueError, match=r"na1d: kernel_size=9 must be in \[2, 8\]"):
        na1d(*inputs(spatial=(8,)), kernel_size=9)


BAD_TYPES = [
    (dict(kernel_size=2.5), r"kernel_size must be an int or a tuple of 2 ints, got 2.5"),
    (dict(kernel_size=(3, 3, 3)), r"kernel_size must be an int or a tuple of 2 ints"),
    (dict(kernel_size=True), r"kernel_size must be an int"),
    (dict(kernel_size=3, is_causal=1), r"is_causal must be a bool or a tuple of 2 bools, got 1"),
    (dict(kernel_size=3, scale="0.1"), r"scale must be a real number or None"),
]


@pytest.mark.parametrize("arguments, message", BAD_TYPES, ids=[m for _, m in BAD_TYPES])
def test_wrongly_typed_arguments_raise_type_error(arguments, message):
    with pytest.raises(TypeError, match=message):
        na2d(*inputs(), **arguments)


@pytest.mark.parametrize(
    "op, rank", [(na1d, 4), (na2d, 5), (na3d, 6)], ids=["na1d", "na2d", "na3d"]
)
def test_query_of_the_wrong_rank_is_rejected_with_the_expected_layout(op, rank):
    q, k, v = inputs(spatial=(8, 8, 8, 8)[: rank - 2])
    message = rf"expects query of rank {rank} \(\[batch, .*heads, head_dim\]\), got rank {rank + 1}"
    with pytest.raises(ValueError, match=message):
        op(q, k, v, kernel_size=3)


def test_non_tensor_query_is_a_type_error():
    _, k, v = inputs()
    with pytest.raises(TypeError, match="query must be a torch.Tensor, got list"):
        na2d([[0.0]], k, v, kernel_size=3)


def test_integer_query_is_a_type_error():
    q, k, v = inputs()
    with pytest.raises(TypeError, match="query must have a floating-point dtype, got torch.int64"):
        na2d(q.long(), k, v, kernel_size=3)


def test_key_and_value_of_different_shapes_are_rejected():
    q, k, _ = inputs()
    with pytest.raises(ValueError, match=r"key and value must have the same shape"):
        na2d(q, k, k[:, :, :, :2], kernel_size=3)


def test_key_with_other_spatial_shape_than_query_is_rejected():
    q, _, _ = inputs()
    _, k, v = inputs(spatial=(8, 7))
    with pytest.raises(ValueError, match=r"shape .* = \(2, 8, 8, 'kv_heads', 6\) to match query"):
        na2d(q, k, v, kernel_size=3)


def test_key_value_heads_must_divide_query_heads():
    q, k, v = inputs(kv_heads=3)
    with pytest.raises(ValueError, match=r"key/value heads \(3\) must divide query heads \(4\)"):
        na2d(q, k, v, kernel_size=3)


def test_rpb_of_wrong_shape_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"rpb must have shape \(4, 5, 3\).*got \(4, 5, 5\)"):
        na2d(*inputs(), kernel_size=(3, 2), rpb=torch.zeros(4, 5, 5))


def test_rpb_together_with_causal_axes_is_allowed():
    q, k, v = inputs()
    out = na2d(q, k, v, kernel_size=3, is_causal=(True, False), rpb=torch.zeros(4, 5, 5))
    assert out.shape == q.shape


def test_mismatched_dtypes_are_rejected():
    q, k, v = inputs()
    with pytest.raises(
        TypeError, match=r"value has dtype torch.float64 but query has torch.float32"
    ):
        na2d(q, k, v.double(), kernel_size=3)


def test_rpb_with_another_dtype_is_rejected():
    with pytest.raises(TypeError, match=r"rpb has dtype torch.float64"):
        na2d(*inputs(), kernel_size=3, rpb=torch.zeros(4, 5, 5, dtype=torch.float64))


def test_mismatched_devices_are_rejected():
    q, k, v = inputs()
    with pytest.raises(ValueError, match=r"key is on device meta but query is on cpu"):
        na2d(q, k.to("meta"), v, kernel_size=3)


@pytest.mark.parametrize("given", ["additional_keys", "additional_values"])
def test_additional_keys_and_values_must_come_together(given):
    with pytest.raises(ValueError, match=rf"must be given together \(got only {given}\)"):
        na2d(*inputs(), kernel_size=3, **{given: extra()})


def test_additional_keys_must_have_kv_heads_and_head_dim():
    with pytest.raises(
        ValueError,
        match=r"additional_keys must have shape \[batch, M, kv_heads, head_dim\] = "
        r"\(2, M, 4, 6\), got \(2, 3, 2, 6\)",
    ):
        na2d(*inputs(), kernel_size=3, additional_keys=extra(kv_heads=2), additional_values=extra())


def test_additional_keys_and_values_must_hold_the_same_number_of_tokens():
    with pytest.raises(
        ValueError, match=r"additional_keys and additional_values must have the same"
    ):
        na2d(*inputs(), kernel_size=3, additional_keys=extra(m=3), additional_values=extra(m=2))


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"backend must be None or one of .*'torch'.*; got 'cuda'"):
        na2d(*inputs(), kernel_size=3, backend="cuda")
