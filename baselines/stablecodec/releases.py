"""The files StableCodec needs, where they come from, and their licences.

* ``stablecodec_ft{2,3,4,6,8,12,16,24,32}.pkl`` (one per rate point: the stage-2 rate weight lambda; larger is a
  lower rate, ~0.035 bpp at 2 to ~0.005 bpp at 32 on Kodak) and ``elic_official.pth`` (the auxiliary encoder):
  the authors publish them only in a Google Drive folder (:data:`DRIVE_FOLDER`), with no per-file links and no
  checksums, so nothing here downloads them: put them by hand in ``<cdc-bench cache>/stablecodec/``
  (``cdc-bench weights`` lists the exact paths). Their sha256 is unknown to us (no Drive access from here) and
  is recorded once a user reports it. ``stablecodec_base.pkl`` (the stage-1 model) is for training only.
  Format: upstream's ``save_model`` writes ``{"state_dict_vae", "state_dict_unet", "state_dict_codec"}`` (dicts
  of tensors), and ELIC's file is a plain state dict; both load with ``torch.load(weights_only=True)`` (checked
  on files written the same way by the official code; the released bytes themselves were not available here).
  Code and weights: MIT (the repository's LICENSE).
* SD-Turbo (``stabilityai/sd-turbo``): through huggingface_hub, pinned to :data:`SD_TURBO_REVISION`, the
  fp32 UNet, VAE, CLIP text encoder, tokenizer and scheduler config (~5.2 GB). Licence: Stability AI's
  non-commercial research community licence (see the model card); accepting it is the user's business.
"""

from __future__ import annotations

import os
from pathlib import Path

from cdc_bench.download import cache_dir
from cdc_bench.errors import DownloadError
from cdc_bench.weights import WeightFile, register_weight

from .bitstream import LAMBDAS

DRIVE_FOLDER = "https://drive.google.com/drive/folders/1itiVVAPSTATGPcHLp_bLI9r9Qi3YcM12"
REPOSITORY = "https://github.com/LuizScarlet/StableCodec"
SD_TURBO_REPO = "stabilityai/sd-turbo"
#: pinned snapshot (taken from a third-party pin of sd-turbo; not re-checked here, the hub is unreachable)
SD_TURBO_REVISION = "b261bac6fd2cf515557d5d0707481eafa0485ec2"
SD_TURBO_FILES = ["unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                  "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
                  "text_encoder/model.safetensors", "tokenizer/*", "scheduler/scheduler_config.json"]
ANCHOR = "unet/diffusion_pytorch_model.safetensors"  # the file that stands for the snapshot in the registry
LICENSE_NOTE = ("StableCodec code and checkpoints: MIT (LuizScarlet/StableCodec LICENSE). SD-Turbo: Stability AI "
                "non-commercial research community licence (huggingface.co/stabilityai/sd-turbo); check its terms "
                "before use.")


def folder() -> Path:
    return cache_dir() / "stablecodec"


def checkpoint_name(lam: int) -> str:
    return f"stablecodec/ft{lam}"


ELIC_NAME = "stablecodec/elic"
SD_TURBO_NAME = "stablecodec/sd-turbo"


def _by_hand(weight: WeightFile) -> Path:
    raise DownloadError(f"{Path(weight.path).name} is published only in the authors' Google Drive folder "
                        f"{DRIVE_FOLDER} (no direct link); download it there and put it at {weight.path}")


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def _sd_turbo_cached() -> list[Path]:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(SD_TURBO_REPO, ANCHOR, revision=SD_TURBO_REVISION, cache_dir=_hub_cache())
    return [Path(found)] if isinstance(found, str) else []


def _sd_turbo_fetch(weight: WeightFile) -> Path:
    """The pinned SD-Turbo snapshot through huggingface_hub (honours HF_ENDPOINT / HF_HUB_OFFLINE)."""
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(SD_TURBO_REPO, revision=SD_TURBO_REVISION, allow_patterns=SD_TURBO_FILES,
                                  cache_dir=_hub_cache())
    except Exception as err:  # noqa: BLE001 - huggingface_hub raises many types offline
        first = str(err).splitlines()[0] if str(err) else ""
        raise DownloadError(f"huggingface_hub: {type(err).__name__}: {first}; or put a copy of the snapshot "
                            f"(folders unet, vae, text_encoder, tokenizer, scheduler) at {weight.path.parent.parent}"
                            ) from None
    return Path(local) / ANCHOR


def sd_turbo_folder(anchor: Path) -> Path:
    """The SD-Turbo folder (with unet/, vae/, ...) that holds the registry's anchor file."""
    return anchor.parent.parent


def register() -> None:
    for lam in LAMBDAS:
        register_weight(WeightFile(
            name=checkpoint_name(lam), url=DRIVE_FOLDER, path=lambda lam=lam: folder() / f"stablecodec_ft{lam}.pkl",
            sha256=None, used_by=["stablecodec"], fetch=_by_hand,
            note=f"StableCodec stage-2 model, lambda {lam}; from the authors' Google Drive folder (by hand); "
                 "sha256 not published. MIT."))
    register_weight(WeightFile(
        name=ELIC_NAME, url=DRIVE_FOLDER, path=lambda: folder() / "elic_official.pth", sha256=None,
        used_by=["stablecodec"], fetch=_by_hand,
        note="ELIC (auxiliary encoder) as StableCodec ships it; Google Drive folder (by hand); sha256 not published."))
    register_weight(WeightFile(
        name=SD_TURBO_NAME, url=f"https://huggingface.co/{SD_TURBO_REPO}/tree/{SD_TURBO_REVISION}",
        path=lambda: folder() / "sd-turbo" / ANCHOR, sha256=None, used_by=["stablecodec"],
        fetch=_sd_turbo_fetch, search=_sd_turbo_cached,
        note=f"SD-Turbo snapshot {SD_TURBO_REVISION[:12]} via huggingface_hub (~5.2 GB). " + LICENSE_NOTE))


register()
