"""The DDIM sampler as a function over a denoiser callable: update rule, clamping, seeding, callbacks."""
from __future__ import annotations

import pytest
import torch

from cdc_bench.cdc.checkpoint import build_cdc
from cdc_bench.cdc.model import CDCConfig
from cdc_bench.cdc.sampler import ddim_step, decode_image, initial_state, sample_ddim
from cdc_bench.cdc.schedules import sample_schedule, training_buffers

ACP_X = training_buffers("cosine", 8193, True)["train_alphas_cumprod"]
ACP_EPS = training_buffers("linear", 20000, False)["train_alphas_cumprod"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: thread start-up dominates, and on a loaded machine 2 threads are several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_x_param_step_matches_ddim_formula_and_clamps():
    sched = sample_schedule(ACP_X, 5, "x")
    x = torch.randn(1, 3, 4, 4)
    raw = torch.randn(1, 3, 4, 4) * 3  # outside [-1, 1]: must be clamped before use
    x_prev, x0, out = ddim_step(lambda x_, t, c: raw.clone(), x, sched, 3, [])
    a, ap = sched.alphas[3], sched.alphas_prev[3]
    x0_ref = raw.clamp(-1, 1)
    eps = (torch.sqrt(1 / a) * x - x0_ref) / torch.sqrt(1 / a - 1)
    torch.testing.assert_close(x0, x0_ref)
    torch.testing.assert_close(out, raw)  # the raw output is reported unclamped
    torch.testing.assert_close(x_prev, torch.sqrt(ap) * x0_ref + torch.sqrt(1 - ap) * eps, rtol=1e-5, atol=1e-5)


def test_eps_param_step_has_no_clamp():
    sched = sample_schedule(ACP_EPS, 4, "eps")
    x, eps = torch.randn(1, 3, 4, 4) * 5, torch.randn(1, 3, 4, 4)
    x_prev, x0, _ = ddim_step(lambda x_, t, c: eps, x, sched, 2, [])
    a, ap = sched.alphas[2], sched.alphas_prev[2]
    x0_ref = torch.sqrt(1 / a) * x - torch.sqrt(1 / a - 1) * eps
    torch.testing.assert_close(x0, x0_ref)
    assert float(x0.abs().max()) > 1
    torch.testing.assert_close(x_prev, torch.sqrt(ap) * x0_ref + torch.sqrt(1 - ap) * eps, rtol=1e-5, atol=1e-5)


def test_last_step_returns_x0_and_time_inputs_are_passed():
    seen = []

    def denoise(x, t, c):
        seen.append(t.clone())
        return torch.full_like(x, 0.25)

    sched = sample_schedule(ACP_X, 3, "x")
    out = sample_ddim(denoise, torch.randn(2, 3, 4, 4), sched, [])
    torch.testing.assert_close(out, torch.full((2, 3, 4, 4), 0.25))
    assert [t.shape for t in seen] == [(2, 1)] * 3
    assert [float(t[0, 0]) for t in seen] == pytest.approx([8192 / 8193, 4096 / 8193, 0.0])


@pytest.fixture(scope="module")
def tiny():
    config = CDCConfig(dim=8, context_channels=8, dim_mults=(1, 1, 2, 2, 2, 3), context_dim_mults=(1, 1, 2, 2),
                       comp_dim=8, comp_dim_mults=(1, 1, 2, 2), reverse_dim_mults=(2, 2, 1, 1),
                       hyper_dims_mults=(2, 2, 2), comp_out_channels=8)
    model = build_cdc(config, seed=0)
    with torch.inference_mode():
        context = model.compress(torch.rand(1, 3, 64, 64) * 2 - 1).context
    return model, context


def test_same_generator_seed_same_image_and_eta_noise(tiny):
    model, context = tiny

    def run(seed, eta):
        g = torch.Generator().manual_seed(seed)
        return decode_image(model, context, (1, 3, 64, 64), steps=3, eta=eta, generator=g)

    torch.testing.assert_close(run(0, 0.0), run(0, 0.0), rtol=0, atol=0)
    torch.testing.assert_close(run(5, 1.0), run(5, 1.0), rtol=0, atol=0)
    assert not torch.equal(run(0, 0.0), run(1, 0.0))
    assert not torch.equal(run(0, 0.0), run(0, 1.0))  # eta > 0 injects noise
    assert float(run(3, 0.0).abs().max()) <= 1.0


def test_initial_state_is_scaled_gaussian():
    g = torch.Generator().manual_seed(0)
    x = initial_state((4, 3, 64, 64), 0.8, g)
    assert float(x.std()) == pytest.approx(0.8, rel=0.03)
    torch.testing.assert_close(x, torch.randn((4, 3, 64, 64), generator=torch.Generator().manual_seed(0)) * 0.8)


def test_decode_runs_in_inference_mode_and_calls_once_per_step(tiny):
    model, context = tiny
    calls = []
    out = decode_image(model, context, (1, 3, 64, 64), steps=4, callback=calls.append,
                       generator=torch.Generator().manual_seed(0))
    assert len(calls) == 4 and [c["i"] for c in calls] == [3, 2, 1, 0]
    assert out.is_inference() and not out.requires_grad


def test_a_replacement_denoiser_is_used(tiny):
    model, context = tiny
    calls = []

    def counting(x, t, c):
        calls.append(t)
        return model.denoise_fn(x, t, c)

    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    ours = decode_image(model, context, (1, 3, 64, 64), steps=2, generator=g(), denoise=counting)
    assert len(calls) == 2
    torch.testing.assert_close(ours, decode_image(model, context, (1, 3, 64, 64), steps=2, generator=g()),
                               rtol=0, atol=0)


@pytest.mark.slow
def test_compiled_denoiser_matches_eager(tiny):
    """torch.compile takes minutes on a small CPU: slow test."""
    from cdc_bench.cdc.sampler import compile_denoiser

    model, context = tiny
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    compiled = decode_image(model, context, (1, 3, 64, 64), steps=2, generator=g(), denoise=compile_denoiser(model))
    eager = decode_image(model, context, (1, 3, 64, 64), steps=2, generator=g())
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-4)


