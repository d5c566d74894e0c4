"""SD-Turbo as StableCodec uses it: diffusers' ``UNet2DConditionModel`` and ``AutoencoderKL`` with peft LoRA
adapters, a replaced UNet input convolution, one DDPM step at t = 999, and the prompt embedded once.

What the official ``StableCodec.__init__`` does, and so do we: LoRA (peft ``LoraConfig`` with its default
``lora_alpha=8``, so the scale is 8/rank) on the VAE *encoder* convolutions and attention projections (adapter
"vae_skip") and on the UNet's attention, convolution, projection and feed-forward layers (adapter "default");
the UNet's ``conv_in`` is then replaced by a 320 -> ``block_out_channels[0]`` 3x3 convolution (it reads the
latent codec's 320-channel output). The ranks are read from the checkpoint (the releases use 32 and 16). The
adapters are applied, not merged, as upstream evaluates them.

Decoding: the UNet predicts the noise from the codec output (the first 4 channels are the noisy sample), the
one-step DDPM scheduler turns it into x0, the codec's residual is added and the VAE decodes. Latents larger than
``tile x tile`` go through the UNet in overlapping tiles blended with upstream's Gaussian weights (same grid,
same weights, same quirks). The VAE runs untiled at every size: upstream's VAEHook tiling (encoder beyond 1088
pixels, decoder beyond 182 latent pixels) is a memory optimisation that approximates the untiled network (group
norms estimated over all tiles); we do not reproduce it, so images larger than that may differ slightly from
upstream's and need more memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import tiny

VAE_TARGETS = r"^encoder\..*(conv1|conv2|conv_in|conv_shortcut|conv|conv_out|to_k|to_q|to_v|to_out\.0)$"
UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_shortcut", "conv_out",
                "proj_in", "proj_out", "ff.net.2", "ff.net.0.proj"]
LORA_ALPHA = 8  # peft's default, which upstream relies on
TIMESTEP = 999
DEFAULT_PROMPT = ("A high-resolution, 8K, ultra-realistic image with sharp focus, vibrant colors, and natural "
                  "lighting.")


class CheckpointMismatch(ValueError):
    """A StableCodec checkpoint whose keys or shapes do not fit the network."""


def lora_rank(state: dict, part: str) -> int:
    """The LoRA rank of a checkpoint part (the output size of any ``lora_A`` weight)."""
    for key, value in state.items():
        if ".lora_A." in key:
            return int(value.shape[0])
    raise CheckpointMismatch(f"{part} has no LoRA weights (no '.lora_A.' key)")


def build_sd_parts(sd_folder: Path | None):
    """(unet, vae, tokenizer, text_encoder, scheduler): from an SD-Turbo folder, or the tiny seeded ones."""
    import tempfile

    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel

    if sd_folder is not None:
        return (UNet2DConditionModel.from_pretrained(sd_folder, subfolder="unet"),
                AutoencoderKL.from_pretrained(sd_folder, subfolder="vae"),
                AutoTokenizer.from_pretrained(sd_folder, subfolder="tokenizer"),
                CLIPTextModel.from_pretrained(sd_folder, subfolder="text_encoder"),
                DDPMScheduler.from_pretrained(sd_folder, subfolder="scheduler"))
    unet, vae = UNet2DConditionModel(**tiny.UNET_CONFIG), AutoencoderKL(**tiny.VAE_CONFIG)
    text = CLIPTextModel(CLIPTextConfig(**tiny.TEXT_CONFIG))
    for net in (unet, vae, text):
        net.load_state_dict(tiny.seeded_state_dict(net.state_dict()))
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = AutoTokenizer.from_pretrained(str(tiny.write_tokenizer(Path(folder) / "tokenizer")))
        scheduler = DDPMScheduler.from_pretrained(str(tiny.write_scheduler(Path(folder) / "scheduler")))
    return unet, vae, tokenizer, text, scheduler


def embed_prompt(tokenizer, text_encoder, prompt: str):
    """The text encoder's last hidden state for ``prompt`` padded to the tokenizer's maximum length."""
    import torch

    ids = tokenizer(prompt, max_length=tokenizer.model_max_length, padding="max_length", truncation=True,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        return text_encoder(ids)[0]


def add_lora(unet, vae, rank_unet: int, rank_vae: int) -> None:
    """Upstream's adapters and the replaced UNet input convolution (before the checkpoint is loaded)."""
    from peft import LoraConfig
    from torch import nn

    vae.add_adapter(LoraConfig(r=rank_vae, lora_alpha=LORA_ALPHA, init_lora_weights="gaussian",
                               target_modules=VAE_TARGETS), adapter_name="vae_skip")
    unet.add_adapter(LoraConfig(r=rank_unet, lora_alpha=LORA_ALPHA, init_lora_weights="gaussian",
                                target_modules=UNET_TARGETS))
    unet.conv_in = nn.Conv2d(320, unet.config.block_out_channels[0], kernel_size=3, padding=1)


