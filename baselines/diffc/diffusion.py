"""DiffC's walk down the reverse process (sender and receiver) and the denoising of the received x_t.

Both sides start from the same x_T ~ N(0, I) (drawn from the stream's seed with prng.py) and, at each step
t -> s of the encoding schedule, compute the model's p(x_s | x_t) = N(p_mu, std^2 I) (the DDPM posterior around
the model's x_0 prediction). The sender also knows q(x_s | x_t, x_0) = N(q_mu, std^2 I), codes a sample of it
under p with PFR (pfr.py), and both set x_s = p_mu + std * z from the coded candidate z. So the receiver's x_t
is the sender's, bit for bit, as long as both compute p_mu alike (same model, device and numerics).

The rate point is where the sender stops; the receiver then denoises x_t with DDIM (eta = 0) or with Heun's
method on the probability-flow ODE (DDIM is its Euler step).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import pfr, prng
from .models import Diffusion

INITIAL_STATE = 1 << 40  # key part of x_T's stream (steps use 0 .. N-1)


def encode_schedule(timesteps: int, steps: int) -> list[int]:
    """The timesteps the walk visits after x_{T-1}: ``steps`` evenly spaced values from T-1 down to 0."""
    top = timesteps - 1
    return [round(top * (steps - i) / steps) for i in range(1, steps + 1)]


def stop_index(schedule: list[int], recon_timestep: int) -> int:
    """How many steps the sender codes for a rate point: until the first timestep at or below it."""
    for i, t in enumerate(schedule):
        if t <= recon_timestep:
            return i + 1
    return len(schedule)


@dataclass
class Posterior:
    c0: float   # coefficient of x_0 in the posterior mean
    ct: float   # coefficient of x_t
    std: float


def posterior(alphas: torch.Tensor, t: int, s: int) -> Posterior:
    """q(x_s | x_t, x_0) for s < t (DDPM eq. 7 with skipped steps), in float64."""
    a_t, a_s = float(alphas[t]), float(alphas[s])
    alpha = a_t / a_s
    beta = 1.0 - alpha
    return Posterior(math.sqrt(a_s) * beta / (1 - a_t), math.sqrt(alpha) * (1 - a_s) / (1 - a_t),
                     math.sqrt((1 - a_s) / (1 - a_t) * beta))


def predict_x0(model: Diffusion, x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    a = float(model.alphas_cumprod[t])
    eps = model.eps(x, t).float()
    x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
    return (x0.clamp(-1, 1) if model.clip_x0 else x0), eps


def initial_state(shape: tuple[int, ...], seed: int, device: str) -> torch.Tensor:
    return prng.normals(prng.derive_key(seed, INITIAL_STATE), math.prod(shape), device).view(shape)


@dataclass
class Walk:
    """The sender's state after some coded steps: enough to resume the walk for a later rate point."""

    x: torch.Tensor
    timestep: int
    step_bits: list[int] = field(default_factory=list)   # per step: ceil(KL) in bits (the layout's input)
    kl_bits: list[float] = field(default_factory=list)   # per step: the exact KL in bits
    indexes: list[list[int]] = field(default_factory=list)  # per step: the chunk indices

    @property
    def steps(self) -> int:
        return len(self.step_bits)


@dataclass(frozen=True)
class Coding:
    seed: int
    chunk_bits: int
    padding: int


def start(model: Diffusion, shape: tuple[int, ...], coding: Coding, device: str) -> Walk:
    return Walk(initial_state(shape, coding.seed, device), model.timesteps - 1)


def _step_mean(model: Diffusion, x: torch.Tensor, t: int, s: int) -> tuple[torch.Tensor, Posterior]:
    post = posterior(model.alphas_cumprod, t, s)
    x0_hat, _ = predict_x0(model, x, t)
    return post.c0 * x0_hat + post.ct * x, post


def advance(model: Diffusion, walk: Walk, target: torch.Tensor, schedule: list[int], until: int,
            coding: Coding) -> Walk:
    """Code steps ``walk.steps .. until - 1`` of ``schedule`` (the sender), updating ``walk`` in place."""
    for i in range(walk.steps, until):
        s = schedule[i]
        p_mu, post = _step_mean(model, walk.x, walk.timestep, s)
        q_mu = post.c0 * target + post.ct * walk.x
        mu = (q_mu - p_mu) / post.std
        walk.kl_bits.append(pfr.step_bits(mu))
        try:
            bits, indexes, z = pfr.encode_step(mu, coding.seed, i, coding.chunk_bits, coding.padding)
        except ValueError as err:
            from cdc_bench.errors import CodecError

            raise CodecError(f"diffc: cannot code step {i} (t={walk.timestep}->{s}): {err}; stop at an earlier "
                             f"timestep or raise chunk_bits") from None
        walk.step_bits.append(bits)
        walk.indexes.append(indexes)
        walk.x = p_mu + post.std * z
        walk.timestep = s
    return walk


def replay(model: Diffusion, shape: tuple[int, ...], schedule: list[int], step_bits: list[int],
           indexes: list[list[int]], coding: Coding, device: str) -> tuple[torch.Tensor, int]:
    """The receiver: x_t and t after the coded steps, from the chunk indices alone."""
    x, t = initial_state(shape, coding.seed, device), model.timesteps - 1
    for i, (bits, chunk_indexes) in enumerate(zip(step_bits, indexes)):
        s = schedule[i]
        p_mu, post = _step_mean(model, x, t, s)
        z = pfr.decode_step(shape, bits, chunk_indexes, coding.seed, i, coding.chunk_bits, coding.padding, device)
        x, t = p_mu + post.std * z, s
    return x, t


def denoise(model: Diffusion, x: torch.Tensor, t: int, steps: int, sampler: str) -> torch.Tensor:
    """x_0 from x_t with ``steps`` steps of DDIM (eta 0) or of Heun's method on the probability-flow ODE."""
    times = sorted({round(t * (steps - j) / steps) for j in range(steps)}, reverse=True)
    alphas = model.alphas_cumprod
    # DDIM's variables: xbar = x / sqrt(a), sigma = sqrt((1 - a) / a); dxbar/dsigma = eps. sigma = 0 at the end.
    sigmas = [math.sqrt((1 - float(alphas[u])) / float(alphas[u])) for u in times] + [0.0]
    xbar = x / math.sqrt(float(alphas[times[0]]))
    for j, u in enumerate(times):
        a = float(alphas[u])
        x0, eps = predict_x0(model, xbar * math.sqrt(a), u)
        d1 = (xbar - x0) / sigmas[j]  # = eps, or its clipped equivalent for pixel models
        xnext = xbar + (sigmas[j + 1] - sigmas[j]) * d1
        if sampler == "flow" and j + 1 < len(times):
            u2 = times[j + 1]
            x02, _ = predict_x0(model, xnext * math.sqrt(float(alphas[u2])), u2)
            d2 = (xnext - x02) / sigmas[j + 1]
            xnext = xbar + (sigmas[j + 1] - sigmas[j]) * 0.5 * (d1 + d2)
        xbar = xnext
    return xbar
