"""Attention modules on a CUDA device against CPU float64, and under bf16 autocast.

Run on a GPU machine with ``python -m pytest tests/gpu`` (``benchmarks/gpu_check.sh``
does); the default suite does not collect this folder, so CPU-only CI reports no skips.
"""

from __future__ import annotations

import copy

import pytest
import torch

from domainvit.attention import ATTENTION_KINDS, build_attention
from tests.core.test_attention import KIND_OPTIONS, SHAPES

if not torch.cuda.is_available():
    pytest.exit("tests/gpu needs a CUDA device", returncode=1)

@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", list(ATTENTION_KINDS))
def test_cuda_float32_matches_cpu_float64_outputs_and_gradients(kind, ndim, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    reference = build_attention(kind, 32, 4, ndim, **KIND_OPTIONS[kind]).double()
    module = copy.deepcopy(reference).float().cuda()
    x = torch.randn(*SHAPES[ndim][:-1], 32, dtype=torch.float64)
    expected = reference(x)
    out = module(x.float().cuda())
    grad_out = torch.randn_like(expected)
    (expected * grad_out).sum().backward()
    (out * grad_out.float().cuda()).sum().backward()
    torch.testing.assert_close(out.double().cpu(), expected, atol=1e-4, rtol=1e-4)
    for (name, param), (_, ref) in zip(
        module.named_parameters(), reference.named_parameters(), strict=True
    ):
        torch.testing.assert_close(
            param.grad.double().cpu(),
            ref.grad,
            atol=1e-3,
            rtol=1e-3,
            msg=lambda m, n=name: f"{n}: {m}",
        )


@pytest.mark.parametrize("kind", list(ATTENTION_KINDS))
def test_cuda_bfloat16_autocast_stays_close_to_float32(kind):
    module = build_attention(kind, 64, 4, 2, **KIND_OPTIONS[kind]).cuda()
    x = torch.randn(2, 24, 20, 64, device="cuda")
    expected = module(x)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = module(x)
    out.float().sum().backward()
    assert all(torch.isfinite(param.grad).all() for param in module.parameters())
    torch.testing.assert_close(out.float(), expected, atol=5e-2, rtol=5e-2)
