"""The tiny random-weights configuration of StableCodec (``-o stablecodec.weights=random``) and its seeded weights.

The latent codec and the ELIC auxiliary encoder keep their released sizes (they are small next to SD-Turbo and
their channel counts are hard-wired in the official code); only the SD-Turbo parts shrink: a two-level
``UNet2DConditionModel`` (32/64 channels), a four-level ``AutoencoderKL`` with 8/16 channels and the same 8x
downsampling to 4 latent channels, and a two-layer CLIP text encoder with a byte-level tokenizer (each byte one
token, no merges). The scheduler is SD-Turbo's configuration.

Weights are not drawn in module-construction order but per state-dict key (:func:`seeded_tensor`), so any
implementation with the same keys and shapes - ours, and the official code in the fixtures' generator - gets the
same numbers. CompressAI's entropy bottleneck keeps its own constant initialisation except its biases (uniform,
as CompressAI draws them).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

#: seed of every random tensor (mixed with a CRC of the state-dict key)
SEED = 0

UNET_CONFIG: dict[str, Any] = {
    "sample_size": 32, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
    "block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "cross_attention_dim": 32,
    "attention_head_dim": [2, 4], "use_linear_projection": True, "norm_num_groups": 8,
}
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 8,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [8, 16, 16, 16], "sample_size": 256, "scaling_factor": 0.18215,
}
TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 514, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "max_position_embeddings": 77, "hidden_act": "gelu", "projection_dim": 32,
    "bos_token_id": 512, "eos_token_id": 513, "pad_token_id": 513,
}
#: stabilityai/sd-turbo scheduler/scheduler_config.json (the one-step DDPM schedule is built from it)
SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False, "steps_offset": 1,
    "timestep_spacing": "trailing",
}
#: LoRA ranks of the tiny configuration (the releases use 32 for the UNet, 16 for the VAE)
LORA_RANK_UNET = 8
LORA_RANK_VAE = 4


def seeded_tensor(key: str, like):
    """The random value of state-dict entry ``key`` (shape and dtype of ``like``), independent of build order.

    Matrices and kernels: normal with std 1/sqrt(fan-in) (activations stay O(1) through the deep networks);
    1-d ``weight`` (norm scales): 1 + 0.05 N(0, 1); biases and everything else 1-d: 0.02 N(0, 1).
    """
    import torch

    gen = torch.Generator().manual_seed(SEED * 1_000_003 + zlib.crc32(key.encode()))
    if _is_bottleneck_bias(key):
        return (torch.rand(like.shape, generator=gen) - 0.5).to(like.dtype)
    noise = torch.randn(like.shape, generator=gen)
    if like.dim() >= 2:
        fan_in = max(1, like[0].numel())
        return (noise / fan_in ** 0.5).to(like.dtype)
    if key.endswith("weight"):
        return (1 + 0.05 * noise).to(like.dtype)
    return (0.02 * noise).to(like.dtype)


def seeded_state_dict(state: dict) -> dict:
    """``state`` with every floating-point parameter replaced by :func:`seeded_tensor` (buffers and the entropy
    bottleneck's constant-initialised tensors are kept)."""
    out = {}
    for key, value in state.items():
        keep = (not value.is_floating_point() or "gaussian_conditional" in key
                or ("entropy_bottleneck" in key and not _is_bottleneck_bias(key)) or key.endswith("position_ids"))
        out[key] = value if keep else seeded_tensor(key, value)
    return out


def _is_bottleneck_bias(key: str) -> bool:
    """The entropy bottleneck's biases (``biases.N``; ``_biases.N`` in older CompressAI): CompressAI draws them."""
    return "entropy_bottleneck." in key and (".biases." in key or "._biases." in key)


def write_tokenizer(folder: str | Path) -> Path:
    """A CLIP tokenizer whose vocabulary is the 256 byte symbols (alone and word-final) plus start/end tokens."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": 256 + i for i, s in enumerate(symbols)})
    vocab.update({"<|startoftext|>": 512, "<|endoftext|>": 513})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}))
    return folder


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each of the 256 bytes (the byte-level BPE alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    symbols, extra = {}, 0
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def write_scheduler(folder: str | Path) -> Path:
    """SD-Turbo's scheduler_config.json (an Euler config, read by diffusers' DDPMScheduler as upstream does)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scheduler_config.json").write_text(json.dumps({"_class_name": "EulerDiscreteScheduler",
                                                              **SCHEDULER_CONFIG}))
    return folder
