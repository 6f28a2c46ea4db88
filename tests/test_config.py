"""Config loading: validation errors name the file and key path; overrides are validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainvit.config import apply_overrides, load_config, resolve_config_path
from domainvit.errors import ConfigError


def test_bundled_config_resolves_by_task_and_name():
    path = resolve_config_path("smoke/quickstart")
    assert path.name == "quickstart.yaml" and path.is_file()
    cfg = load_config("smoke/quickstart")
    assert cfg.task == "smoke" and cfg.model.name == "smoke_mlp"


def test_defaults_fill_missing_sections(smoke_config: Path):
    cfg = load_config(smoke_config)
    assert cfg.train.grad_accum == 1
    assert cfg.optim.betas == (0.9, 0.999)
    assert cfg.data.train_limit is None


def test_typo_names_file_and_key_path(smoke_config: Path):
    smoke_config.write_text(smoke_config.read_text() + "optim2: {}\n")
    with pytest.raises(ConfigError, match=r"smoke\.yaml: optim2: unknown key"):
        load_config(smoke_config)


def test_nested_typo_names_full_key_path(smoke_config: Path):
    with pytest.raises(ConfigError, match=r"train\.ema\.decey: unknown key"):
        load_config(smoke_config, ["train.ema.decey=0.5"])


def test_wrong_type_says_what_was_expected(smoke_config: Path):
    with pytest.raises(ConfigError, match=r"model\.hidden: .*integer.*'many'"):
        load_config(smoke_config, ["model.hidden=many"])


def test_out_of_range_value_is_rejected(smoke_config: Path):
    with pytest.raises(ConfigError, match=r"optim\.lr: .*greater than 0"):
        load_config(smoke_config, ["optim.lr=-1"])


def test_override_is_applied_and_typed(smoke_config: Path):
    cfg = load_config(smoke_config, ["train.epochs=7", "optim.name=sgd", "model.dropout=0.5"])
    assert cfg.train.epochs == 7 and cfg.optim.name == "sgd" and cfg.model.dropout == 0.5


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        apply_overrides({}, ["train.epochs"])


def test_override_into_a_value_is_an_error():
    with pytest.raises(ConfigError, match="train.epochs is a value, not a section"):
        apply_overrides({"train": {"epochs": 3}}, ["train.epochs.x=1"])


def test_unknown_task_lists_registered_ones(smoke_config: Path):
    with pytest.raises(ConfigError, match=r"task: unknown task 'nope' \(registered tasks: .*smoke"):
        load_config(smoke_config, ["task=nope"])


def test_unknown_model_name_is_reported(smoke_config: Path):
    with pytest.raises(ConfigError, match=r"model.name: .*smoke_mlp"):
        load_config(smoke_config, ["model.name=resnet"])


def test_missing_task_key(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\n")
    with pytest.raises(ConfigError, match="task: field required"):
        load_config(path)


def test_malformed_yaml_names_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: smoke\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML at line \d+"):
        load_config(path)


def test_top_level_must_be_a_mapping(tmp_path: Path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="config file 'nowhere.yaml' not found"):
        load_config("nowhere.yaml")
