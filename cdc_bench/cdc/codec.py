"""CDC as a codec: compressor + real entropy coding + DDIM decoding, wired into the :class:`Codec` interface.

``cdc`` is the x-parameterised release, ``cdc-eps`` the epsilon-parameterised one. Rate points are the released
rate-Lagrangians λ (larger λ = lower rate). The bitstream (bitstream.py) records which weights encoded it, so the
decoder loads the same ones from the bytes alone; the sampler settings (steps, gamma, eta, seed) are decoder
options.

Images of any size are padded at the bottom/right by **edge replication** to a multiple of 64 (the compressor
needs it), and the decoded image is cropped back; bpp is over the original H·W.

The default numerics reproduce the official code (quantised latents bit for bit). The fast paths (`fast_norm`,
`dtype`, `channels_last`, `compile`) change only the denoiser: the compressor and the entropy model stay exact
fp32, so bitstreams and rates never depend on them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from ..codecs.base import Availability, Encoded, Option, Rate, pad_to_multiple
from ..codecs.learned import WEIGHTS_OPTION, LearnedCodec
from ..errors import BitstreamError, CodecConfigError, CodecError
from . import loading as models, releases
from .bitstream import Header, pack, unpack
from .coding import decode_context, encode_latents
from .model import RELEASED_CONFIGS
from .sampler import NOISE_LAYOUTS, decode_image, seeded_initial_state

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MAX_PIXELS = 64 * 1024 * 1024  # 8192², padded: a 12800² header is refused before anything is allocated
#: Peak resident bytes of a CPU decode (fp32) per padded pixel, and of the loaded network: 1.5 x the measured
#: figures of results/decode_memory.json (benchmarks/decode_memory.py, random weights of the released
#: architectures). A header whose decode would not fit in the memory available is refused unread.
DECODE_MEMORY = {"x": (5030, 414 << 20), "eps": (7180, 410 << 20)}


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 / AMX); emulated bf16 is slower than fp32."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _option_specs(steps: int, timesteps: int) -> dict[str, Option]:
    return {
        "steps": Option(steps, "DDIM sampling steps; decode time is linear in it", range=(1, timesteps)),
        "gamma": Option(0.8, "scale of the initial Gaussian state (the paper's gamma)", range=(0.0, None)),
        "eta": Option(0.0, "DDIM eta: 0 is deterministic given the seed, >0 adds noise every step",
                      range=(0.0, None)),
        "seed": Option(0, "seed of the initial state (and of the per-step noise when eta > 0): same seed, same "
                          "image, alone or in a batch", range=(0, models.MAX_SEED)),
        "noise": Option("nchw", "how the seed draws the initial state; official = randn_like of a channels-last "
                                "image, as the official test script after torch.manual_seed(seed) on the CPU",
                        choices=NOISE_LAYOUTS),
        "checkpoint": Option("", "local checkpoint file (any lambda); replaces the released files, the rate point "
                                 "is then only a label"),
        "weights": WEIGHTS_OPTION,
        "dtype": Option("fp32", "autocast of the denoiser (bf16: CUDA, or a CPU with native bf16; fp16: CUDA); "
                                "the entropy model stays fp32", choices=tuple(DTYPES)),
        "fast_norm": Option(False, "two-pass channel variance in the denoiser: 0-15% faster per call, not "
                                   "bit-identical to the official torch.var"),
        "channels_last": Option(False, "run the denoiser in channels-last memory format"),
        "compile": Option(False, "torch.compile the denoiser (compiled once per worker and image size)"),
        "max_pixels": Option(MAX_PIXELS, "largest padded image (pixels) a stream may claim; checked before "
                                         "anything is allocated", range=(4096, None)),
    }


def _lambda_rate(variant: str) -> Rate:
    return Rate.reals(0, None, points=releases.lambdas(variant), label="lambda",
                      note="rate-Lagrangian b; larger = lower rate")


class _CDCBase(LearnedCodec):
    variant: ClassVar[str] = "x"
    smoke_options = {"weights": "random", "steps": "2"}

    def __init__(self, options=None, device: str = "cpu"):
        super().__init__(options, device)
        if self.options["checkpoint"]:
            # One local file is one rate point, labelled with its lambda when its name carries one.
            self.rate_points = (models.checkpoint_label(self.options["checkpoint"]),)
            self.rate = self.rate.with_points(self.rate_points)

    # -- configuration ---------------------------------------------------------------------------------------
    def check_options(self) -> None:
        o, on_cuda = self.options, str(self.device).startswith("cuda")
        if o["dtype"] == "fp16" and not on_cuda:
            raise CodecConfigError(f"{self.name}: dtype=fp16 needs a CUDA device (got {self.device}); use "
                                   f"dtype=bf16 on a CPU with native bf16, or fp32")
        if o["dtype"] == "bf16" and not on_cuda and not cpu_has_native_bf16():
            raise CodecConfigError(f"{self.name}: dtype=bf16 on the CPU needs native bf16 support (AVX512-BF16 or "
                                   f"AMX, checked with torch.ops.mkldnn._is_mkldnn_bf16_supported()), which this "
                                   f"CPU lacks; use dtype=fp32")
        if o["checkpoint"]:
            path = Path(o["checkpoint"]).expanduser()
            if not path.is_file():
                raise CodecConfigError(f"{self.name}: checkpoint file {path} does not exist; give the path of a CDC "
                                       f"checkpoint (.pt) or leave checkpoint empty to use the released ones")
            if o["weights"] != "pretrained":
                raise CodecConfigError(f"{self.name}: give either checkpoint=PATH or weights=random, not both")

    @classmethod
    def availability(cls) -> Availability:
        try:
            from . import checkpoint, entropy  # noqa: F401
        except ImportError as err:
            return Availability(False, f"CDC model code is not importable: {err}",
                                "reinstall cdc-bench (pip install -e .)")
        return Availability(True)

    def check_rate(self, lam: Any) -> Any:
        """Released weights exist for the listed lambdas only; a local or random model takes any as its label."""
        if self.options["checkpoint"] or self.options["weights"] == "random":
            return lam  # only a label: the weights are fixed by the options
        try:
            return releases.find_release(self.variant, lam).lam
        except CodecError as err:
            raise CodecConfigError(f"{self.name}: {err}") from None

    def required_weights(self, rate_points: Sequence[Any]) -> list[str]:
        if self.options["checkpoint"] or self.options["weights"] == "random":
            return []
        return [releases.find_release(self.variant, self.validate_rate(r)).weight_name for r in rate_points]

    @property
    def numerics(self) -> models.Numerics:
        o = self.options
        return models.Numerics(o["fast_norm"], o["dtype"], o["channels_last"], o["compile"])

    # -- coding ----------------------------------------------------------------------------------------------
    def _encode(self, image: np.ndarray, rate: Any) -> Encoded:
        loaded = models.for_rate(self.name, self.variant, rate, self.options, self.device, self.numerics)
        height, width = image.shape[:2]
        padded = pad_to_multiple(image, loaded.multiple)  # edge replication, bottom and right
        if padded.shape[0] * padded.shape[1] > self.options["max_pixels"]:
            raise CodecError(f"{self.name}: image {height}x{width} is too large (padded "
                             f"{padded.shape[0]}x{padded.shape[1]} > max_pixels={self.options['max_pixels']})")
        self.check_memory(*padded.shape[:2], CodecError)  # a stream this decoder could not decode here
        coded = encode_latents(loaded.model.context_fn, loaded.coder, self._to_tensor(padded))
        header = Header(self.variant, loaded.model_id, height, width, padded.shape[0], padded.shape[1],
                        int(loaded.model.config.num_timesteps), scale_crc=coded.scale_crcs[0])
        info = {"cdc_steps": self.options["steps"], "cdc_model_id": loaded.model_id,
                "cdc_weights": loaded.weights_kind}
        return Encoded(pack(header, coded.z_strings[0], coded.y_strings[0]), float(coded.bits[0]), info)

    def _decode(self, data: bytes) -> np.ndarray:
        return self._decode_batch([data])[0]

    def _decode_batch(self, datas: Sequence[bytes]) -> list[np.ndarray]:
        """Decode streams of one model and padded size in one sampler run (one network call per step); other
        groups run separately. Each image's initial state comes from its own generator seeded with ``seed``, so
        a batch gives the same images as decoding one at a time (eta = 0)."""
        parsed = [self._parse(data) for data in datas]
        groups: dict[tuple, list[int]] = {}
        for i, (header, _, _) in enumerate(parsed):
            groups.setdefault((header.model_id, header.padded_height, header.padded_width), []).append(i)
        images: list[np.ndarray | None] = [None] * len(parsed)
        for indexes in groups.values():
            for i, image in zip(indexes, self._decode_group([parsed[i] for i in indexes])):
                images[i] = image
        return images  # type: ignore[return-value]

    def _parse(self, data: bytes) -> tuple[Header, bytes, bytes]:
        """Every header field against this decoder's configuration, before anything is loaded or allocated."""
        header, z, y = unpack(data)
        if header.variant != self.variant:
            raise BitstreamError(f"this is a {header.variant}-param CDC stream; decode it with "
                                 f"{'cdc' if header.variant == 'x' else 'cdc-eps'}, not {self.name}")
        pixels = header.padded_height * header.padded_width
        if pixels > self.options["max_pixels"]:
            raise BitstreamError(f"CDC stream claims a padded size of {header.padded_height}x{header.padded_width} "
                                 f"({pixels} pixels), above max_pixels={self.options['max_pixels']}; raise "
                                 f"-o {self.name}.max_pixels=N if you trust this stream")
        self.check_memory(header.padded_height, header.padded_width)
        models.check_model_id(self.name, self.variant, header.model_id, self.options)
        if not header.model_id.startswith("file:"):  # released and random weights: T is the released config's
            self._check_timesteps(header, int(RELEASED_CONFIGS[self.variant].num_timesteps))
        return header, z, y

    def _check_timesteps(self, header: Header, timesteps: int) -> None:
        if header.num_timesteps != timesteps:
            raise BitstreamError(f"stream was encoded by a model with T={header.num_timesteps}, "
                                 f"decoder model has T={timesteps}")
        if self.options["steps"] > timesteps:
            raise CodecConfigError(f"{self.name}: steps={self.options['steps']} exceeds the model's T={timesteps}")

    def _decode_group(self, parsed: list[tuple[Header, bytes, bytes]]) -> list[np.ndarray]:
        first = parsed[0][0]
        if len(parsed) > 1:  # one sampler run holds every image of the group
            self.check_memory(first.padded_height, first.padded_width, images=len(parsed))
        loaded = models.for_stream(self.name, self.variant, first.model_id, self.options, self.device, self.numerics)
        self._check_timesteps(first, int(loaded.model.config.num_timesteps))
        ph, pw, factor = first.padded_height, first.padded_width, loaded.multiple
        context = decode_context(loaded.model.context_fn, loaded.coder, [z for _, z, _ in parsed],
                                 [y for _, _, y in parsed], (len(parsed), loaded.z_channels, ph // factor,
                                                             pw // factor),
                                 [h.scale_crc for h, _, _ in parsed], self.device)
        x0 = self._sample(loaded, context, (len(parsed), 3, ph, pw))
        return [img[:h.height, :h.width] for img, (h, _, _) in zip(self._to_uint8(x0), parsed)]

    def _sample(self, loaded: models.LoadedModel, context: list[torch.Tensor],
                shape: tuple[int, int, int, int]) -> torch.Tensor:
        o = self.options
        with torch.inference_mode():  # an inference tensor like every later state: one compiled graph, not two
            init = seeded_initial_state(shape, o["gamma"], o["seed"], o["noise"], self.device)
        if o["channels_last"]:
            init = init.contiguous(memory_format=torch.channels_last)
            context = [c.contiguous(memory_format=torch.channels_last) for c in context]
        # per-step noise (eta > 0): one generator per image, so an image decodes alike alone and in a batch
        noise_gen = [torch.Generator(device=self.device).manual_seed(o["seed"] + 1) for _ in range(shape[0])]
        dtype = DTYPES[o["dtype"]]
        device_type = "cuda" if str(self.device).startswith("cuda") else "cpu"
        with torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = decode_image(loaded.model, context, shape, steps=o["steps"], gamma=o["gamma"], eta=o["eta"],
                               generator=noise_gen, init=init, denoise=loaded.denoise)
        return out.float()

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        # The official order: uint8 -> float -> /255 -> *2-1 (the official test script).
        # np.require copies only a read-only array (the runner shares images read-only), so torch does not warn
        # "The given NumPy array is not writable" on every run.
        x = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1)[None].float()
        return (x / 255.0 * 2.0 - 1.0).to(self.device)

    @staticmethod
    def _to_uint8(x0: torch.Tensor) -> list[np.ndarray]:
        # The official post-processing: clamp(-1,1)/2+0.5, then torchvision.save_image's *255 +0.5, clamp, uint8.
        x = (x0.clamp(-1, 1) / 2 + 0.5).mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
        return [img.permute(1, 2, 0).cpu().numpy() for img in x]


