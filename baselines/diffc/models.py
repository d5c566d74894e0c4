"""The diffusion models DiffC runs on, loaded with diffusers, and their weight files.

* ``sd15``: Stable Diffusion 1.5 in its VAE's latent space, unconditional (the empty prompt), from the
  maintained mirror ``stable-diffusion-v1-5/stable-diffusion-v1-5`` (the ``runwayml`` id is gone) pinned by
  revision; the fp16 weight files (upcast to fp32 when loaded).
* ``ddpm``: a small pixel-space DDPM in diffusers' hub format (``google/ddpm-cifar10-32``, 36 M parameters),
  for cheap runs; a convolutional U-Net, so it runs on any size that is a multiple of 8.

``weights=random`` builds a tiny configuration of the same diffusers classes with seeded random weights (for
tests and speed work; its numbers mean nothing and are labelled "random weights"). Pretrained files are declared
in :mod:`cdc_bench.weights` (``cdc-bench weights`` lists and fetches them, the sweep's pre-flight checks them);
a decoder never downloads. Their sha256 are not recorded yet (the hub was unreachable when this was written), so
only huggingface_hub's own download check guards them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cdc_bench.download import DownloadError, cache_dir
from cdc_bench.errors import CodecError, WeightsMissing
from cdc_bench.weights import WeightFile, get_weight, register_weight

RANDOM_SEED = 0


@dataclass(frozen=True)
class HubModel:
    """A diffusers model on the Hugging Face hub: repository, pinned revision, the files DiffC loads."""

    key: str
    repo: str
    revision: str
    files: tuple[str, ...]
    note: str

    def weight_name(self, file: str) -> str:
        return f"diffc-{self.key}/{file}"

    @property
    def model_id(self) -> str:
        """What the bitstream records (the decoder must load the same model)."""
        return f"{self.key}@{self.revision[:12]}"


SD15 = HubModel("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "451f4fe16113bff5a5d2269ed5ad43b0592e9a14", (
    "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors",
    "text_encoder/config.json", "text_encoder/model.fp16.safetensors",
    "tokenizer/vocab.json", "tokenizer/merges.txt"),
    "Stable Diffusion 1.5 (CreativeML OpenRAIL-M), fp16 files, ~2.1 GB in all")
DDPM = HubModel("ddpm", "google/ddpm-cifar10-32", "main", ("config.json", "diffusion_pytorch_model.bin"),
                "DDPM CIFAR-10 32x32 (Ho et al. 2020), 36 M parameters; revision not pinned (unknown here)")
HUB_MODELS = {m.key: m for m in (SD15, DDPM)}
#: diffusers' scheduler settings of each model (their scheduler_config.json): T and the beta schedule
SCHEDULES = {"sd15": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
             "ddpm": dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear")}


# -- weight files ------------------------------------------------------------------------------------------------
def _hub_cache_dir() -> Path:
    from cdc_bench.download import hub_cache_dir

    return hub_cache_dir()


def _hub_cached(model: HubModel, file: str) -> list[Path]:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model.repo, file, revision=model.revision, cache_dir=_hub_cache_dir())
    return [Path(found)] if isinstance(found, str) else []


def ways_on(model: HubModel) -> str:
    return (f"ways on: run `cdc-bench weights --download --only diffc` where the hub is reachable and copy the "
            f"huggingface_hub cache; put the files by hand under {manual_dir(model)}; set HF_HUB_OFFLINE=1 to use "
            f"only the cache; or run with -o diffc.weights=random (random weights, for tests and speed work only)")


def manual_dir(model: HubModel) -> Path:
    return cache_dir() / "diffc" / model.key


def _fetcher(model: HubModel, file: str):
    def fetch(weight: WeightFile) -> Path:
        from huggingface_hub import hf_hub_download

        from cdc_bench.cdc.releases import hub_unreachable

        reason = hub_unreachable()
        if reason is not None:
            raise DownloadError(f"{reason}; {ways_on(model)}")
        try:
            return Path(hf_hub_download(model.repo, file, revision=model.revision, cache_dir=_hub_cache_dir(),
                                        endpoint=os.environ.get("HF_ENDPOINT") or None))
        except Exception as err:  # noqa: BLE001 - huggingface_hub's HTTP, offline and value errors alike
            first = str(err).splitlines()[0] if str(err) else ""
            raise DownloadError(f"huggingface_hub: {type(err).__name__}: {first}") from None
    return fetch


def register_files() -> None:
    for model in HUB_MODELS.values():
        for file in model.files:
            register_weight(WeightFile(
                name=model.weight_name(file), url=f"https://huggingface.co/{model.repo}/resolve/{model.revision}/{file}",
                path=lambda m=model, f=file: manual_dir(m) / f, sha256=None, used_by=["diffc"],
                fetch=_fetcher(model, file), search=lambda m=model, f=file: _hub_cached(m, f), note=model.note))


def required_files(model: str) -> list[str]:
    return [HUB_MODELS[model].weight_name(f) for f in HUB_MODELS[model].files]


def _files(model: HubModel, decoding: bool) -> dict[str, Path]:
    found, missing = {}, []
    for file in model.files:
        try:
            found[file] = get_weight(model.weight_name(file)).ensure(allow_download=not decoding)
        except WeightsMissing as err:
            missing.append(str(err))
    if missing:
        raise WeightsMissing("diffc: " + "\n".join(missing) + f"\n{ways_on(model)}")
    return found


# -- the loaded model --------------------------------------------------------------------------------------------
@dataclass
class Diffusion:
    """A noise-prediction network with its schedule and (for latent models) its autoencoder."""

    model_id: str
    unet: torch.nn.Module
    alphas_cumprod: torch.Tensor       # float64, index t = 0 .. T-1
    vae: Any = None                    # AutoencoderKL for latent models
    context: torch.Tensor | None = None  # the empty prompt's text embedding (SD)
    scaling: float = 1.0
    multiple: int = 8                  # image sides are padded to a multiple of this
    clip_x0: bool = False              # pixel models clip the predicted image to [-1, 1], as diffusers' DDPM

    @property
    def timesteps(self) -> int:
        return int(self.alphas_cumprod.numel())

    @property
    def factor(self) -> int:
        return 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        """The shape of the coded tensor of an image padded to ``height x width``."""
        channels = self.unet.config.in_channels
        return (1, channels, height // self.factor, width // self.factor)

    @torch.no_grad()
    def eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        step = torch.full((x.shape[0],), t, device=x.device, dtype=torch.int64)
        if self.context is None:
            return self.unet(x, step).sample
        return self.unet(x, step, encoder_hidden_states=self.context.expand(x.shape[0], -1, -1)).sample

    @torch.no_grad()
    def to_latent(self, image: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1] -> the tensor DiffC codes (the VAE's mean latent, scaled, or the image itself)."""
        if self.vae is None:
            return image
        return self.vae.encode(image).latent_dist.mean * self.scaling

    @torch.no_grad()
    def to_image(self, latent: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return latent
        return self.vae.decode(latent / self.scaling).sample


def _alphas(key: str) -> torch.Tensor:
    from diffusers import DDPMScheduler

    return DDPMScheduler(**SCHEDULES[key]).alphas_cumprod.to(torch.float64)


def _seeded(build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return build()


def random_model(key: str) -> Diffusion:
    """A tiny configuration of the model's diffusers classes with seeded random weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel

    if key == "sd15":
        def build():
            unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                        block_out_channels=(8, 16), norm_num_groups=4, cross_attention_dim=16,
                                        attention_head_dim=2,
                                        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
            vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                                block_out_channels=(4, 4, 4, 4), norm_num_groups=2, sample_size=32,
                                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
            context = torch.randn(1, 4, 16)
            return unet, vae, context
        unet, vae, context = _seeded(build)
        return Diffusion("random:sd15", unet, _alphas(key), vae, context, 0.18215, multiple=8 * 2)
    if key == "ddpm":
        unet = _seeded(lambda: UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
                                           block_out_channels=(8, 16), norm_num_groups=4,
                                           down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                           up_block_types=("AttnUpBlock2D", "UpBlock2D")))
        return Diffusion("random:ddpm", unet, _alphas(key), multiple=2, clip_x0=True)
    raise CodecError(f"diffc: unknown model {key!r}")


def pretrained_model(key: str, decoding: bool) -> Diffusion:
    """The published model, from its verified files (downloaded first unless decoding)."""
    import safetensors.torch
    from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel

    model = HUB_MODELS[key]
    files = _files(model, decoding)

    def config(file: str) -> dict:
        return json.loads(files[file].read_text())

    def weights(file: str) -> dict:
        if file.endswith(".safetensors"):
            return safetensors.torch.load_file(str(files[file]))
        return torch.load(files[file], map_location="cpu", weights_only=True)

    if key == "ddpm":
        unet = UNet2DModel.from_config(config("config.json"))
        unet.load_state_dict(weights("diffusion_pytorch_model.bin"))
        return Diffusion(model.model_id, unet.float(), _alphas(key), multiple=8, clip_x0=True)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel.from_config(config("unet/config.json"))
    unet.load_state_dict(weights("unet/diffusion_pytorch_model.fp16.safetensors"))
    vae = AutoencoderKL.from_config(config("vae/config.json"))
    vae.load_state_dict(weights("vae/diffusion_pytorch_model.fp16.safetensors"))
    text = CLIPTextModel(CLIPTextConfig.from_json_file(str(files["text_encoder/config.json"])))
    missing, unexpected = text.load_state_dict(weights("text_encoder/model.fp16.safetensors"), strict=False)
    if [k for k in missing if not k.endswith("position_ids")] or unexpected:
        raise CodecError(f"diffc: SD 1.5 text encoder weights do not fit (missing {missing}, unexpected {unexpected})")
    tokenizer = CLIPTokenizer(str(files["tokenizer/vocab.json"]), str(files["tokenizer/merges.txt"]))
    ids = tokenizer("", padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        context = text.float().eval()(ids)[0]
    return Diffusion(model.model_id, unet.float(), _alphas(key), vae.float(), context,
                     float(vae.config.scaling_factor), multiple=64)


def model_id(key: str, weights: str) -> str:
    return f"random:{key}" if weights == "random" else HUB_MODELS[key].model_id


def load(key: str, weights: str, device: str, decoding: bool) -> Diffusion:
    model = random_model(key) if weights == "random" else pretrained_model(key, decoding)
    model.unet.eval().to(device)
    if model.vae is not None:
        model.vae.eval().to(device)
    if model.context is not None:
        model.context = model.context.to(device)
    return model


register_files()
