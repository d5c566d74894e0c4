"""Check our StableCodec against tensors the official code produced (``tests/baselines/stablecodec/fixtures``).

The fixtures' generator ran the official repository on CPU with the tiny SD-Turbo of :mod:`tiny` and weights
from :func:`tiny.seeded_tensor` in the official checkpoint layout; ``meta.json`` says which commit, which
patches and which library versions. Here the same seeded checkpoints are written in that layout, read back
with ``torch.load(weights_only=True)`` and loaded into our networks; then the official bitstream is decoded and
the official image re-encoded. Quantised values and bytes must be identical; floating-point tensors within the
tolerances below (our code runs the same torch/diffusers/peft operations, so equality is usual).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

EXACT = 0.0
FLOAT_ATOL = 1e-4      # latents and embeddings (O(1) values)
IMAGE_LEVELS = 1       # decoded uint8 images: floor(255 x) may flip by one level at a rounding boundary


class VerifyError(RuntimeError):
    """The directory is not a fixtures directory; the message names the missing file."""


@dataclass(frozen=True)
class Check:
    name: str
    max_abs_diff: float
    tolerance: float
    ok: bool
    note: str = ""


def _compare(name: str, ours, ref, tol: float) -> Check:
    ours, ref = ours.detach().cpu().double(), ref.detach().cpu().double()
    if ours.shape != ref.shape:
        return Check(name, float("nan"), tol, False, f"shape {tuple(ours.shape)} != {tuple(ref.shape)}")
    diff = float((ours - ref).abs().max()) if ref.numel() else 0.0
    off = int(((ours - ref).abs() > tol).sum())
    differ = int((ours != ref).sum())
    note = f"{off} element(s) beyond tolerance" if off else (f"{differ} of {ref.numel()} differ" if differ else "")
    return Check(name, diff, tol, off == 0, note)


def _same_bytes(name: str, ours: bytes, ref: bytes) -> Check:
    ok = ours == ref
    differ = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), min(len(ours), len(ref)))
    return Check(name, 0.0 if ok else float("nan"), EXACT, ok,
                 "" if ok else f"{len(ours)} vs {len(ref)} bytes, first difference at byte {differ}")


def verify_dir(directory: str | Path, device: str = "cpu") -> list[Check]:
    """Every check of the fixtures in ``directory`` (``expected.pt``, ``meta.json``, ``layout.json``)."""
    import torch

    from .codec import StableCodecNet, load_file, random_checkpoints, to_network_input

    directory = Path(directory)
    for name in ("expected.pt", "meta.json", "layout.json"):
        if not (directory / name).is_file():
            raise VerifyError(f"{directory / name} is missing; expected a StableCodec fixtures directory")
    expected = torch.load(directory / "expected.pt", weights_only=True)
    meta = json.loads((directory / "meta.json").read_text())
    layout = json.loads((directory / "layout.json").read_text())
    elic, checkpoint = random_checkpoints()
    checks = []
    ours_layout = {part: {k: list(v.shape) for k, v in state.items()} for part, state in checkpoint.items()}
    ours_layout["elic"] = {k: list(v.shape) for k, v in elic.items()}
    for part in ("state_dict_vae", "state_dict_unet", "state_dict_codec"):
        same = ours_layout[part] == layout[part]
        checks.append(Check(f"checkpoint layout {part}", 0.0 if same else float("nan"), EXACT, same,
                            "" if same else f"{len(set(ours_layout[part]) ^ set(layout[part]))} keys differ"))
    g_a = {k: v for k, v in layout["elic"].items() if k.startswith("g_a.")}
    checks.append(Check("checkpoint layout elic g_a", 0.0, EXACT, ours_layout["elic"] == g_a))
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(checkpoint, Path(tmp) / "stablecodec_tiny.pkl")
        torch.save(elic, Path(tmp) / "elic_official.pth")
        checkpoint = load_file(Path(tmp) / "stablecodec_tiny.pkl")
        elic = load_file(Path(tmp) / "elic_official.pth")
    prompt = "A high-resolution, 8K, ultra-realistic image with sharp focus, vibrant colors, and natural lighting."
    net = StableCodecNet(elic, checkpoint, None, prompt, device)
    checks.append(_compare("prompt embedding", net.turbo.prompt_embedding, expected["prompt_embedding"], FLOAT_ATOL))
    image = expected["image"].numpy()
    h, w = image.shape[:2]
    with torch.no_grad():
        x, _ = to_network_input(image, device)
        latent = net.turbo.encode(x)
        checks.append(_compare("VAE latent", latent, expected["vae_latent"], FLOAT_ATOL))
        enc = net.latent_codec.compress(latent, net.aux_encoder((x + 1) / 2))
        checks.append(_same_bytes("y string (encoder)", enc["strings"][0][0], expected["y_string"]))
        checks.append(_same_bytes("z string (encoder)", enc["strings"][1][0], expected["z_string"]))
        z_shape = tuple(int(v) for v in expected["z_shape"])
        dec = net.latent_codec.decompress([[expected["y_string"]], [expected["z_string"]]], z_shape)
        checks.append(_compare("z_hat (decoded)", dec["z_hat"], expected["z_hat"], EXACT))
        checks.append(_compare("y_hat (decoded, after LRP)", dec["y_hat"], expected["y_hat"], FLOAT_ATOL))
        checks.append(_compare("residual", dec["residual"], expected["res"], FLOAT_ATOL))
        for name, (tile, overlap) in (("decoded", (meta["untiled"]["latent_tiled_size"],
                                                   meta["untiled"]["latent_tiled_overlap"])),
                                      ("decoded_tiled", (meta["tiled"]["latent_tiled_size"],
                                                         meta["tiled"]["latent_tiled_overlap"]))):
            out = net.turbo.decode(dec["unet_input"], dec["residual"], tile, overlap)
            rgb = out[0, :, :h, :w] * 0.5 + 0.5
            if name == "decoded":
                checks.append(_compare("decoded image (float, as fp16)", rgb.half(), expected["decoded_float"], 2e-3))
            uint8 = (rgb.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0)
            checks.append(_compare(f"{name} image (uint8)", uint8, expected[name], IMAGE_LEVELS))
    return checks