def test_index_embedding_model_is_fed_timesteps():
    config = CDCConfig(dim=8, context_channels=8, dim_mults=(1, 2), context_dim_mults=(1,), embd_type="index",
                       comp_dim=8, comp_dim_mults=(1, 1, 1, 1), reverse_dim_mults=(1, 1, 1, 1),
                       hyper_dims_mults=(1, 1, 1), comp_out_channels=8)
    model = build_cdc(config)
    with torch.inference_mode():
        context = model.compress(torch.zeros(1, 3, 64, 64)).context
    calls = []
    decode_image(model, context[:1], (1, 3, 64, 64), steps=3, callback=calls.append,
                 generator=torch.Generator().manual_seed(0))
    assert [float(c["time_in"]) for c in calls] == [8192.0, 4096.0, 0.0]


def _official_init(height, width, gamma, seed):
    """The official test script's draw, reproduced with torch: torchvision's read_image gives an H×W×C uint8
    buffer viewed as C×H×W; the script unsqueezes, converts, and calls randn_like on the global CPU RNG."""
    import numpy as np

    image = torch.from_numpy(np.zeros((height, width, 3), np.uint8)).permute(2, 0, 1)  # read_image's layout
    x = image.unsqueeze(0).float() / 255.0
    torch.manual_seed(seed)
    return torch.randn_like(x) * gamma


def test_official_noise_layout_draws_as_the_official_script():
    from cdc_bench.cdc.sampler import seeded_initial_state

    state = torch.random.get_rng_state()
    try:
        expected = _official_init(64, 128, 0.8, seed=11)
    finally:
        torch.random.set_rng_state(state)
    got = seeded_initial_state((2, 3, 64, 128), 0.8, seed=11, layout="official")
    assert torch.equal(got[0:1], expected) and torch.equal(got[1:2], expected)  # per image, not per batch
    nchw = seeded_initial_state((1, 3, 64, 128), 0.8, seed=11)
    assert not torch.equal(nchw, expected)  # the default layout is another (equally valid) draw
    assert torch.equal(nchw, torch.randn((1, 3, 64, 128), generator=torch.Generator().manual_seed(11)) * 0.8)


def test_torchvision_read_image_has_the_layout_the_official_draw_assumes(tmp_path):
    import torchvision.io as tv_io
    from PIL import Image
    import numpy as np

    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(tmp_path / "a.png")
    image = tv_io.read_image(str(tmp_path / "a.png"))
    assert image.stride() == (1, 128 * 3, 3)  # C×H×W view of an H×W×C buffer
