"""Backend choice: one dispatch function over a registry of backends with predicates."""

from __future__ import annotations

import pytest
import torch

from domainvit.kernels import AttentionCall, Backend, backend_names, choose_backend, dispatch, na2d


def make_call(device: str = "cpu") -> AttentionCall:
    q = torch.randn(1, 6, 6, 2, 4, device=device)
    return AttentionCall(
        query=q,
        key=q,
        value=q,
        kernel_size=(3, 3),
        stride=(1, 1),
        dilation=(1, 1),
        is_causal=(False, False),
        scale=0.5,
    )


def test_automatic_choice_on_cpu_is_the_tiled_torch_backend():
    assert choose_backend(make_call()).name == "torch"


def test_reference_backend_is_never_chosen_automatically_but_can_be_named():
    assert not dispatch.BACKENDS["reference"].automatic
    assert choose_backend(make_call(), "reference").name == "reference"
    assert {"torch", "reference"} <= set(backend_names())


def test_default_backend_on_cpu_gives_the_torch_backend_result():
    q = torch.randn(2, 7, 9, 2, 4)
    torch.testing.assert_close(na2d(q, q, q, 3), na2d(q, q, q, 3, backend="torch"), rtol=0, atol=0)


def test_automatic_choice_takes_the_first_backend_whose_predicate_accepts_the_call(monkeypatch):
    def meta_only(call: AttentionCall) -> torch.Tensor:
        return call.query

    preferred = Backend("meta_only", meta_only, lambda call: call.device.type == "meta")
    monkeypatch.setattr(dispatch, "BACKENDS", {"meta_only": preferred, **dispatch.BACKENDS})
    assert choose_backend(make_call("meta")).name == "meta_only"
    assert choose_backend(make_call("cpu")).name == "torch"


def test_named_backend_that_does_not_support_the_call_is_refused(monkeypatch):
    refusing = Backend("refusing", lambda call: call.query, lambda call: False)
    monkeypatch.setattr(dispatch, "BACKENDS", {**dispatch.BACKENDS, "refusing": refusing})
    with pytest.raises(ValueError, match="backend='refusing' does not support this call"):
        choose_backend(make_call(), "refusing")


def test_every_call_is_counted_under_the_backend_that_ran_it():
    dispatch.reset_backend_calls()
    q = torch.randn(1, 6, 6, 2, 4)
    na2d(q, q, q, 3)
    na2d(q, q, q, 3)
    na2d(q, q, q, 3, backend="reference")
    assert dispatch.backend_calls() == {"torch": 2, "reference": 1}
    dispatch.reset_backend_calls()
    assert dispatch.backend_calls() == {}


def test_a_refused_call_is_not_counted():
    dispatch.reset_backend_calls()
    q = torch.randn(1, 6, 6, 2, 4)
    with pytest.raises(ValueError):
        na2d(q, q, q, 3, backend="triton" if "triton" in backend_names() else "nope")
    assert dispatch.backend_calls() == {}
