"""VP-Hype: the selective scan against the sequential definition, prompts, LoRA, PCA."""

from __future__ import annotations

import pytest
import torch

from domainvit.tasks.hsi.model import (
    LoRALinear,
    VPHype,
    VPHypeConfig,
    linear_recurrence,
    selective_scan,
    selective_scan_reference,
)


def _scan_inputs(b=2, length=23, e=5, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    kw = {"dtype": torch.float64, "generator": g}
    return (torch.randn(b, length, e, **kw), torch.rand(b, length, e, **kw) * 2,
            -torch.rand(e, n, **kw) * 3, torch.randn(b, length, n, **kw),
            torch.randn(b, length, n, **kw), torch.randn(e, **kw))


@pytest.mark.parametrize(("chunk", "recurrent"),
                         [(None, False), (1, False), (4, False), (7, False), (64, False),
                          (None, True)])
def test_selective_scan_matches_the_sequential_recurrence(chunk, recurrent):
    args = [t.requires_grad_() for t in _scan_inputs()]
    fast = selective_scan(*args, chunk_size=chunk, recurrent=recurrent)
    slow = selective_scan_reference(*args)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)
    weights = torch.randn_like(fast)
    grads_fast = torch.autograd.grad((fast * weights).sum(), args)
    grads_slow = torch.autograd.grad((slow * weights).sum(), args)
    for fast_grad, slow_grad in zip(grads_fast, grads_slow, strict=True):
        torch.testing.assert_close(fast_grad, slow_grad, rtol=1e-9, atol=1e-9)


def test_linear_recurrence_carries_the_initial_state_and_returns_the_last():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 10, 4, generator=g, dtype=torch.float64)
    x = torch.randn(3, 10, 4, generator=g, dtype=torch.float64)
    h0 = torch.randn(3, 4, generator=g, dtype=torch.float64)
    states, last = linear_recurrence(a, x, h0, chunk_size=3)
    h = h0
    for t in range(10):
        h = a[:, t] * h + x[:, t]
        torch.testing.assert_close(states[:, t], h)
    torch.testing.assert_close(last, h)


def test_scan_takes_the_recurrent_order_for_cpu_inference_only(monkeypatch):
    from domainvit.tasks.hsi import model as vphype

    orders = []
    steps, parallel = vphype.linear_recurrence_steps, vphype.linear_recurrence
    monkeypatch.setattr(vphype, "linear_recurrence_steps",
                        lambda *a: orders.append("steps") or steps(*a))
    monkeypatch.setattr(vphype, "linear_recurrence",
                        lambda *a, **k: orders.append("parallel") or parallel(*a, **k))
    args = _scan_inputs()
    with torch.inference_mode():
        inferred = selective_scan(*args)
    trained = selective_scan(*[t.clone().requires_grad_() for t in args])
    assert orders == ["steps", "parallel"]
    torch.testing.assert_close(inferred, trained.detach(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("recurrent", [False, True])
def test_scan_is_stable_for_strong_decays(recurrent):
    u, delta, A, B, C, D = _scan_inputs(length=200)
    out = selective_scan(u, delta * 50, A * 20, B, C, D, chunk_size=16, recurrent=recurrent)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, selective_scan_reference(u, delta * 50, A * 20, B, C, D))


def _model(**overrides):
    cfg = VPHypeConfig(in_bands=12, pca_components=4, embed_dim=16, depth=1, d_state=4,
                       expand=1, kernel_size=3, **overrides)
    torch.manual_seed(0)
    model = VPHype(cfg, num_classes=3, patch_size=5)
    model.set_pca(torch.zeros(12), torch.eye(12)[:4], torch.ones(4))
    model.set_text_embeddings(torch.nn.functional.normalize(torch.randn(3, 384), dim=1))
    return model.eval()


def test_forward_shapes_and_reduced_path_agree():
    model = _model()
    x = torch.rand(6, 12, 5, 5)
    logits = model(x)
    assert logits.shape == (6, 3)
    torch.testing.assert_close(model.forward_reduced(model.reduce_bands(x)), logits)
    with pytest.raises(ValueError, match="12"):
        model(torch.rand(2, 11, 5, 5))
    with pytest.raises(ValueError, match="5x5"):
        model.forward_reduced(torch.rand(2, 4, 7, 7))


def test_visual_prompts_reach_every_pixel_and_text_embeddings_condition_the_classifier():
    model = _model()
    x = torch.rand(2, 12, 5, 5)
    before = model(x)
    original = model.prompts.detach().clone()
    with torch.no_grad():
        model.prompts.copy_(torch.randn_like(original))
    assert not torch.allclose(model(x), before, atol=1e-4)
    with torch.no_grad():
        model.prompts.copy_(original)
        model.text_embeddings.copy_(model.text_embeddings[[1, 0, 2]])
    after = model(x)
    # swapping two classes' descriptions swaps their scores (up to the per-class bias, 0)
    torch.testing.assert_close(after[:, [1, 0, 2]], before)


def test_without_prompts_the_head_is_linear_and_has_no_prompt_tokens():
    model = _model(visual_prompts=0, text_prompts=False)
    assert model.prompts is None and model.head is not None
    assert not hasattr(model, "text_embeddings")
    assert model(torch.rand(2, 12, 5, 5)).shape == (2, 3)


def test_lora_starts_at_the_base_model_and_trains_only_adapters():
    base = _model()
    lora = _model(lora_rank=4)
    lora.load_state_dict({**lora.state_dict(), **{
        k.replace("qkv.", "qkv.base.").replace("proj.", "proj.base.")
        if ("attn.qkv" in k or "attn.proj" in k) else k: v
        for k, v in base.state_dict().items()}})
    x = torch.rand(3, 12, 5, 5)
    torch.testing.assert_close(lora(x), base(x))
    wrapped = [m for m in lora.modules() if isinstance(m, LoRALinear)]
    assert len(wrapped) == 2  # qkv and proj of the one attention block
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all(VPHype.is_adapted(n) for n in trainable)
    assert any(".down." in n for n in trainable) and "prompts" in trainable
    assert not any(n.endswith("qkv.base.weight") for n in trainable)
    assert not any(n.startswith("mamba_blocks") for n in trainable)


@pytest.mark.parametrize("whiten", [True, False])
def test_pca_buffers_scale_components(whiten):
    model = _model(pca_whiten=whiten)
    mean = torch.arange(12.0)
    model.set_pca(mean, torch.eye(12)[:4], torch.tensor([4.0, 1.0, 1.0, 0.25]))
    x = (mean + 1.0)[None, :, None, None].expand(1, 12, 5, 5)
    reduced = model.reduce_bands(x)[0, :, 0, 0]
    # whitened: unit variance per component; else all divided by the first one's sd (2)
    expected = [0.5, 1.0, 1.0, 2.0] if whiten else [0.5, 0.5, 0.5, 0.5]
    torch.testing.assert_close(reduced, torch.tensor(expected))
