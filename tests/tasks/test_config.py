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


@pytest.mark.parametrize(
    "value", ['["popularity", "ease"]', "popularity,ease", " popularity , ease "]
)
def test_env_lists_take_json_or_commas(value) -> None:
    cfg = load_config(environ={"RECPIPE__TRAIN__MODELS": value})
    assert cfg.train.models == ["popularity", "ease"]


def test_env_lists_of_ints_and_strings() -> None:
    env = {
        "RECPIPE__TRAIN__TWO_TOWER__HIDDEN_DIMS": "256,64",
        "RECPIPE__SCORE__DENY_ITEMS": '["a,b", "c"]',  # JSON when an item holds a comma
    }
    cfg = load_config(environ=env)
    assert cfg.train.two_tower.hidden_dims == [256, 64]
    assert cfg.score.deny_items == ["a,b", "c"]


def test_model_settings_come_from_the_environment_and_the_file(tmp_path) -> None:
    toml = tmp_path / "recpipe.toml"
    toml.write_text(
        "[train.ease_mult_dae.mult_dae]\nhidden_dim = 64\n[train.item_knn]\nneighbors = 7\n"
    )
    env = {
        "RECPIPE__TRAIN__MULT_DAE__EPOCHS": "3",
        "RECPIPE__TRAIN__TWO_TOWER__HIDDEN_DIMS": "64,32",
        "RECPIPE__TRAIN__EASE_MULT_DAE__WEIGHTS": "0.2, 0.8",
        "RECPIPE__TRAIN__EASE_MULT_DAE__MULT_DAE__EPOCHS": "5",
        "RECPIPE__TRAIN__RECVAE__MIXTURE_WEIGHTS": "[0.2, 0.7, 0.1]",
    }
    train = load_config(toml, environ=env).train
    assert train.mult_dae.epochs == 3 and train.mult_dae.hidden_dim == 200
    assert train.two_tower.hidden_dims == [64, 32]
    assert train.ease_mult_dae.weights == [0.2, 0.8]
    assert (train.ease_mult_dae.mult_dae.epochs, train.ease_mult_dae.mult_dae.hidden_dim) == (5, 64)
    assert train.ease_mult_dae.ease.l2 == 300.0  # the hybrid's own default
    assert train.recvae.mixture_weights == [0.2, 0.7, 0.1]
    assert train.item_knn.neighbors == 7


def test_bad_model_settings_name_the_source_and_the_accepted_keys() -> None:
    with pytest.raises(
        ConfigError,
        match=r"train.mult_dae.dropout: .*less than 1 .*got '1.5' from environment variable",
    ):
        load_config(environ={"RECPIPE__TRAIN__MULT_DAE__DROPOUT": "1.5"})
    with pytest.raises(
        ConfigError, match=r"unknown key 'train.mult_dae.hidden'; expected one of epochs, .*"
    ):
        load_config(environ={"RECPIPE__TRAIN__MULT_DAE__HIDDEN": "3"})
    with pytest.raises(ConfigError, match=r"train.sasrec.hidden: Extra inputs.*max_len"):
        load_config(overrides={"train": {"sasrec": {"hidden": 3}}}, environ={})
    with pytest.raises(ConfigError, match=r"3 positive weights .* RECPIPE__TRAIN__RECVAE"):
        load_config(environ={"RECPIPE__TRAIN__RECVAE__MIXTURE_WEIGHTS": "0.5,0.5"})
    with pytest.raises(ConfigError, match=r"JSON list .* RECPIPE__TRAIN__TWO_TOWER__HIDDEN_DIMS"):
        load_config(environ={"RECPIPE__TRAIN__TWO_TOWER__HIDDEN_DIMS": "[64,"})


def test_bad_env_list_names_the_variable() -> None:
    with pytest.raises(
        ConfigError, match=r"train.models.1: .*got 'bert' from environment variable"
    ):
        load_config(environ={"RECPIPE__TRAIN__MODELS": "popularity,bert"})
    with pytest.raises(ConfigError, match=r"JSON list .* RECPIPE__TRAIN__MODELS"):
        load_config(environ={"RECPIPE__TRAIN__MODELS": '["popularity",'})


def test_nested_env_vars_reach_deep_fields() -> None:
    env = {
        "RECPIPE__TRAIN__MULT_VAE__ANNEAL_CAP": "0.3",
        "RECPIPE__INGEST__MOVIELENS__VERIFY": "false",
        "RECPIPE__VALIDATE__MIN_ROWS": "5",  # the section whose field is aliased
        "RECPIPE__SCHEDULE": '{"cron": "30 1 * * *"}',  # a whole section as a JSON object
    }
    cfg = load_config(environ=env)
    assert cfg.train.mult_vae.anneal_cap == 0.3
    assert cfg.train.mult_vae.latent_dim == 200  # the rest of the section keeps its defaults
    assert cfg.ingest.movielens.verify is False
    assert cfg.validate_.min_rows == 5
    assert cfg.schedule.cron == "30 1 * * *" and cfg.schedule.timezone == "UTC"


