"""Feature networks from the Hugging Face hub (DINOv2 for FD-DINOv2, CLIP for CMMD) as registered weight files.

Each model is two files of a hub repository, ``config.json`` and ``model.safetensors`` (safetensors: no
unpickling), declared in the weights registry so ``cdc-bench weights`` lists them and ``--download`` fetches
them through ``huggingface_hub`` into its cache. A user may instead put both files by hand in
``<cdc-bench cache>/models/<owner>--<name>/``; that folder is looked at first. Nothing is downloaded mid-sweep.

Pinning: the hub commit and the files' sha256 could not be read from this machine (no access to the hub), so
``revision`` is ``main`` and ``sha256`` is None (unverified, and said so in ``cdc-bench weights``) until someone
with access records them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..download import cache_dir
from ..errors import DownloadError, WeightsMissing
from ..weights import WeightFile, get_weight, register_weight

FILES = ("config.json", "model.safetensors")


@dataclass(frozen=True)
class HubModel:
    repo_id: str                      # e.g. "facebook/dinov2-large"
    revision: str                     # a commit hash once known; "main" until then
    sha256: dict[str, str | None]     # per file; None: not yet known (unverified)
    used_by: tuple[str, ...]
    note: str

    def folder(self) -> Path:
        """The manual folder, checked before the huggingface_hub cache."""
        return cache_dir() / "models" / self.repo_id.replace("/", "--")

    def weight_name(self, filename: str) -> str:
        return f"hf-{self.repo_id.replace('/', '--')}-{filename}"


def _hub_cached(model: HubModel, filename: str) -> list[Path]:
    from huggingface_hub import try_to_load_from_cache

    from ..download import hub_cache_dir

    cached = try_to_load_from_cache(model.repo_id, filename, revision=model.revision, cache_dir=hub_cache_dir())
    return [Path(cached)] if isinstance(cached, str) else []


def _fetch(model: HubModel, filename: str):
    def fetch(weight: WeightFile) -> Path:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        from ..download import hub_cache_dir, hub_endpoint as _endpoint, hub_unreachable

        reason = hub_unreachable(_endpoint())
        if reason is not None:
            raise DownloadError(f"{reason}; put {', '.join(FILES)} of {model.repo_id} by hand in {model.folder()}")
        try:
            return Path(hf_hub_download(model.repo_id, filename, revision=model.revision, endpoint=_endpoint(),
                                        cache_dir=hub_cache_dir()))
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
            raise DownloadError(f"huggingface_hub: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                                ) from None
    return fetch


def register_hub_model(model: HubModel) -> tuple[str, ...]:
    """Declare the model's files in the weights registry; returns their weight names (for MetricInfo.weights)."""
    names = []
    for filename in FILES:
        names.append(register_weight(WeightFile(
            model.weight_name(filename), f"https://huggingface.co/{model.repo_id}/resolve/{model.revision}/{filename}",
            lambda f=filename: model.folder() / f, model.sha256.get(filename), used_by=list(model.used_by),
            fetch=_fetch(model, filename), search=lambda f=filename: _hub_cached(model, f),
            note=model.note)).name)
    return tuple(names)


def model_files(model: HubModel) -> dict[str, Path]:
    """Local, checked paths of the model's files (never downloading); WeightsMissing names what to do."""
    found = {}
    for filename in FILES:
        weight = get_weight(model.weight_name(filename))
        resolved = weight.resolve()
        if resolved is None:
            raise WeightsMissing(weight.missing_message())
        found[filename] = resolved[0]
    return found


def load_pretrained(model: HubModel, model_class, device: str = "cpu"):
    """``model_class`` (a transformers class) built from the config and safetensors state, in eval mode.

    The two files may sit in different folders (manual folder, hub cache), so the model is built from the config
    and the state loaded with ``safetensors`` rather than through ``from_pretrained(folder)``.
    """
    from safetensors.torch import load_file

    files = model_files(model)
    config = model_class.config_class.from_json_file(str(files["config.json"]))
    network = model_class(config)
    state = load_file(str(files["model.safetensors"]))
    missing, unexpected = network.load_state_dict(state, strict=False)
    if missing:
        raise WeightsMissing(f"{files['model.safetensors']} is not a {model_class.__name__} of {model.repo_id}: "
                             f"{len(missing)} weights missing (e.g. {missing[0]})")
    return network.to(device).eval()
