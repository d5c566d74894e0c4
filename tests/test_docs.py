"""The docs cannot rot: the site builds with ``mkdocs build --strict``; every ``cdc-bench`` command line in a code
block of the docs or the README names a real sub-command and only options it has; blocks marked
``<!-- runnable -->`` are run (each ``$ `` line, in a temporary folder with an empty cache) and must succeed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"(<!-- runnable -->\s*\n)?```([a-z]*)\n(.*?)```", re.S)


def _blocks(language: str | None = None):
    for page in PAGES:
        for match in BLOCK.finditer(page.read_text()):
            if language is None or match.group(2) == language:
                yield page, bool(match.group(1)), match.group(3)


def _command_lines():
    for page, _, body in _blocks():
        for line in body.splitlines():
            line = line.strip().removeprefix("$ ").split("  #")[0].split(" # ")[0].strip()
            for part in re.split(r"\s*(?:&&|\|)\s*", line):
                if part.startswith("cdc-bench "):
                    yield page.name, part


def test_every_documented_command_and_option_exists():
    import click

    from cdc_bench.cli import main

    ctx = click.Context(main)
    checked = 0
    for page, line in _command_lines():
        words = line.replace("[", " ").replace("]", " ").replace("|", " ").split()
        sub = next((w for w in words[1:] if not w.startswith("-")), None)
        if sub is None or sub in ("...",):
            continue
        command = main.get_command(ctx, sub)
        assert command is not None, f"{page}: `{line}`: no sub-command {sub!r}"
        known = {opt for param in command.params
                 for opt in getattr(param, "opts", []) + getattr(param, "secondary_opts", [])}
        known |= {"--help", "-h"}
        for word in words:
            option = word.split("=")[0]
            if option.startswith("--") and option.strip("-.") and re.fullmatch(r"--[a-z][a-z0-9-]*", option):
                assert option in known, f"{page}: `{line}`: {sub} has no option {option}"
        checked += 1
    assert checked > 20  # the docs hold dozens of command lines; a broken extractor would check none


def test_runnable_blocks_succeed(tmp_path, monkeypatch):
    """``cdc-bench`` lines run in this process (click's runner: no interpreter start per line), others as programs."""
    from click.testing import CliRunner

    from cdc_bench.cli import main

    monkeypatch.setenv("CDC_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    ran = 0
    for page, runnable, body in _blocks("console"):
        if not runnable:
            continue
        for line in body.splitlines():
            if not line.startswith("$ "):
                continue
            argv = shlex.split(line[2:])
            if argv[0] == "cdc-bench":
                result = CliRunner().invoke(main, argv[1:], terminal_width=200)
                code, said = result.exit_code, result.output
            else:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
                code, said = done.returncode, done.stderr
            assert code == 0, f"{page.name}: `{line}` exited {code}: {said[-2000:]}"
            ran += 1
    assert ran >= 3


def test_runnable_python_blocks_succeed(tmp_path):
    env = dict(os.environ, CDC_BENCH_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    ran = 0
    for page, runnable, body in _blocks("python"):
        if runnable:
            done = subprocess.run([sys.executable, "-c", body], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == 0, f"{page.name}: python block failed: {done.stderr[-3000:]}"
            ran += 1
    assert ran >= 1


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("ssimulacra2") > 3


def test_the_adding_a_codec_example_is_the_shipped_adapter():
    """docs/codecs.md shows baselines/png_palette.py, which its own test runs: the two must not drift apart."""
    source = (ROOT / "baselines" / "png_palette.py").read_text()
    code = source[source.index("from typing import Any"):].strip()
    shown = [body.strip() for page, _, body in _blocks("python") if page.name == "codecs.md" and "PalettePNG" in body]
    assert shown == [code]