def test_file_then_env_then_overrides(tmp_path) -> None:
    toml = tmp_path / "recpipe.toml"
    toml.write_text("[score]\nk = 5\nbatch_users = 64\nsimilar_k = 3\n[validate]\nmin_rows = 2\n")
    env = {"RECPIPE__SCORE__K": "7", "RECPIPE__SCORE__BATCH_USERS": "32"}
    cfg = load_config(toml, overrides={"score": {"k": 9}}, environ=env)
    assert (cfg.score.k, cfg.score.batch_users, cfg.score.similar_k) == (9, 32, 3)
    assert cfg.score.shard_rows == 1_000_000  # default
    assert cfg.validate_.min_rows == 2
    # the workspace: RECPIPE_WORKSPACE over the file, an override over both
    toml.write_text(f'workspace = "{tmp_path / "file"}"\n')
    env = {"RECPIPE_WORKSPACE": str(tmp_path / "env")}
    assert load_config(toml, environ=env).workspace == tmp_path / "env"
    cfg = load_config(toml, overrides={"workspace": str(tmp_path / "cli")}, environ=env)
    assert cfg.workspace == tmp_path / "cli"


def test_unknown_env_keys_are_rejected_by_name() -> None:
    with pytest.raises(
        ConfigError, match=r"RECPIPE__SCOOR__K: unknown key 'scoor'; expected one of"
    ):
        load_config(environ={"RECPIPE__SCOOR__K": "3"})
    with pytest.raises(ConfigError, match=r"RECPIPE__SCORE__KK: unknown key 'score.kk'.* k, "):
        load_config(environ={"RECPIPE__SCORE__KK": "3"})
    with pytest.raises(ConfigError, match=r"RECPIPE__SCORE__K__X: score.k is a setting"):
        load_config(environ={"RECPIPE__SCORE__K__X": "3"})
    with pytest.raises(
        ConfigError, match=r"RECPIPE__PUBLISH: publish is a section; expected a JSON"
    ):
        load_config(environ={"RECPIPE__PUBLISH": "postgresql://u:pw@db/recs"})
    other = {"RECPIPE_FAULT_AT": "x", "RECPIPE_TEST_POSTGRES_URL": "y", "PATH": "/bin"}
    assert load_config(environ=other).score.k == 10  # other variables are not config


def test_errors_name_the_source_and_hide_secrets(tmp_path) -> None:
    with pytest.raises(
        ConfigError, match=r"score.k: .*got '0' from environment variable RECPIPE__SCORE__K"
    ):
        load_config(environ={"RECPIPE__SCORE__K": "0"})
    toml = tmp_path / "recpipe.toml"
    toml.write_text('[score]\nk = "x"\n')
    with pytest.raises(ConfigError, match=rf"score.k: .*got 'x' from config file {toml}"):
        load_config(toml, environ={})
    with pytest.raises(ConfigError, match=r"score.k: .*got 0 from the CLI options"):
        load_config(toml, overrides={"score": {"k": 0}}, environ={"RECPIPE__SCORE__K": "x"})
    with pytest.raises(ConfigError) as caught:
        load_config(
            overrides={"publish": {"database_url": ["postgresql://u:hunter2@db/recs"]}},
            environ={},
        )
    assert "publish.database_url" in str(caught.value) and "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"databse_url: Extra inputs.*database_url") as caught:
        load_config(
            overrides={"publish": {"databse_url": "postgresql://u:hunter2@db/x"}}, environ={}
        )
    assert "hunter2" not in str(caught.value)


def test_given_environ_replaces_the_process_environment(monkeypatch) -> None:
    monkeypatch.setenv("RECPIPE__SCORE__K", "33")
    monkeypatch.setenv("RECPIPE__SCOOR__K", "1")  # would be an error if it were read
    monkeypatch.setenv("RECPIPE_WORKSPACE", "/nowhere")
    cfg = load_config(environ={})
    assert cfg.score.k == 10 and cfg.workspace.name == "recpipe-home"
    assert load_config(environ={"RECPIPE__SCORE__K": "4"}).score.k == 4
    monkeypatch.delenv("RECPIPE__SCOOR__K")
    assert load_config().score.k == 33  # environ=None reads the process environment


def test_built_or_validated_config_reads_no_environment(monkeypatch) -> None:
    """A config passed as a flow parameter (or pinned in a deployment) stays as it was."""
    from tasks.config import PipelineConfig

    monkeypatch.setenv("RECPIPE__SCORE__K", "33")
    assert PipelineConfig().score.k == 10
    cfg = load_config(overrides={"score": {"k": 4}}, environ={})
    again = PipelineConfig.model_validate(cfg.model_dump(mode="json"))
    assert again == cfg
