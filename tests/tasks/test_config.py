import pytest

from tasks.config import load_config
from tasks.errors import ConfigError


def test_precedence_defaults_file_env_overrides(tmp_path) -> None:
    toml = tmp_path / "recpipe.toml"
    toml.write_text('workspace = "from-file"\n[score]\nk = 5\n[train.mult_dae]\nepochs = 3\n')
    env = {"RECPIPE__SCORE__K": "7", "RECPIPE__TRAIN__MODELS": "popularity"}
    cfg = load_config(toml, overrides={"train": {"mult_dae": {"epochs": 4}}}, environ=env)
    assert cfg.score.k == 7
    assert cfg.train.models == ["popularity"]
    assert cfg.train.mult_dae.epochs == 4
    assert cfg.workspace.name == "from-file" and cfg.workspace.is_absolute()
    assert cfg.evaluate.k == 10


def test_workspace_env_var(tmp_path) -> None:
    cfg = load_config(environ={"RECPIPE_WORKSPACE": str(tmp_path / "ws")})
    assert cfg.workspace == tmp_path / "ws"


def test_unknown_keys_and_bad_values_are_clear_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"score.kk: Extra inputs are not permitted"):
        load_config(overrides={"score": {"kk": 3}}, environ={})
    with pytest.raises(ConfigError, match=r"train.models.0: .*got 'bert'"):
        load_config(overrides={"train": {"models": ["bert"]}}, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", environ={})


def test_every_model_section_builds_its_model() -> None:
    from typing import get_args

    from models import MODEL_CLASSES, make_recommender
    from tasks.config import ModelName, TrainConfig
    from tasks.train import model_params

    assert set(get_args(ModelName)) == set(MODEL_CLASSES)
    config = TrainConfig()
    for name in MODEL_CLASSES:
        params = model_params(name, config)
        model = make_recommender(name, **params)
        assert {key: model.params[key] for key in params} == params
