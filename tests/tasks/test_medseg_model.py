"""The medseg segmentation models: TransDAE (domainvit.tasks.medseg.transdae) and MACMD
(domainvit.tasks.medseg.macmd).

Every model here is tiny (a few thousand parameters, inputs of a few dozen pixels) so
that the whole file runs in seconds on two CPU cores; the behaviour checked does not
depend on the size.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from domainvit.errors import UserError
from domainvit.layers import DepthwiseConv
from domainvit.tasks.medseg.macmd import MACMD, MACMDConfig
from domainvit.tasks.medseg.transdae import PatchExpand, TransDAE, TransDAEConfig

TINY_TRANSDAE = dict(embed_dim=8, depths=(1, 1), head_dim=8, mlp_ratio=1.0)
TINY_MACMD = {
    "nat": dict(encoder="nat", embed_dim=8, depths=(2, 1, 1, 1), head_dim=8, kernel_size=3,
                dilations=(2, 1, 1, 1), mlp_ratio=1.0, gate_groups=2, decoder_expansion=1),
    "maxvit": dict(encoder="maxvit", embed_dim=8, depths=(1, 1, 1, 1), head_dim=8,
                   block_size=3, mlp_ratio=1.0, gate_groups=2, decoder_expansion=1),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads; on a busy machine the threads'
    synchronisation makes every small op several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_transdae(ndim: int, **overrides) -> TransDAE:
    torch.manual_seed(0)
    return TransDAE(in_chans=1, num_classes=3, spatial_dims=ndim, **{**TINY_TRANSDAE, **overrides})


def tiny_macmd(encoder: str, **overrides) -> MACMD:
    torch.manual_seed(0)
    return MACMD(in_chans=2, num_classes=3, **{**TINY_MACMD[encoder], **overrides})


def as_list(output: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    return output if isinstance(output, list) else [output]


def random_input(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


def segmentation_loss(output: torch.Tensor | list[torch.Tensor], target: torch.Tensor):
    outputs = as_list(output)

    def resized(logits: torch.Tensor) -> torch.Tensor:  # coarse auxiliary logits
        size = logits.shape[2:]
        return F.interpolate(target[:, None].float(), size=size, mode="nearest")[:, 0].long()

    return sum(F.cross_entropy(logits, resized(logits)) for logits in outputs) / len(outputs)


def assert_every_parameter_trained(model: torch.nn.Module) -> None:
    untrained = [
        name for name, p in model.named_parameters()
        if p.grad is None or not torch.count_nonzero(p.grad)
    ]
    assert not untrained, f"parameters without gradient: {untrained}"


# --- output size ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 1, 37, 45), (1, 1, 13, 19, 11)])
def test_transdae_logits_have_the_input_size_for_odd_sizes(shape):
    model = tiny_transdae(len(shape) - 2).eval()
    assert model.size_multiple == 8  # stem 4 x one patch merge
    logits = model(random_input(*shape))
    assert logits.shape == (shape[0], 3, *shape[2:])


@pytest.mark.parametrize("encoder", ["nat", "maxvit"])
def test_macmd_logits_have_the_input_size_for_odd_sizes(encoder):
    model = tiny_macmd(encoder).eval()
    assert model.size_multiple == 32  # stem 4 x three patch merges
    logits = model(random_input(2, 2, 37, 45))
    assert logits.shape == (2, 3, 37, 45)


@pytest.mark.parametrize("model_name", ["transdae2d", "transdae3d", "macmd"])
def test_odd_input_is_padded_at_the_end_and_the_logits_cropped_back(model_name):
    """The logits of an odd input are the top-left crop of the logits of that input
    zero-padded at the end to the size multiple: no shift, no resampling."""
    if model_name == "macmd":
        model, shape = tiny_macmd("nat").eval(), (1, 2, 33, 40)
    else:
        ndim = int(model_name[-2])
        model, shape = tiny_transdae(ndim).eval(), (1, 1, *(13, 19, 11)[:ndim])
    x = random_input(*shape)
    padded_size = [-(-size // model.size_multiple) * model.size_multiple for size in shape[2:]]
    padded = torch.zeros(*shape[:2], *padded_size)
    padded[(slice(None), slice(None), *(slice(0, size) for size in shape[2:]))] = x
    with torch.no_grad():
        expected = model(padded)[(slice(None), slice(None), *(slice(0, s) for s in shape[2:]))]
        torch.testing.assert_close(model(x), expected)


# --- layers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_patch_expand_puts_each_channel_block_on_its_sub_position(ndim):
    factor, out_dim = 2, 3
    expand = PatchExpand(factor**ndim * out_dim, out_dim, ndim, factor, norm=False)
    with torch.no_grad():
        expand.expand.weight.copy_(torch.eye(factor**ndim * out_dim))
        expand.expand.bias.zero_()
    x = random_input(2, *(3, 4, 2)[:ndim], factor**ndim * out_dim)
    y = expand(x)
    assert y.shape == (2, *(factor * s for s in x.shape[1:-1]), out_dim)
    for token in itertools.product(*(range(s) for s in x.shape[1:-1])):
        for block, offset in enumerate(itertools.product(range(factor), repeat=ndim)):
            fine = tuple(t * factor + o for t, o in zip(token, offset, strict=True))
            torch.testing.assert_close(
                y[(slice(None), *fine)], x[(slice(None), *token)][:, block * out_dim:][:, :out_dim]
            )


def test_3d_depthwise_conv_is_the_separable_3x3x3_kernel():
    channels = 4
    conv = DepthwiseConv(channels, ndim=3)
    with torch.no_grad():
        conv.plane.bias.zero_()
        conv.depth.bias.zero_()
    # Outer product of the depth taps [C, 3] and the plane taps [C, 3, 3]
    kernel = conv.depth.weight[:, 0, :, 0, None, None] * conv.plane.weight[:, 0, None]
    x = random_input(2, 5, 6, 7, channels)
    expected = F.conv3d(x.movedim(-1, 1), kernel[:, None], padding=1, groups=channels)
    torch.testing.assert_close(conv(x), expected.movedim(1, -1))


# --- gradients, deep supervision, layers built once --------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_transdae_trains_every_parameter_with_deep_supervision(ndim):
    model = tiny_transdae(ndim, depths=(1, 1, 1), deep_supervision=True).train()
    shape = (2, 1, *(16, 24, 16)[:ndim])
    target = torch.randint(0, 3, (shape[0], *shape[2:]), generator=torch.Generator().manual_seed(2))
    segmentation_loss(model(random_input(*shape)), target).backward()
    assert_every_parameter_trained(model)


@pytest.mark.parametrize("encoder", ["nat", "maxvit"])
def test_macmd_trains_every_parameter(encoder):
    model = tiny_macmd(encoder).train()
    target = torch.randint(0, 3, (2, 40, 36), generator=torch.Generator().manual_seed(2))
    segmentation_loss(model(random_input(2, 2, 40, 36)), target).backward()
    assert_every_parameter_trained(model)


def test_macmd_creates_no_parameters_in_forward():
    model = tiny_macmd("nat").train()
    before = {name: p.data_ptr() for name, p in model.named_parameters()}
    decoder_before = sum(p.numel() for p in model.decoder.parameters())
    model(random_input(1, 2, 32, 32))
    model.eval()(random_input(1, 2, 32, 32))
    assert {name: p.data_ptr() for name, p in model.named_parameters()} == before
    assert sum(p.numel() for p in model.decoder.parameters()) == decoder_before


@pytest.mark.parametrize("model_name", ["transdae", "macmd"])
def test_deep_supervision_lists_main_then_auxiliary_logits_in_training_only(model_name):
    if model_name == "macmd":
        model, x, expected_outputs = tiny_macmd("nat"), random_input(1, 2, 33, 40), 4
    else:
        model = tiny_transdae(2, depths=(1, 1, 1), deep_supervision=True)
        x, expected_outputs = random_input(1, 1, 33, 40), 3
    outputs = model.train()(x)
    assert isinstance(outputs, list) and len(outputs) == expected_outputs
    if model_name == "macmd":
        assert all(logits.shape == (1, 3, 33, 40) for logits in outputs)
    else:  # TransDAE's auxiliary logits keep their scale: strides 8 and 16 (patch 4)
        assert [tuple(o.shape[2:]) for o in outputs] == [(33, 40), (5, 5), (3, 3)]
    main = model.eval()(x)
    assert isinstance(main, torch.Tensor)
    # No dropout, drop path or batch statistics: training and eval agree on the main logits.
    torch.testing.assert_close(outputs[0], main)
    assert outputs[1].shape != main.shape or not torch.allclose(outputs[1], main)


@pytest.mark.parametrize("model_name", ["transdae", "macmd"])
def test_training_output_is_one_tensor_without_deep_supervision(model_name):
    if model_name == "macmd":
        model, x = tiny_macmd("nat", deep_supervision=False), random_input(1, 2, 32, 32)
    else:
        model, x = tiny_transdae(2), random_input(1, 1, 32, 32)
    assert isinstance(model.train()(x), torch.Tensor)
    assert not any("aux" in name for name, _ in model.named_parameters())


# --- learning --------------------------------------------------------------------------------


def synthetic_three_class_image(in_chans: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 32x32 image: background (0), a disc (1) and a square (2) of distinct intensity."""
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    target = torch.zeros(32, 32, dtype=torch.long)
    target[(rows - 10).square() + (cols - 11).square() < 36] = 1
    target[20:28, 16:26] = 2
    noise = torch.randn(1, in_chans, 32, 32, generator=torch.Generator().manual_seed(3))
    image = target.float()[None, None] + 0.2 * noise
    return image, target[None]


