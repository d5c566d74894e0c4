"""DiffC as a codec, on tiny random configurations: the receiver's x_t is the sender's bit for bit (in a fresh
process, from the bytes alone), decoding is deterministic, the coded size is within a stated bound of the KL,
damaged streams are refused, and the header is checked before anything is allocated."""
from __future__ import annotations

import math
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.diffc import bitstream, codec as codec_module, models
from baselines.diffc.codec import DiffC
from cdc_bench.errors import BitstreamError, CodecConfigError

REPO = Path(__file__).resolve().parents[3]
SMOKE = dict(DiffC.smoke_options)


def image(h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, 128 + 60 * np.sin((x + y) / 4)], -1) + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def coded():
    """One image coded at three rate points by one walk (model ``sd15`` random and ``ddpm`` random)."""
    out = {}
    for model in ("sd15", "ddpm"):
        c = DiffC({**SMOKE, "model": model})
        img = image(30, 34) if model == "sd15" else image(16, 16)
        out[model] = (c, img, {rate: c.encode(img, rate) for rate in (600, 250, 80)})
    return out


def test_receiver_x_t_equals_sender_in_a_fresh_process(coded, tmp_path):
    c, img, encoded = coded["sd15"]
    data = encoded[250].data
    walk, header = c.encode_walk(img, 250)
    assert walk.steps >= header.coded_steps  # the walk may have gone further for the 80 point; replay is a prefix
    stream = tmp_path / "s.diffc"
    stream.write_bytes(data)
    script = (f"import torch, sys; from baselines.diffc.codec import DiffC\n"
              f"c = DiffC({SMOKE!r}); x, t, h = c.decode_noisy(open({str(stream)!r}, 'rb').read())\n"
              f"torch.save({{'x': x, 't': t}}, {str(tmp_path / 'x.pt')!r})")
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=300)
    received = torch.load(tmp_path / "x.pt", weights_only=True)
    # the sender's x_t at that rate point: replay its own walk's prefix in this process
    sent = c._load(False)
    shape = sent.latent_shape(32, 48)
    from baselines.diffc import diffusion

    x_sent, t_sent = diffusion.replay(sent, shape, diffusion.encode_schedule(1000, header.encode_steps),
                                      list(header.step_bits), walk.indexes[:header.coded_steps], c.coding, "cpu")
    assert received["t"] == t_sent == encoded[250].info["diffc_timestep"]
    assert torch.equal(received["x"], x_sent)
    # and the sender's own state, when it stopped there, is that tensor too
    fresh = DiffC(SMOKE)
    codec_module._walks.clear()
    walk250, _ = fresh.encode_walk(img, 250)
    assert torch.equal(walk250.x, received["x"])


def test_encode_and_decode_are_deterministic_and_resuming_equals_a_fresh_walk(coded):
    c, img, encoded = coded["sd15"]
    codec_module._walks.clear()
    fresh = DiffC(SMOKE).encode(img, 80)  # one walk straight to t=80, no cached prefix
    assert fresh.data == encoded[80].data
    first, second = c.decode(encoded[80].data), DiffC(SMOKE).decode(encoded[80].data)
    assert first.shape == img.shape and np.array_equal(first, second)


def test_rate_points_order_bits_and_steps(coded):
    for model, (c, img, encoded) in coded.items():
        sizes = [len(encoded[r].data) for r in (600, 250, 80)]
        steps = [encoded[r].info["diffc_coded_steps"] for r in (600, 250, 80)]
        assert sizes == sorted(sizes) and sizes[0] < sizes[-1], model
        assert steps == sorted(steps) and steps[0] < steps[-1]


def test_coded_size_is_within_the_stated_bound_of_the_kl(coded):
    """Bound: payload <= sum over chunks of (kappa + log2(kappa + 1) + 4) + 64 bits (PFR's index cost, after
    Li & El Gamal, with kappa = the chunk's share of ceil(KL); 64: rANS's final state), plus the header."""
    report = []
    for model, (c, img, encoded) in coded.items():
        for rate, enc in encoded.items():
            header, payload = bitstream.unpack(enc.data, "diffc", lambda h, w: None, lambda *a: 10 ** 9)
            chunks = codec_module.chunk_priors(header)
            bound = sum(k.kl_bits + math.log2(k.kl_bits + 1) + 4 for k in chunks) + 64
            kl = enc.info["diffc_kl_bits"]
            assert kl == pytest.approx(enc.estimated_bits)
            assert 8 * len(payload) <= bound
            assert 8 * len(payload) >= 0.9 * kl - 64  # coding cannot beat the KL by much (it is a sample)
            report.append((model, rate, kl, 8 * len(payload), 8 * (len(enc.data) - len(payload)), len(chunks)))
    for model, rate, kl, payload_bits, header_bits, n in report:
        print(f"{model} t={rate}: KL {kl:.0f} bits, payload {payload_bits} bits ({(payload_bits - kl) / n:+.2f} "
              f"bits/chunk over {n} chunks), header {header_bits} bits")


