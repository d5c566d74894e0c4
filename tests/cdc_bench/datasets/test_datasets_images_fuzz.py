"""Input-image fuzz: mutated PNG, JPEG and TIFF files through ``load_image``, in a subprocess under a memory limit.

Every outcome must be an image or an :class:`~cdc_bench.errors.ImageReadError` naming the file: never a crash, an
exception of another type, or an allocation past the limit (a header claiming a huge size is refused from the
header). Run by hand: ``python tests/cdc_bench/datasets/test_datasets_images_fuzz.py 500``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CASES = 300
MEMORY_LIMIT = 2 << 30   # 2 GiB of address space beyond what the interpreter and numpy already map


def _seed_files() -> dict[str, bytes]:
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    out = {}
    for fmt in ("PNG", "JPEG", "TIFF"):
        buf = io.BytesIO()
        image.save(buf, format=fmt)
        out[fmt.lower()] = buf.getvalue()
    return out


def _mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:       # flip bits, most often in the header where sizes live
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(min(len(data), 64) if rng.random() < 0.7 else len(data))
            data[pos] ^= 1 << rng.randrange(8)
    elif kind == 1:     # truncate
        del data[rng.randrange(1, len(data)):]
    elif kind == 2:     # overwrite a run with 0xff (sizes become huge)
        start = rng.randrange(min(len(data), 40))
        data[start:start + rng.randint(1, 4)] = b"\xff" * 4
    else:               # random bytes spliced in
        pos = rng.randrange(len(data))
        data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(data)


def worker(n: int, folder: Path) -> None:
    import resource

    from cdc_bench.datasets.images import load_image
    from cdc_bench.errors import CdcBenchError

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (used + MEMORY_LIMIT, hard))
    rng = random.Random(0)
    seeds = _seed_files()
    for i in range(n):
        fmt = rng.choice(sorted(seeds))
        path = folder / f"case{i}.{fmt}"
        path.write_bytes(_mutate(seeds[fmt], rng))
        print(f"case {i} {fmt}", flush=True)
        try:
            image, _ = load_image(path)
            outcome = f"image {image.shape[0]}x{image.shape[1]}"
        except CdcBenchError as err:
            outcome = "error" if str(path) in str(err) or path.name in str(err) else f"BAD unnamed: {err}"
        except Exception as err:  # noqa: BLE001 - what the test is there to catch
            outcome = f"BAD {type(err).__name__}: {err}"
        print(f"done {i} {outcome}", flush=True)


def test_mutated_images_end_in_an_image_or_an_error_naming_the_file(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, __file__, str(CASES), str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=REPO)
    lines = proc.stdout.splitlines()
    last = [line for line in lines if line.startswith("case ")][-1:] or ["before the first case"]
    assert proc.returncode == 0, f"worker ended with {proc.returncode} during {last[0]!r}\n{proc.stderr[-2000:]}"
    done = [line for line in lines if line.startswith("done ")]
    assert len(done) == CASES
    bad = [line for line in done if " BAD " in line]
    assert not bad, "\n".join(bad[:10])
    assert any(" error" in line for line in done) and any(" image " in line for line in done)


if __name__ == "__main__":
    worker(int(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else Path("."))
