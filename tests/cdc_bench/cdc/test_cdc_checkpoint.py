"""Checkpoint loading: which weights are picked, LPIPS keys dropped, architecture inferred from shapes or a
config beside the file, clear errors on bad files; released configs rebuild from the manifests' shapes."""
from __future__ import annotations

import json

import pytest
import torch

from cdc_bench.cdc.checkpoint import (CheckpointError, build_cdc, extract_state_dict, infer_config, load_cdc,
                                      load_state_dict_from_file)
from cdc_bench.cdc.model import RELEASED_CONFIGS, CDCConfig, CDCModel
from cdc_bench.cdc.schedules import training_buffers


@pytest.fixture(scope="module")
def fixtures(shared_dir):
    return shared_dir / "reference" / "cdc" / "fixtures"


@pytest.fixture(scope="module")
def x_ckpt(fixtures):
    return torch.load(fixtures / "xparam_ckpt.pt", map_location="cpu", weights_only=True)


def test_x_param_takes_ema_model_weights_never_online(fixtures, x_ckpt):
    state = load_state_dict_from_file(fixtures / "xparam_ckpt.pt")
    key = "denoise_fn.final_conv.1.weight"
    torch.testing.assert_close(state[key], x_ckpt["ema"]["ema_model." + key], rtol=0, atol=0)
    assert not torch.equal(state[key], x_ckpt["ema"]["online_model." + key])
    assert not torch.equal(state[key], x_ckpt["model"][key])
    assert not any(k.startswith(("online_model.", "ema_model.")) for k in state) and "initted" not in state


def test_loading_the_online_weights_would_be_visibly_wrong(fixtures, x_ckpt):
    exp = torch.load(fixtures / "xparam_expected.pt", weights_only=True)
    right = load_cdc(fixtures / "xparam_ckpt.pt")
    wrong = CDCModel(right.config)
    wrong.load_state_dict(x_ckpt["model"], strict=True)
    with torch.inference_mode():
        good, bad = right.compress(exp["x"]).context[0], wrong.eval().compress(exp["x"]).context[0]
    torch.testing.assert_close(good, exp["context_0"], rtol=1e-4, atol=1e-4)
    assert float((bad - exp["context_0"]).abs().max()) > 1e-2


def test_eps_param_takes_model(fixtures):
    raw = torch.load(fixtures / "epsparam_ckpt.pt", weights_only=True)
    state = load_state_dict_from_file(fixtures / "epsparam_ckpt.pt")
    assert state.keys() == raw["model"].keys()


@pytest.mark.parametrize("prefix", ["xparam", "epsparam"])
def test_infer_config_from_fixture_shapes(fixtures, prefix):
    expected = CDCConfig.from_dict(json.loads((fixtures / f"{prefix}_config.json").read_text()))
    assert infer_config(load_state_dict_from_file(fixtures / f"{prefix}_ckpt.pt")) == expected
    model = load_cdc(fixtures / f"{prefix}_ckpt.pt")  # no config given: inferred
    assert model.config == expected and not model.training
    assert not any(p.requires_grad for p in model.parameters())


def _manifest_state(shared_dir, variant):
    """A state dict with the released shapes (meta tensors) and real schedule buffers."""
    file = "manifest_xparam.json" if variant == "x" else "manifest_epsparam.json"
    manifest = json.loads((shared_dir / "reference" / "cdc" / file).read_text())
    entries = manifest["checkpoint_top_level"]["ema" if variant == "x" else "model"]
    prefix = "ema_model." if variant == "x" else ""
    state = {k[len(prefix):]: torch.empty(v["shape"], device="meta") for k, v in entries.items()
             if k.startswith(prefix)}
    cfg = RELEASED_CONFIGS[variant]
    state.update(training_buffers(cfg.beta_schedule, cfg.num_timesteps, variant == "x"))
    return state


@pytest.mark.parametrize("variant", ["x", "eps"])
def test_released_configs_inferred_from_manifest_shapes(shared_dir, variant):
    assert infer_config(_manifest_state(shared_dir, variant)) == RELEASED_CONFIGS[variant]


