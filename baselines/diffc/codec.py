"""DiffC as a codec: reverse-channel coding of a diffusion model's reverse process (Theis et al. 2022), practical
with chunked PFR on pretrained models (Vonderfecht & Liu, ICLR 2025). Our implementation on diffusers models.

The rate point is the *recon timestep*: the sender codes the walk from x_T down to the first step of the
encoding schedule at or below it, so a lower timestep costs more bits. One walk serves every rate point: the
sender's state is kept in this process (:data:`_walks`), and a later rate point of the same image resumes it.
The decoder replays the coded steps from the chunk indices to the sender's x_t (everything that takes is in the
stream), then denoises it with its own ``sampler`` and ``steps`` options, as CDC's decoder does, so one stream
decodes at several step counts (``cdc-bench speed``).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np
import torch

from cdc_bench.codecs.base import Availability, Encoded, Option, Rate, pad_to_multiple
from cdc_bench.errors import BitstreamError, CodecConfigError, CodecError

from cdc_bench.codecs.learned import LearnedCodec

from . import bitstream, diffusion, models, pfr, seedcode

MAX_PIXELS = 1 << 22  # 4 Mpixel: a Kodak image fits; a header claiming more is refused unread
_WALK_CACHE = 8
#: (model id, device, coding, schedule, image digest) -> (walk, target latent): resumed by later rate points
_walks: "OrderedDict[tuple, tuple[diffusion.Walk, torch.Tensor]]" = OrderedDict()
#: what a model's geometry is without loading it: (image multiple, latent factor, latent channels)
GEOMETRY = {"random:sd15": (16, 8, 4), "random:ddpm": (2, 1, 3),
            models.SD15.model_id: (64, 8, 4), models.DDPM.model_id: (8, 1, 3)}


class DiffC(LearnedCodec):
    name = "diffc"
    description = ("DiffC (Theis et al. 2022; Vonderfecht & Liu 2025): the reverse diffusion coded with chunked "
                   "PFR reverse-channel coding, then denoised; no trained codec")
    rate = Rate.ints(0, 998, points=(600, 400, 250, 150, 80), label="recon timestep",
                     note="the sender stops there; lower = more bits")
    option_specs = {
        "weights": Option("pretrained", "pretrained (published model) or random (tiny seeded random config, for "
                                        "tests and speed work; numbers are meaningless)",
                          choices=("pretrained", "released", "random")),
        "model": Option("sd15", "sd15 (Stable Diffusion 1.5 latent space, empty prompt) or ddpm (pixel-space "
                                "DDPM CIFAR-10, cheap)", choices=("sd15", "ddpm")),
        "steps": Option(25, "denoising steps from the received x_t (decode time is linear in it)", range=(1, 1000)),
        "sampler": Option("ddim", "ddim (eta 0) or flow (Heun on the probability-flow ODE, ~2 calls per step)",
                          choices=bitstream.SAMPLERS),
        "encode_steps": Option(100, "steps of the encoding schedule from T to 0 (finer: fewer bits, slower)",
                               range=(2, 999)),
        "chunk_bits": Option(12, "candidate bits per PFR chunk (2^bits candidates scored per dimension; the paper's "
                                 "code uses 16)", range=(3, 18)),
        "chunk_padding": Option(2, "bits per chunk above its share of the KL (fewer truncation errors)",
                                range=(0, 8)),
        "seed": Option(0, "seed of the shared randomness (x_T, candidates, chunk layout)", range=(0, (1 << 32) - 1)),
        "max_pixels": Option(MAX_PIXELS, "largest image (H x W pixels) to encode or accept from a header",
                             range=(1, None)),
    }
    details = ("diffusers U-Net (SD 1.5 latent, or pixel DDPM); per step the DDPM posterior q(x_s|x_t,x_0) is coded "
               "under the model's p(x_s|x_t) by Poisson functional representation in chunks of <= chunk_bits bits "
               "(counter-based generator, identical on CPU and CUDA); chunk indices rANS-coded (compressai) under "
               "a Zipf prior; DDIM or probability-flow denoising")
    smoke_options = {"weights": "random", "encode_steps": "20", "steps": "2", "chunk_bits": "8"}
    #: not measured: weights=random is a tiny configuration, not SD 1.5's or the DDPM's architecture, so it says
    #: nothing of their decode memory; only max_pixels bounds a header
    decode_bytes_per_pixel = None

    def __init__(self, options=None, device: str = "cpu"):
        super().__init__(options, device)
        if self.options["weights"] == "released":
            self.options["weights"] = "pretrained"
        self._model: tuple[str, models.Diffusion] | None = None

    # -- configuration ---------------------------------------------------------------------------------------------
    @classmethod
    def availability(cls) -> Availability:
        try:
            import compressai  # noqa: F401
            import diffusers  # noqa: F401
        except ImportError as err:
            return Availability(False, f"diffc needs diffusers and compressai ({err})",
                                'pip install "diffusers>=0.42,<0.43" "compressai==1.2.8"')
        return Availability(True)

    def check_options(self) -> None:
        if self.options["chunk_padding"] >= self.options["chunk_bits"]:
            raise CodecConfigError(f"{self.name}: chunk_padding must be below chunk_bits")

    def required_weights(self, rate_points: Sequence[Any]) -> list[str]:
        return [] if self.options["weights"] == "random" else models.required_files(self.options["model"])

    @property
    def model_id(self) -> str:
        return models.model_id(self.options["model"], self.options["weights"])

    def _load(self, decoding: bool) -> models.Diffusion:
        if self._model is None or self._model[0] != self.model_id:
            self._model = None
            self._model = (self.model_id, models.load(self.options["model"], self.options["weights"], self.device,
                                                      decoding))
        return self._model[1]

    @property
    def coding(self) -> diffusion.Coding:
        o = self.options
        return diffusion.Coding(o["seed"], o["chunk_bits"], o["chunk_padding"])

    # -- encoding --------------------------------------------------------------------------------------------------
    def _encode(self, image: np.ndarray, rate: int) -> Encoded:
        walk, header = self.encode_walk(image, rate)
        chunks = chunk_priors(header)
        payload = seedcode.encode([i for step in walk.indexes[:header.coded_steps] for i in step], chunks)
        kl = float(sum(walk.kl_bits[:header.coded_steps]))
        info = {"diffc_timestep": diffusion.encode_schedule(header.timesteps, header.encode_steps)[
                    header.coded_steps - 1],
                "diffc_coded_steps": header.coded_steps, "diffc_chunks": len(chunks), "diffc_kl_bits": kl,
                "diffc_model_id": header.model_id, "diffc_weights": self.options["weights"]}
        return Encoded(bitstream.pack(header, payload), kl, info)

    def encode_walk(self, image: np.ndarray, rate: int) -> tuple[diffusion.Walk, bitstream.Header]:
        """The sender's walk down to ``rate`` (resumed from this process's cache) and the stream's header."""
        model = self._load(decoding=False)
        h, w = image.shape[:2]
        padded = pad_to_multiple(image, model.multiple)
        self.check_size(*padded.shape[:2], error=CodecError)
        schedule = diffusion.encode_schedule(model.timesteps, self.options["encode_steps"])
        until = diffusion.stop_index(schedule, rate)
        key = (self.model_id, str(self.device), self.coding, self.options["encode_steps"],
               hashlib.sha1(np.ascontiguousarray(padded).tobytes()).hexdigest(), padded.shape)
        if key in _walks:
            _walks.move_to_end(key)
            walk, target = _walks[key]
        else:
            with torch.no_grad():
                target = model.to_latent(to_tensor(padded, self.device))
            walk = diffusion.start(model, tuple(target.shape), self.coding, self.device)
            _walks[key] = (walk, target)
            while len(_walks) > _WALK_CACHE:
                _walks.popitem(last=False)
        if walk.steps < until:
            diffusion.advance(model, walk, target, schedule, until, self.coding)
        o = self.options
        header = bitstream.Header(self.model_id, h, w, model.timesteps, o["encode_steps"], o["chunk_bits"],
                                  o["chunk_padding"], o["seed"], tuple(walk.step_bits[:until]))
        return walk, header

    # -- decoding --------------------------------------------------------------------------------------------------
    def parse(self, data: bytes) -> tuple[bitstream.Header, list[list[int]]]:
        """Every header field checked against this decoder before anything is allocated, then the indices."""
        header, payload = bitstream.unpack(data, self.name, self._check_header_size, self._step_bits_limit)
        if header.model_id != self.model_id:
            raise BitstreamError(f"{self.name}: stream was made with model {header.model_id}; this decoder has "
                                 f"{self.model_id} (options model={self.options['model']}, "
                                 f"weights={self.options['weights']})")
        if header.timesteps != models.SCHEDULES[self.options["model"]]["num_train_timesteps"]:
            raise BitstreamError(f"{self.name}: stream claims T={header.timesteps}; the model has T="
                                 f"{models.SCHEDULES[self.options['model']]['num_train_timesteps']}")
        chunks = chunk_priors(header)
        flat = seedcode.decode(payload, chunks, self.name)
        indexes, start = [], 0
        for count in chunk_counts(header):
            indexes.append(flat[start:start + count])
            start += count
        return header, indexes

    def _geometry(self, model_id: str, h: int, w: int) -> tuple[int, int, int]:
        if model_id not in GEOMETRY:
            raise BitstreamError(f"{self.name}: stream names an unknown model {model_id!r}")
        multiple, factor, channels = GEOMETRY[model_id]
        ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        return ph, pw, channels * (ph // factor) * (pw // factor)

    def _check_header_size(self, h: int, w: int) -> None:
        self.check_size(h, w)

    def _step_bits_limit(self, model_id: str, h: int, w: int, bits: int, padding: int) -> int:
        ph, pw, dim = self._geometry(model_id, h, w)
        self.check_size(ph, pw)
        return pfr.max_chunks(dim, bits, padding)

    def decode_noisy(self, data: bytes) -> tuple[torch.Tensor, int, bitstream.Header]:
        """The receiver's x_t (bit-identical to the sender's) and its timestep, from the bytes alone."""
        header, indexes = self.parse(data)
        model = self._load(decoding=True)
        ph, pw, _ = self._geometry(header.model_id, header.height, header.width)
        shape = model.latent_shape(ph, pw)
        schedule = diffusion.encode_schedule(header.timesteps, header.encode_steps)
        coding = diffusion.Coding(header.seed, header.chunk_bits, header.chunk_padding)
        try:
            x, t = diffusion.replay(model, shape, schedule, list(header.step_bits), indexes, coding, self.device)
        except ValueError as err:
            raise BitstreamError(f"{self.name}: bitstream is corrupt ({err})") from None
        return x, t, header

    def _decode(self, data: bytes) -> np.ndarray:
        x, t, header = self.decode_noisy(data)
        model = self._load(decoding=True)
        with torch.no_grad():
            x0 = diffusion.denoise(model, x, t, self.options["steps"], self.options["sampler"])
            image = model.to_image(x0)
        return to_uint8(image)[:header.height, :header.width]


def chunk_layouts(header: bitstream.Header) -> list[pfr.Layout]:
    multiple, factor, channels = GEOMETRY[header.model_id]
    ph, pw = -(-header.height // multiple) * multiple, -(-header.width // multiple) * multiple
    dim = channels * (ph // factor) * (pw // factor)
    try:
        return [pfr.layout(dim, bits, header.chunk_bits, header.chunk_padding) for bits in header.step_bits]
    except ValueError as err:
        raise BitstreamError(f"diffc bitstream is corrupt ({err})") from None


def chunk_counts(header: bitstream.Header) -> list[int]:
    return [len(layout.sizes) for layout in chunk_layouts(header)]


def chunk_priors(header: bitstream.Header) -> list[seedcode.Chunk]:
    """Each chunk's size and KL share, from the header alone (what both sides' index prior depends on)."""
    out = []
    for bits, layout in zip(header.step_bits, chunk_layouts(header)):
        total = sum(layout.sizes)
        out += [seedcode.Chunk(size, bits * size / total) for size in layout.sizes]
    return out


def to_tensor(image: np.ndarray, device: str) -> torch.Tensor:
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float()  # a writable copy
    return (x / 127.5 - 1.0).to(device)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
