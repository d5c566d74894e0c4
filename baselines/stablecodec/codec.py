"""StableCodec (Zhang et al., ICCV 2025): one-step SD-Turbo decoding of a latent coded by an ELIC-guided latent
codec, at 9 released rate points (~0.005 to ~0.035 bpp on Kodak). Our implementation, state-dict compatible
with the official files (see ``elic.py``, ``latent_codec.py``, ``turbo.py``; numerics checked by ``verify.py``
against tensors from the official code).

Encoding as upstream's ``compress.py``: RGB in [-1, 1], reflect-padded at the bottom/right to a multiple of 256
(edge-replicated where the image is too small to reflect, where upstream would fail), ELIC's g_a on [0, 1], the
VAE posterior's mode, the latent codec's strings. Decoding: strings -> latent codec -> one UNet step (latent
tiles of ``latent_tile`` beyond that size) -> VAE, cropped, ``floor(255 x)`` as torchvision's ToPILImage does.
The prompt is a codec option (not in the bitstream), like upstream's ``--pos_prompt``. Not reproduced: the VAE
tiling (see ``turbo.py``) and ``--color_fix``, which needs the original image's colour statistics at the decoder
(they are not in upstream's bitstream).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cdc_bench.codecs.base import Availability, CodecConfigError, CodecError, CodecUnavailable, Encoded, Option, Rate

from cdc_bench.codecs.learned import MAX_PIXELS_OPTION, WEIGHTS_OPTION, LearnedCodec

from .._container import rans_guard, weight_path
from . import bitstream, releases, tiny
from .bitstream import LAMBDAS, PAD, Header
from .turbo import DEFAULT_PROMPT, CheckpointMismatch


class StableCodecNet:
    """Auxiliary encoder, latent codec and SD-Turbo with its LoRA weights, on one device."""

    def __init__(self, elic_state: dict, checkpoint: dict, sd_folder: Path | None, prompt: str, device: str):
        from .elic import analysis_state_dict, build_analysis_transform
        from .latent_codec import latent_codec_class
        from .turbo import Turbo

        self.aux_encoder = build_analysis_transform()
        try:
            self.aux_encoder.load_state_dict(analysis_state_dict(elic_state))
        except RuntimeError as err:
            raise CheckpointMismatch(f"ELIC state dict does not fit its analysis transform: {str(err)[:300]}") \
                from None
        self.latent_codec = latent_codec_class()()
        try:
            self.latent_codec.load_state_dict(checkpoint["state_dict_codec"])  # CompressAI resizes the CDF buffers
        except RuntimeError as err:
            raise CheckpointMismatch(f"state_dict_codec does not fit the latent codec: {str(err)[:300]}") from None
        self.latent_codec.update(force=True)  # upstream: net.codec.update(force=True)
        self.turbo = Turbo(sd_folder, checkpoint, prompt, device)
        self.aux_encoder.eval().to(device)
        self.latent_codec.eval().to(device)

    def eval(self):  # the model cache calls eval() and to(); the parts are already there
        return self

    def to(self, device):
        return self


def random_checkpoints() -> tuple[dict, dict]:
    """(ELIC state dict, StableCodec checkpoint) in the official layout with seeded values: what the released
    files would hold, for the tiny SD-Turbo of :mod:`tiny`."""
    from .elic import build_analysis_transform, official_state_dict
    from .latent_codec import latent_codec_class
    from .turbo import add_lora, build_sd_parts

    elic = tiny.seeded_state_dict(official_state_dict(build_analysis_transform().state_dict()))
    unet, vae, *_ = build_sd_parts(None)
    add_lora(unet, vae, tiny.LORA_RANK_UNET, tiny.LORA_RANK_VAE)
    checkpoint = {
        "state_dict_vae": {k: v for k, v in vae.state_dict().items() if "lora" in k},
        "state_dict_unet": {k: v for k, v in unet.state_dict().items() if "lora" in k or "conv_in" in k},
        "state_dict_codec": latent_codec_class()().state_dict(),
    }
    return elic, {part: tiny.seeded_state_dict(state) for part, state in checkpoint.items()}


def load_file(path: Path) -> dict:
    """A released .pkl/.pth read with ``weights_only=True``; a file that needs pickled code is refused."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise CodecUnavailable(f"cannot read {path} with torch.load(weights_only=True) ({type(err).__name__}: "
                               f"{str(err)[:300]})", f"download {path.name} again from {releases.DRIVE_FOLDER}") \
            from None
    if not isinstance(state, dict):
        raise CodecUnavailable(f"{path} holds a {type(state).__name__}, not a state dict",
                               f"download {path.name} again from {releases.DRIVE_FOLDER}")
    return state


def to_network_input(image: np.ndarray, device: str) -> tuple[Any, str]:
    """[-1, 1] floats (ToTensor + Normalize(0.5, 0.5)) padded at the bottom/right to a multiple of 256."""
    import torch
    import torch.nn.functional as F

    h, w = image.shape[:2]
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float().div(255)
    x = x.sub(0.5).div(0.5).to(device)
    pad_h, pad_w = (-h) % PAD, (-w) % PAD
    if pad_h < h and pad_w < w:
        return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect"), ""
    note = f"image {h}x{w} too small to reflect-pad to {PAD}; edge-replicated instead"
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate"), note


