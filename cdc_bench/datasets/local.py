"""Datasets that need no download: any folder of images, and the photographs shipped inside scikit-image."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..download import sha256_of
from .images import IMAGE_SUFFIXES
from .core import Dataset, DatasetError, DatasetStatus, image_files, image_name, warn_listing

# The colour photographs that scikit-image ships inside its wheel (skimage.data loads them without pooch, as
# its registry hash matches the bundled file). Left out: grey images, synthetic ones (color, phantom,
# chessboard), scientific imaging (retina, ihc, hubble_deep_field) and motorcycle_right (a stereo twin of
# motorcycle_left). sha256 values are those of scikit-image's data registry (skimage/data/_registry.py).
EMBEDDED = {
    "astronaut": ("astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    "chelsea": ("chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
    "coffee": ("coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
    "motorcycle_left": ("motorcycle_left.png", "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179"),
    "rocket": ("rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
}
EMBEDDED_SOURCE = "https://scikit-image.org/docs/stable/api/skimage.data.html"


def _skimage_data_dir() -> Path:
    try:
        return Path(str(resources.files("skimage.data")))
    except ModuleNotFoundError:
        raise DatasetError("default: scikit-image is not installed; `pip install scikit-image` "
                           "(the default images ship inside its wheel)") from None


class EmbeddedDataset(Dataset):
    """``default``: five colour photographs from scikit-image, so a bare `cdc-bench run` works offline."""

    name = "default"
    source_url = EMBEDDED_SOURCE

    def __init__(self) -> None:
        self.where = _skimage_data_dir()

    def status(self, verify: bool = False) -> DatasetStatus:
        missing, corrupted, present = [], [], 0
        for filename, sha in EMBEDDED.values():
            path = self.where / filename
            if not path.is_file():
                missing.append(filename)
                continue
            present += 1
            if verify and sha256_of(path) != sha:
                corrupted.append((filename, "sha256 mismatch"))
        return DatasetStatus(self.name, self.where, present, len(EMBEDDED), missing, corrupted, verified=verify)

    def how_to_fix(self, status: DatasetStatus) -> str:
        return ("Fix: reinstall scikit-image (`pip install --force-reinstall --no-deps scikit-image`); "
                "its wheel ships these files in skimage/data/")

    def _paths(self, status: DatasetStatus) -> list[Path]:
        return [self.where / filename for filename, _ in EMBEDDED.values()]


class FolderDataset(Dataset):
    """``folder:PATH``: every image file directly in PATH, sorted by name."""

    def __init__(self, path: str | Path):
        self.where = Path(path).expanduser().resolve()
        self.name = f"folder:{self.where}"
        self.source_url = ""

    def status(self, verify: bool = False) -> DatasetStatus:
        found = image_files(self.where)
        return DatasetStatus(self.name, self.where, len(found), None, note="" if found else "no image files")

    def how_to_fix(self, status: DatasetStatus) -> str:
        if not self.where.is_dir():
            return f"Fix: {self.where} is not a folder; give folder:PATH with an existing folder of images"
        return f"Fix: put image files ({', '.join(IMAGE_SUFFIXES)}) directly in {self.where} (subfolders are not read)"

    def _paths(self, status: DatasetStatus) -> list[Path]:
        paths = image_files(self.where)
        stems: dict[str, Path] = {}
        for path in paths:
            stem = image_name(path)
            if stem in stems:
                # Results are keyed by image name (file name without extension): two files cannot share one.
                raise DatasetError(f"{self.name}: {stems[stem].name} and {path.name} share the image name "
                                   f"{stem!r}; rename or move one of them")
            stems[stem] = path
        warn_listing(self.name, self.where, paths)
        return paths

