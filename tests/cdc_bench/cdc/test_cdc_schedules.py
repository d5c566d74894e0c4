"""Beta schedules and sampling indices: exact agreement with the official tables."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cdc_bench.cdc.schedules import (cosine_betas, linear_betas, sample_schedule, schedule_indices,
                                     training_buffers)

TABLES = {"x": "xparam_cosine_T8193", "eps": "epsparam_linear_T20000"}


@pytest.fixture(scope="module")
def tables(shared_dir):
    return json.loads((shared_dir / "reference" / "cdc" / "schedule_indices.json").read_text())


@pytest.mark.parametrize("variant", ["x", "eps"])
def test_indices_and_alphas_match_official_tables_exactly(tables, variant):
    table = tables[TABLES[variant]]
    acp = training_buffers("cosine" if variant == "x" else "linear", table["T"], variant == "x")["train_alphas_cumprod"]
    assert len(table["steps"]) > 5
    for steps, entry in table["steps"].items():
        sched = sample_schedule(acp, int(steps), variant)
        assert sched.index.tolist() == entry["index"], steps
        if "alphas_cumprod" in entry:  # the table lists alphas for the smaller step counts only
            np.testing.assert_allclose(sched.alphas.numpy(), entry["alphas_cumprod"], rtol=2e-6, atol=0)
    first, last = table["alphas_cumprod_first_last_float32"]
    assert float(acp[0]) == pytest.approx(first, rel=1e-7) and float(acp[-1]) == pytest.approx(last, rel=1e-6)
    # where float32 and float64 linspace disagree, we follow the float32 one
    for steps in table["differs_from_float64_linspace"][:25]:
        f64 = torch.linspace(0, table["T"] - 1, steps, dtype=torch.float64).long()
        assert not torch.equal(schedule_indices(table["T"], steps, variant), f64), steps


def test_float32_linspace_trap():
    # S=15 at T=8193: float32 gives 4095 where float64 would give 4096 (SPEC §6.2)
    assert schedule_indices(8193, 15, "x")[7] == 4095
    assert torch.linspace(0, 8192, 15, dtype=torch.float64).long()[7] == 4096


def test_single_step_special_case_is_x_only():
    assert schedule_indices(8193, 1, "x").tolist() == [8192]
    assert schedule_indices(20000, 1, "eps").tolist() == [0]


def test_schedule_bounds_are_checked():
    with pytest.raises(ValueError, match="steps"):
        schedule_indices(100, 0, "x")
    with pytest.raises(ValueError, match="steps"):
        schedule_indices(100, 101, "x")
    with pytest.raises(ValueError, match="variant"):
        schedule_indices(100, 3, "v")


def test_beta_values_from_spec(tables):
    cos = cosine_betas(8193)
    assert cos[0] == pytest.approx(4.7788e-6, rel=1e-4) and cos[-1] == 0.999
    assert (cos[:-1] < 0.999).all()  # only the last beta hits the clip
    lin = linear_betas(20000)
    assert lin[0] == pytest.approx(5e-6) and lin[-1] == pytest.approx(1e-3)
    buf = training_buffers("cosine", 8193, with_snr=True)
    assert list(buf)[0] == "train_snr" and all(v.dtype == torch.float32 for v in buf.values())
    assert float(buf["train_alphas_cumprod"][0]) == pytest.approx(0.99999523, abs=1e-8)
    assert float(buf["train_alphas_cumprod"][-1]) == pytest.approx(3.618e-11, rel=1e-3)
    assert float(training_buffers("linear", 20000, False)["train_alphas_cumprod"][-1]) == pytest.approx(4.304e-5,
                                                                                                         rel=1e-3)


@pytest.mark.parametrize("prefix,variant", [("xparam", "x"), ("epsparam", "eps")])
def test_recomputed_buffers_match_checkpoint(shared_dir, prefix, variant):
    ckpt = torch.load(shared_dir / "reference/cdc/fixtures" / f"{prefix}_ckpt.pt", weights_only=True)
    state = ckpt["ema"] if variant == "x" else ckpt["model"]
    pre = "ema_model." if variant == "x" else ""
    ours = training_buffers("cosine" if variant == "x" else "linear", 8193 if variant == "x" else 20000,
                            variant == "x")
    for name, value in ours.items():
        torch.testing.assert_close(value, state[pre + name], rtol=1e-6, atol=0, msg=name)


def test_time_inputs():
    acp = training_buffers("cosine", 8193, True)["train_alphas_cumprod"]
    x = sample_schedule(acp, 3, "x")
    assert x.time_in.tolist() == pytest.approx([0.0, 4096 / 8193, 8192 / 8193])
    assert x.alphas_prev[0] == 1.0 and x.alphas_prev[1] == x.alphas[0]
    eps = sample_schedule(training_buffers("linear", 20000, False)["train_alphas_cumprod"], 3, "eps")
    assert eps.time_in.tolist() == pytest.approx([0.0, 1 / 3, 2 / 3])


def test_index_embedding_gets_the_integer_timestep():
    acp = training_buffers("cosine", 8193, True)["train_alphas_cumprod"]
    assert sample_schedule(acp, 3, "x", index_time=True).time_in.tolist() == [0.0, 4096.0, 8192.0]


def _two_roundings(end: int, steps: int) -> np.ndarray:
    """The same linspace without a fused multiply-add: the product and the difference each rounded to float32."""
    step = np.float32(end) / np.float32(steps - 1)
    i = np.arange(steps, dtype=np.float32)
    return np.where(np.arange(steps) < steps // 2, step * i, np.float32(end) - step * (np.float32(steps - 1) - i))


@pytest.mark.parametrize("timesteps, differing", [(8193, 78), (20000, 8)])
def test_indices_are_the_fused_linspace_for_every_step_count(timesteps, differing):
    """Every S in 2..1000: the official kernel (torch's own float32 linspace here) and not the twice-rounded form,
    which differs in as many step counts as the issue measured."""
    differs = []
    for steps in range(2, 1001):
        ours = schedule_indices(timesteps, steps, "x")
        assert torch.equal(ours, torch.linspace(0, timesteps - 1, steps, dtype=torch.float32).long()), steps
        if not np.array_equal(ours.numpy(), _two_roundings(timesteps - 1, steps).astype(np.int64)):
            differs.append(steps)
    assert len(differs) == differing and (timesteps != 8193 or differs[:2] == [15, 27])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the official scripts' linspace)")
@pytest.mark.parametrize("timesteps", [8193, 20000])
def test_indices_equal_the_cuda_linspace(timesteps):
    for steps in range(2, 1001):
        cuda = torch.linspace(0, timesteps - 1, steps, dtype=torch.float32, device="cuda").long().cpu()
        assert torch.equal(schedule_indices(timesteps, steps, "eps"), cuda), steps