def load_part(module, state: dict, part: str, must_cover: str) -> None:
    """Overwrite ``module``'s entries with ``state`` (as upstream does); every key must exist with its shape, and
    every entry of ours whose name contains ``must_cover`` must be given (no LoRA weight left at its random init)."""
    own = module.state_dict()
    unknown = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and tuple(own[k].shape) != tuple(state[k].shape)]
    missing = [k for k in own if must_cover in k and k not in state]
    if unknown or wrong or missing:
        raise CheckpointMismatch(f"{part} does not fit: {len(unknown)} unknown key(s) {unknown[:2]}, "
                                 f"{len(wrong)} of another shape {wrong[:2]}, {len(missing)} missing {missing[:2]}")
    own.update(state)
    module.load_state_dict(own)


class Turbo:
    """The SD-Turbo half of StableCodec, LoRA weights loaded, prompt embedded."""

    def __init__(self, sd_folder: Path | None, checkpoint: dict, prompt: str, device: str = "cpu"):
        import torch

        unet, vae, tokenizer, text_encoder, scheduler = build_sd_parts(sd_folder)
        add_lora(unet, vae, lora_rank(checkpoint["state_dict_unet"], "state_dict_unet"),
                 lora_rank(checkpoint["state_dict_vae"], "state_dict_vae"))
        load_part(vae, checkpoint["state_dict_vae"], "state_dict_vae", "lora")
        load_part(unet, checkpoint["state_dict_unet"], "state_dict_unet", "lora")
        self.prompt_embedding = embed_prompt(tokenizer, text_encoder, prompt).to(device)
        del tokenizer, text_encoder
        scheduler.set_timesteps(1, device=device)
        self.scheduler = scheduler
        self.unet, self.vae = unet.eval().to(device), vae.eval().to(device)
        self.timesteps = torch.tensor([TIMESTEP], device=device).long()
        self.device = device

    def encode(self, x):
        """Image in [-1, 1] -> the scaled VAE latent (the posterior's mode, as upstream)."""
        return self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor

    def predict_noise(self, unet_input, tile: int, overlap: int):
        prompt = self.prompt_embedding.expand(unet_input.shape[0], -1, -1)
        h, w = unet_input.shape[-2:]
        if h * w <= tile * tile:
            return self.unet(unet_input, self.timesteps, encoder_hidden_states=prompt).sample
        return self._tiled_noise(unet_input, prompt, tile, overlap)

    def _tiled_noise(self, x, prompt, tile: int, overlap: int):
        """Upstream's latent tiling: a grid of ``tile``-sized windows stepping by ``tile - overlap`` (the last one
        flush with the border), each predicted alone and blended with a fixed Gaussian window."""
        import torch

        h, w = x.shape[-2:]
        tile = min(tile, h, w)
        weights = gaussian_weights(tile, self.unet.config.in_channels).to(x.device)
        columns = _count_tiles(w, tile, overlap)
        rows = _count_tiles(h, tile, overlap)
        noise = torch.zeros(x[:, :4].shape, device=x.device)
        contributors = torch.zeros(x[:, :4].shape, device=x.device)
        for i in range(columns):
            for j in range(rows):
                left = w - tile if i == columns - 1 else max(i * (tile - overlap), 0)
                top = h - tile if j == rows - 1 else max(j * (tile - overlap), 0)
                window = (slice(None), slice(None), slice(top, top + tile), slice(left, left + tile))
                pred = self.unet(x[window], self.timesteps, encoder_hidden_states=prompt).sample
                noise[window] += pred * weights
                contributors[window] += weights
        return noise / contributors

    def decode(self, unet_input, residual, tile: int = 96, overlap: int = 32):
        """Latent codec output -> image in [-1, 1] (one denoising step, residual, VAE decoder)."""
        import torch

        noise = self.predict_noise(unet_input, tile, overlap)
        # The step adds DDPM noise of std 1e-10 at t=999 -> prev t=-1; a fixed generator keeps decoding repeatable.
        step = self.scheduler.step(noise, self.timesteps, unet_input[:, :4], return_dict=True,
                                   generator=torch.Generator(device=unet_input.device).manual_seed(0))
        latent = step.prev_sample + residual
        return self.vae.decode(latent / self.vae.config.scaling_factor).sample.clamp(-1, 1)


def _count_tiles(size: int, tile: int, overlap: int) -> int:
    count, end = 0, 0
    while end < size:
        end = max(count * tile - overlap * count, 0) + tile
        count += 1
    return count


def gaussian_weights(tile: int, channels: int) -> Any:
    """Upstream's blending window (float64; note its x and y midpoints differ by half a pixel, kept as is)."""
    import numpy as np
    import torch

    var = 0.01
    x = np.arange(tile)
    x_probs = np.exp(-(x - (tile - 1) / 2) ** 2 / (tile * tile) / (2 * var)) / np.sqrt(2 * np.pi * var)
    y_probs = np.exp(-(x - tile / 2) ** 2 / (tile * tile) / (2 * var)) / np.sqrt(2 * np.pi * var)
    return torch.tile(torch.tensor(np.outer(y_probs, x_probs)), (1, channels, 1, 1))