@pytest.mark.parametrize("variant", ["x", "eps"])
def test_lpips_keys_are_dropped(shared_dir, variant):
    file = "manifest_xparam.json" if variant == "x" else "manifest_epsparam.json"
    manifest = json.loads((shared_dir / "reference" / "cdc" / file).read_text())
    extra = manifest["extra_keys_lpips_0.9"]["ema" if variant == "x" else "model"]
    prefix = "ema_model." if variant == "x" else ""
    state = _manifest_state(shared_dir, variant)
    lpips = {k: torch.empty(v["shape"], device="meta") for k, v in extra.items() if k.startswith(prefix)}
    assert len(lpips) == 38
    raw = {"step": 1, "ema": {"ema_model." + k: v for k, v in {**state, **{k[len(prefix):]: v for k, v in
                                                                         lpips.items()}}.items()}} \
        if variant == "x" else {"step": 1, "model": {**state, **lpips}}
    cleaned = extract_state_dict(raw)
    assert cleaned.keys() == state.keys()
    with torch.device("meta"):
        CDCModel(RELEASED_CONFIGS[variant]).load_state_dict(cleaned, strict=True, assign=True)


def test_config_beside_the_file_wins(tmp_path, fixtures):
    raw = torch.load(fixtures / "epsparam_ckpt.pt", weights_only=True)
    path = tmp_path / "model.pt"
    torch.save(raw, path)
    wrong = CDCConfig.from_dict(json.loads((fixtures / "epsparam_config.json").read_text())).to_dict()
    wrong["dim"] = 16
    (tmp_path / "model.json").write_text(json.dumps(wrong))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_cdc(path)
    (tmp_path / "model.json").write_text(json.dumps({"dim": 8, "no_such_option": 1}))
    with pytest.raises(CheckpointError, match="no_such_option"):
        load_cdc(path)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_state_dict_from_file(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt.*weights_only"):
        load_state_dict_from_file(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match="not a CDC checkpoint"):
        load_state_dict_from_file(other)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"denoise_fn.x": torch.nn.Linear(1, 1)}}, path)  # a module, not just tensors
    with pytest.raises(CheckpointError, match="weights_only"):
        load_state_dict_from_file(path)


def test_build_cdc_is_seeded_and_leaves_global_rng_alone():
    cfg = CDCConfig(dim=8, context_channels=8, dim_mults=(1, 2), context_dim_mults=(1,), comp_dim=8,
                    comp_dim_mults=(1, 1, 1, 1), reverse_dim_mults=(1, 1, 1, 1), hyper_dims_mults=(1, 1, 1),
                    comp_out_channels=8, num_timesteps=100)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b, c = build_cdc(cfg, seed=1), build_cdc(cfg, seed=1), build_cdc(cfg, seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    key = "denoise_fn.final_conv.1.weight"
    assert torch.equal(a.state_dict()[key], b.state_dict()[key])
    assert not torch.equal(a.state_dict()[key], c.state_dict()[key])


def test_legacy_non_zip_files_load_too(tmp_path, fixtures, x_ckpt):
    """Zip files are memory-mapped; pre-1.6 (non-zip) files cannot be and take the plain path."""
    path = tmp_path / "legacy.pt"
    torch.save(x_ckpt, path, _use_new_zipfile_serialization=False)
    legacy, current = load_state_dict_from_file(path), load_state_dict_from_file(fixtures / "xparam_ckpt.pt")
    assert legacy.keys() == current.keys()
    assert all(torch.equal(legacy[k], current[k]) for k in current)


@pytest.mark.parametrize("variant", ["x", "eps"])
def test_config_round_trip_and_validation(variant):
    config = RELEASED_CONFIGS[variant]
    assert CDCConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="variant"):
        CDCConfig(variant="v")


@pytest.mark.parametrize("variant", ["x", "eps"])
def test_released_model_has_exactly_the_manifest_layout(shared_dir, variant):
    """Every key (buffers first, official order), shape and the parameter total of the released checkpoints."""
    file = "manifest_xparam.json" if variant == "x" else "manifest_epsparam.json"
    manifest = json.loads((shared_dir / "reference" / "cdc" / file).read_text())
    entries = manifest["checkpoint_top_level"]["ema" if variant == "x" else "model"]
    prefix = "ema_model." if variant == "x" else ""
    expected = {k[len(prefix):]: v["shape"] for k, v in entries.items() if k.startswith(prefix)}
    with torch.device("meta"):
        model = CDCModel(RELEASED_CONFIGS[variant])
    state = model.state_dict()
    assert list(state) == list(expected)
    assert {k: list(v.shape) for k, v in state.items()} == expected
    assert sum(p.numel() for p in model.parameters()) == manifest["param_counts"]["denoise_fn+context_fn"]
    assert (variant == "x") == ("train_snr" in state)