def test_damaged_and_truncated_streams_raise_bitstream_error(coded):
    c, img, encoded = coded["sd15"]
    data = encoded[250].data
    for n in list(range(len(data))) + [len(data) - 1]:
        with pytest.raises(BitstreamError):
            c.decode(data[:n]) if n else c.decode(b"\x00")
    rng = np.random.default_rng(1)
    for bit in rng.choice(8 * len(data), 40, replace=False):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            c.decode(bytes(bad))


def _forged(header: bitstream.Header, payload: bytes = b"\x00" * 8) -> bytes:
    return bitstream.pack(header, payload)  # a valid CRC: only the field checks can refuse it


@pytest.mark.parametrize("change, needle", [
    (dict(height=60000, width=60000), "too large"),
    (dict(model_id="random:ddpm"), "model"),
    (dict(model_id="sd99@x"), "unknown model"),
    (dict(step_bits=(10 ** 7,)), "outside"),
    (dict(timesteps=500, encode_steps=20), "T=500"),
])
def test_header_fields_are_checked_before_anything_is_allocated(coded, monkeypatch, change, needle):
    c, img, encoded = coded["sd15"]
    header, _ = bitstream.unpack(encoded[600].data, "diffc", lambda h, w: None, lambda *a: 10 ** 9)
    forged = _forged(bitstream.Header(**{**header.__dict__, **change}))
    fresh = DiffC(SMOKE)

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the header was checked")

    monkeypatch.setattr(models, "load", no_load)
    monkeypatch.setattr(torch, "empty", no_load)
    with pytest.raises(BitstreamError, match=needle):
        fresh.decode(forged)


def test_crc_and_magic():
    with pytest.raises(BitstreamError, match="magic"):
        DiffC(SMOKE).decode(b"XXXX" + bytes(20))
    header = bitstream.Header("random:sd15", 32, 32, 1000, 20, 8, 2, 0, (5,))
    data = bytearray(_forged(header))
    data[-1] ^= 1
    with pytest.raises(BitstreamError, match="CRC"):
        DiffC(SMOKE).decode(bytes(data))
    assert zlib.crc32(bytes(data[:-4])) != int.from_bytes(data[-4:], "little")


def test_options_and_rate_points_are_checked():
    with pytest.raises(CodecConfigError, match="recon timestep"):
        DiffC(SMOKE).validate_rate(5000)
    with pytest.raises(CodecConfigError, match="chunk_padding"):
        DiffC({**SMOKE, "chunk_padding": "8"})
    assert DiffC({"weights": "released"}).options["weights"] == "pretrained"
    assert DiffC(SMOKE).required_weights([80]) == []
    assert "diffc-sd15/unet/diffusion_pytorch_model.fp16.safetensors" in DiffC().required_weights([80])


def test_missing_pretrained_weights_are_a_clear_message(tmp_path, monkeypatch):
    from cdc_bench.errors import WeightsMissing

    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsMissing, match="weights=random"):
        DiffC({"model": "ddpm"}).encode(image(16, 16), 600)


def test_pretrained_files_placed_by_hand_are_loaded(tmp_path, monkeypatch):
    """The pretrained loader (config.json + a weights_only checkpoint) on files put where the message says; a
    small UNet stands in for the 36 M-parameter CIFAR-10 DDPM, which cannot be downloaded here."""
    import json as _json

    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    unet = models.random_model("ddpm").unet
    folder = models.manual_dir(models.DDPM)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(_json.dumps(dict(unet.config)))
    torch.save(unet.state_dict(), folder / "diffusion_pytorch_model.bin")
    c = DiffC({"model": "ddpm", "encode_steps": "10", "steps": "2", "chunk_bits": "8"})
    enc = c.encode(image(16, 16), 400)
    assert enc.info["diffc_model_id"] == models.DDPM.model_id
    out = DiffC({"model": "ddpm", "steps": "1"}).decode(enc.data)
    assert out.shape == (16, 16, 3)
    with pytest.raises(BitstreamError, match="random:ddpm"):
        DiffC({"model": "ddpm", "weights": "random"}).decode(enc.data)