class CDCXParam(_CDCBase):
    name = "cdc"
    variant = "x"
    description = "CDC (Yang & Mandt 2023), x-parameterisation, released weights, real rANS coding"
    rate = _lambda_rate("x")
    option_specs = _option_specs(steps=65, timesteps=RELEASED_CONFIGS["x"].num_timesteps)
    decode_bytes_per_pixel, decode_model_bytes = DECODE_MEMORY["x"]
    details = ("x-param U-Net (T=8193, cosine), ResnetCompressor with hyperprior; latents coded with compressai's "
               "rANS (factorised prior for z, Gaussian for y); DDIM decoding from gamma*N(0,1); images padded by "
               "edge replication to a multiple of 64")


class CDCEpsParam(_CDCBase):
    name = "cdc-eps"
    variant = "eps"
    description = "CDC (Yang & Mandt 2023), epsilon-parameterisation, released weights, real rANS coding"
    rate = _lambda_rate("eps")
    option_specs = _option_specs(steps=200, timesteps=RELEASED_CONFIGS["eps"].num_timesteps)
    decode_bytes_per_pixel, decode_model_bytes = DECODE_MEMORY["eps"]
    details = ("eps-param U-Net (T=20000, linear), BigCompressor with hyperprior; latents coded with compressai's "
               "rANS (factorised prior for z, Gaussian for y); DDIM decoding (no clipping) from gamma*N(0,1); "
               "images padded by edge replication to a multiple of 64")
