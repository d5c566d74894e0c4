"""The released CDC checkpoints: one file per rate-Lagrangian b (λ), on Hugging Face `rhyang/CDC_params`.

Each λ is a rate point of the codec (larger λ = lower rate). Files are fetched with ``huggingface_hub`` into its
standard cache (``$HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``) on first use; ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` are honoured. A file placed by hand at ``<cdc-bench cache>/cdc/<folder>/<file>`` is used first,
which is what the offline error message tells users to do. Importing this module registers every release in
:mod:`cdc_bench.weights`, so ``cdc-bench weights`` lists them.

The sha256 of the released files is not known to us (the hub was unreachable when this was written), so they are
not checksum-verified; Hugging Face's own etag check still guards the download itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CodecError
from .. import download
from ..download import DownloadError, cache_dir, hub_cache_dir, hub_endpoint as _endpoint, hub_unreachable
from ..weights import WeightFile, get_weight, register_weight

REPO_ID = "rhyang/CDC_params"
REVISION = "main"
FOLDERS = {"x": "x_param", "eps": "epsilon_param"}  # the eps folder name as listed, not verified by a download


@dataclass(frozen=True)
class Release:
    variant: str  # "x" | "eps"
    lam: float
    filename: str

    @property
    def lpips(self) -> bool:
        """Trained with the LPIPS term (ρ = 0.9); its state dict then carries unused ``loss_fn_vgg.*`` keys."""
        return "lpips" in self.filename

    @property
    def hub_path(self) -> str:
        return f"{FOLDERS[self.variant]}/{self.filename}"

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{REPO_ID}/resolve/{REVISION}/{self.hub_path}"

    @property
    def weight_name(self) -> str:
        return f"cdc-{self.variant}-b{self.lam:g}"

    @property
    def model_id(self) -> str:
        """What the bitstream records: the decoder loads the same release from it."""
        return f"released:{self.variant}:{self.lam:g}"


def _x(lam: float, aux: str) -> Release:
    return Release("x", lam, f"image-l2-use_weight5-vimeo-d64-t8193-b{lam:g}-x-cosine-01-float32-{aux}_2.pt")


def _eps(lam: float, aux: str) -> Release:
    return Release("eps", lam, f"big-l1-vimeo-d64-t20000-b{lam:g}-vbrFalse-noise-linear-{aux}.pt")


RELEASES: dict[str, tuple[Release, ...]] = {
    "x": tuple([_x(b, "aux0.0") for b in (0.0032, 0.0064, 0.0128)]
               + [_x(b, "aux0.9lpips") for b in (0.0512, 0.1024, 0.2048)]),
    "eps": tuple([_eps(b, "aux-1.0_0_ckpt") for b in (0.0128, 0.0256, 0.0512)]
                 + [_eps(b, "aux0.9lpips_0") for b in (0.1024, 0.2048, 0.3072)]),
}


def lambdas(variant: str) -> tuple[float, ...]:
    return tuple(r.lam for r in RELEASES[variant])


def find_release(variant: str, lam: float) -> Release:
    """The release of ``variant`` trained with rate-Lagrangian ``lam``; CodecError listing the valid ones."""
    for release in RELEASES[variant]:
        if abs(release.lam - float(lam)) <= 1e-9 * max(1.0, abs(release.lam)):
            return release
    valid = ", ".join(f"{b:g}" for b in lambdas(variant))
    raise CodecError(f"no released CDC {variant}-param checkpoint for lambda {lam}; released lambdas: {valid} "
                     f"(or give a local file with -o checkpoint=PATH)")


def release_from_model_id(model_id: str) -> Release | None:
    """Inverse of :attr:`Release.model_id`; None for ids that are not releases."""
    parts = model_id.split(":")
    if len(parts) != 3 or parts[0] != "released" or parts[1] not in RELEASES:
        return None
    try:
        return find_release(parts[1], float(parts[2]))
    except (ValueError, CodecError):
        return None


def manual_path(release: Release) -> Path:
    """Where a user may put a file by hand (checked before the Hugging Face cache)."""
    return cache_dir() / "cdc" / FOLDERS[release.variant] / release.filename


def hub_cached(filename: str) -> list[Path]:
    """The file in the huggingface_hub cache, if it is there (a search place of every release's weight file)."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(REPO_ID, filename, revision=REVISION, cache_dir=hub_cache_dir())
    return [Path(cached)] if isinstance(cached, str) else []





def ways_on(release_path: Path | None = None) -> str:
    """The ways to run CDC without the hub, named in every offline error."""
    manual = str(release_path) if release_path else str(cache_dir() / "cdc" / "<folder>" / "<file>")
    return ("ways on: set HF_HUB_OFFLINE=1 to use only files already in the huggingface_hub cache; put the file "
            f"by hand at {manual}; use a local checkpoint with -o cdc.checkpoint=PATH; or run with "
            "-o cdc.weights=random (random weights of the released architecture, for speed work only)")


def _hub_fetch(weight: WeightFile) -> Path:
    """Download through huggingface_hub into its standard cache; DownloadError with the ways on when offline."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    endpoint = _endpoint()
    said = endpoint in download._unreachable
    reason = hub_unreachable(endpoint)
    if reason is not None:
        # WeightFile.ensure wraps this with the file and its manual path; the ways on are spelled out once.
        raise DownloadError(reason + ("" if said else "; " + ways_on(weight.path)))
    try:
        local = hf_hub_download(REPO_ID, _HUB_FILES[weight.name], revision=REVISION, endpoint=endpoint,
                                cache_dir=hub_cache_dir())
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise DownloadError(f"huggingface_hub: {type(err).__name__}: {first_line}") from None
    return Path(local)


_HUB_FILES: dict[str, str] = {}  # weight name -> its path in the hub repository


def register_releases() -> None:
    """Declare every release in the weights registry (idempotent; paths follow the current cache dir)."""
    for variant, releases in RELEASES.items():
        codec = "cdc" if variant == "x" else "cdc-eps"
        for release in releases:
            _HUB_FILES[release.weight_name] = release.hub_path
            register_weight(WeightFile(
                name=release.weight_name, url=release.url, path=lambda r=release: manual_path(r), sha256=None,
                used_by=[codec], fetch=_hub_fetch, search=lambda f=release.hub_path: hub_cached(f),
                note=f"CDC {variant}-param, lambda {release.lam:g}"
                     + (" (LPIPS-trained, rho 0.9)" if release.lpips else "")
                     + f"; fetched from Hugging Face {REPO_ID} into the huggingface_hub cache"))


def release_file(release: Release, allow_download: bool = True) -> Path:
    """Local path of a release's checkpoint, downloading it first if needed and allowed."""
    register_releases()  # refresh paths in case the cache dir changed since import
    return get_weight(release.weight_name).ensure(allow_download)


register_releases()