class StableCodec(LearnedCodec):
    name = "stablecodec"
    description = ("StableCodec (Zhang et al., ICCV 2025): one-step SD-Turbo + LoRA decoding of an ELIC-guided "
                   "latent codec; ultra-low rates (~0.005-0.035 bpp)")
    details = (f"Our implementation of {releases.REPOSITORY} (commit e7994cf checked): CompressAI entropy models "
               "and rANS, diffusers UNet2DConditionModel/AutoencoderKL, peft LoRA; reflect-pad to 256; latent "
               "tiling as upstream, VAE untiled; no colour fix. Weights: stablecodec_ft<lambda>.pkl and "
               f"elic_official.pth from {releases.DRIVE_FOLDER} (by hand), SD-Turbo {releases.SD_TURBO_REVISION[:12]}"
               f" via huggingface_hub. Licences: {releases.LICENSE_NOTE}")
    rate = Rate.choice(LAMBDAS, label="lambda", note="stage-2 rate weight, larger = lower rate; "
                                                      "the released stablecodec_ft<lambda>.pkl")
    option_specs = {
        "weights": WEIGHTS_OPTION, "max_pixels": MAX_PIXELS_OPTION,
        "prompt": Option(DEFAULT_PROMPT, "the fixed text prompt (upstream's --pos_prompt); not in the bitstream, "
                                         "so encoder and decoder must agree"),
        "latent_tile": Option(96, "UNet latent tile size (upstream --latent_tiled_size)", range=(8, None)),
        "latent_tile_overlap": Option(32, "UNet latent tile overlap (upstream --latent_tiled_overlap)",
                                      range=(0, None)),
        "sd_turbo": Option("", "a local SD-Turbo folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/) "
                               "instead of the pinned huggingface_hub snapshot"),
    }
    smoke_options = {"weights": "random"}
    #: not measured: weights=random is a tiny SD-Turbo, not the released architecture, so it says nothing of its
    #: decode memory; only max_pixels bounds a header
    decode_bytes_per_pixel = None

    @classmethod
    def availability(cls) -> Availability:
        for module, pin in (("compressai", "compressai==1.2.8"), ("diffusers", "diffusers"), ("peft", "peft"),
                            ("transformers", "transformers")):
            try:
                __import__(module)
            except ImportError as err:
                return Availability(False, f"{module} cannot be imported ({err})", f'pip install "{pin}"')
        return Availability(True)

    def check_options(self) -> None:
        if self.options["latent_tile_overlap"] >= self.options["latent_tile"]:
            raise CodecConfigError(f"{self.name}: latent_tile_overlap ({self.options['latent_tile_overlap']}) must "
                                   f"be smaller than latent_tile ({self.options['latent_tile']})")

    def required_weights(self, rate_points: Sequence[Any]) -> list[str]:
        if self.options["weights"] != "pretrained":
            return []
        names = [releases.checkpoint_name(self.validate_rate(r)) for r in rate_points] + [releases.ELIC_NAME]
        return names + ([] if self.options["sd_turbo"] else [releases.SD_TURBO_NAME])

    def _net(self, lam: int, decoding: bool = False) -> StableCodecNet:
        prompt = self.options["prompt"]
        if self.options["weights"] == "random":  # one tiny network for all rate points
            return self.cached_model(("random", prompt), lambda: StableCodecNet(
                *random_checkpoints(), None, prompt, self.device))

        def build() -> StableCodecNet:
            elic = load_file(weight_path(releases.ELIC_NAME, decoding))
            checkpoint = load_file(weight_path(releases.checkpoint_name(lam), decoding))
            missing = {"state_dict_vae", "state_dict_unet", "state_dict_codec"} - set(checkpoint)
            if missing:
                raise CodecUnavailable(f"stablecodec_ft{lam}.pkl lacks {', '.join(sorted(missing))}; not a "
                                       "StableCodec checkpoint", f"download it again from {releases.DRIVE_FOLDER}")
            sd = Path(self.options["sd_turbo"]) if self.options["sd_turbo"] else releases.sd_turbo_folder(
                weight_path(releases.SD_TURBO_NAME, decoding))
            try:
                return StableCodecNet(elic, checkpoint, sd, prompt, self.device)
            except CheckpointMismatch as err:
                raise CodecUnavailable(str(err), f"download the file again from {releases.DRIVE_FOLDER}") from None

        return self.cached_model((lam, prompt), build)

    def _encode(self, image: np.ndarray, rate: int) -> Encoded:
        import torch

        h, w = image.shape[:2]
        self.check_size(h, w, CodecError)
        net = self._net(rate)
        x, note = to_network_input(image, self.device)
        with torch.no_grad():
            out = net.latent_codec.compress(net.turbo.encode(x), net.aux_encoder((x + 1) / 2))
        header = Header(rate, h, w, self.options["weights"] == "random")
        return Encoded(bitstream.write(header, out["strings"]), info={"codec_note": note} if note else {})

    def _decode(self, data: bytes) -> np.ndarray:
        import torch

        header, strings = bitstream.read(data, self.name, self.check_size)
        self.check_flag("weights", "random" if header.random_weights else "pretrained")
        net = self._net(header.lam, decoding=True)
        ph, pw = header.padded
        symbols = (ph // 64) * (pw // 64) * 320 + (ph // 256) * (pw // 256) * 160
        strings = rans_guard(strings, symbols, self.name)
        with torch.no_grad():
            out = net.latent_codec.decompress(strings, header.z_shape)
            image = net.turbo.decode(out["unet_input"], out["residual"], self.options["latent_tile"],
                                     self.options["latent_tile_overlap"])
        rgb = image[0, :, :header.height, :header.width] * 0.5 + 0.5
        return (rgb.clamp(0.0, 1.0) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