@pytest.mark.parametrize("model_name", ["transdae", "macmd"])
def test_tiny_model_overfits_one_image(model_name):
    if model_name == "macmd":
        model = tiny_macmd("nat")
    else:
        model = tiny_transdae(2, embed_dim=16, head_dim=16)
    image, target = synthetic_three_class_image(model.in_chans)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(40):
        loss = segmentation_loss(model(image), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses
    accuracy = (model.eval()(image).argmax(1) == target).float().mean()
    background = (target == 0).float().mean()  # the accuracy of predicting background only
    assert background < 0.82 and accuracy > 0.9


# --- wrong inputs ------------------------------------------------------------------------------


def test_transdae_3d_names_expected_and_actual_shape_for_a_2d_input():
    model = tiny_transdae(3)
    with pytest.raises(UserError, match=r"TransDAE \(3D\) expects input \[B, 1, D, H, W\], "
                                        r"got \[1, 1, 64, 64\]"):
        model(torch.zeros(1, 1, 64, 64))


@pytest.mark.parametrize("model_name", ["transdae", "macmd"])
def test_wrong_channel_count_is_a_user_error(model_name):
    model = tiny_macmd("nat") if model_name == "macmd" else tiny_transdae(2)
    with pytest.raises(UserError, match=rf"expects input \[B, {model.in_chans}, H, W\], "
                                        r"got \[1, 5, 32, 32\]"):
        model(torch.zeros(1, 5, 32, 32))


@pytest.mark.parametrize("model_name", ["transdae", "macmd"])
def test_input_smaller_than_one_stem_patch_is_a_user_error(model_name):
    model = tiny_macmd("nat") if model_name == "macmd" else tiny_transdae(2)
    with pytest.raises(UserError, match=r"at least 4 .*got \[1, \d, 32, 3\]"):
        model(torch.zeros(1, model.in_chans, 32, 3))


# --- configs -----------------------------------------------------------------------------------


def test_transdae_builds_from_config_defaults_in_2d_and_3d():
    model = TransDAE.from_config(TransDAEConfig(), in_chans=2, num_classes=5).eval()
    assert (model.in_chans, model.num_classes, model.ndim) == (2, 5, 2)
    assert model(torch.zeros(1, 2, 20, 20)).shape == (1, 5, 20, 20)
    volume_model = TransDAE.from_config(TransDAEConfig(spatial_dims=3), in_chans=1, num_classes=2)
    assert volume_model.eval()(torch.zeros(1, 1, 8, 12, 16)).shape == (1, 2, 8, 12, 16)


def test_macmd_builds_from_config_defaults():
    config = MACMDConfig()
    assert (config.encoder, config.deep_supervision) == ("nat", True)
    model = MACMD.from_config(config, in_chans=1, num_classes=4).eval()
    assert model(torch.zeros(1, 1, 20, 28)).shape == (1, 4, 20, 28)
    assert len(model.aux_heads) == 3


def test_macmd_config_builds_the_maxvit_encoder():
    model = MACMD.from_config(MACMDConfig(encoder="maxvit", embed_dim=8, head_dim=8), 1, 2)
    assert type(model.encoder.stages[0].blocks[0].attn).__name__ == "MultiAxisAttention"


@pytest.mark.parametrize(("schema", "fields"), [
    (TransDAEConfig, {"embed_dim": 18, "head_dim": 4}),  # 4 heads do not divide 18
    (TransDAEConfig, {"depths": [2]}),  # one stage: nothing to decode
    (TransDAEConfig, {"spatial_dims": 1}),
    (TransDAEConfig, {"embed_dims": 16}),  # typo
    (MACMDConfig, {"spatial_dims": 3}),
    (MACMDConfig, {"encoder": "swin"}),
    (MACMDConfig, {"depths": [1, 1, 1]}),
    (MACMDConfig, {"embed_dim": 32, "gate_groups": 3}),
])
def test_config_rejects_invalid_fields(schema, fields):
    with pytest.raises(ValidationError):
        schema(**fields)
