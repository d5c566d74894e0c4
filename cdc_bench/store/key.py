"""The identity of a result row: what names one row, and how such a name becomes a file name.

Every name that reaches a file path (a dataset, codec, image, option or rate text from a store, a manifest or the
command line) goes through :func:`safe_file_stem`, and every path built from one is checked with :func:`inside`:
a store whose dataset is called ``../x`` must not make a command write outside its output folder.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..errors import ConfigError

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def safe_file_stem(text: str) -> str:
    """An injective, path-free file-name part: ``text`` itself when it is safe (letters, digits, ``._+-``; not
    ``.``/``..`` nor starting with ``.``), else its sanitised form plus ``~`` and a hash of the exact text (``~``
    never occurs in a safe name, so ``x y``, ``x_y`` and ``x:y`` stay apart, and no result contains ``/``)."""
    text = str(text)
    safe = _UNSAFE.sub("_", text)
    if safe == text and text and not text.startswith("."):
        return text
    return f"{safe.lstrip('.') or '_'}~{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def inside(folder: str | Path, path: str | Path) -> Path:
    """``folder / path``, checked to stay inside ``folder`` once ``..`` is resolved (a
    :class:`~cdc_bench.errors.ConfigError` otherwise). The check is on the names, not on symbolic links: a link the
    user made inside the folder is theirs to follow."""
    base = os.path.abspath(folder)
    target = os.path.abspath(os.path.join(base, path))
    if os.path.commonpath([base, target]) != base:
        raise ConfigError(f"refusing to write {target}: it lies outside {base} (a name with '..' or '/' in it?)")
    return Path(folder) / os.path.relpath(target, base) if target != base else Path(folder)
