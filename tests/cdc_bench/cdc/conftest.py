"""Shared CDC test helpers: a tiny random-weights checkpoint (the fixtures' small architecture), made once."""
from __future__ import annotations

import pytest
import torch

from cdc_bench.cdc.checkpoint import build_cdc
from cdc_bench.cdc.model import CDCConfig

TINY = CDCConfig(dim=8, context_channels=8, dim_mults=(1, 1, 2, 2, 2, 3), context_dim_mults=(1, 1, 2, 2),
                 comp_dim=8, comp_dim_mults=(1, 1, 2, 2), reverse_dim_mults=(2, 2, 1, 1), hyper_dims_mults=(2, 2, 2),
                 comp_out_channels=8)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> str:
    """Path of a bare state dict of a tiny x-param CDC model with random weights (seed 3)."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    torch.save(build_cdc(TINY, seed=3).state_dict(), path)
    return str(path)
