from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from shipml.config import Config, load_project, parse_config
from shipml.errors import ConfigError


def write(tmp_path: Path, data: dict) -> Path:
    (tmp_path / "shipml.yaml").write_text(yaml.safe_dump(data))
    return tmp_path


def test_defaults_work_locally(tmp_path: Path) -> None:
    p = load_project(write(tmp_path, {"project": "demo"}), env={})
    assert p.state_url == f"sqlite:///{tmp_path.resolve()}/.shipml/state.db"
    assert p.tracking_uri == f"sqlite:///{tmp_path.resolve()}/.shipml/mlflow.db"
    assert p.snapshot_root == str(tmp_path.resolve() / ".shipml" / "data")
    assert p.model_name == p.dataset == "demo"


def test_unknown_key_names_path_and_nearest_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_project(write(tmp_path, {"project": "demo", "training": {"taget": "y"}}), env={})
    assert "training.taget" in str(err.value)
    assert "did you mean 'target'" in str(err.value)


def test_unknown_section_suggests_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'validation'"):
        load_project(write(tmp_path, {"project": "demo", "validaton": {}}), env={})


def test_bad_value_names_path_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_project(write(tmp_path, {"project": "demo", "training": {"test_size": 1.5}}), env={})
    assert "training.test_size" in str(err.value) and "1.5" in str(err.value)


def test_bad_entrypoint_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="module:function"):
        load_project(
            write(tmp_path, {"project": "demo", "training": {"entrypoint": "train"}}), env={}
        )


def test_env_overrides_nested_fields_with_yaml_types(tmp_path: Path) -> None:
    env = {
        "SHIPML_TRAINING__SEED": "7",
        "SHIPML_STATE__URL": "sqlite:///x.db",
        "SHIPML_ACTOR": "ci",
    }
    p = load_project(write(tmp_path, {"project": "demo"}), env=env)
    assert p.config.training.seed == 7
    assert p.state_url == "sqlite:///x.db"


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="shipml init"):
        load_project(tmp_path, env={})


def test_config_is_frozen() -> None:
    cfg = parse_config({"project": "demo"})
    with pytest.raises(Exception, match="frozen"):
        cfg.project = "other"  # type: ignore[misc]


@given(st.text(min_size=1, max_size=20).filter(lambda k: k not in Config.model_fields))
def test_any_unknown_top_level_key_is_rejected(key: str) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config({"project": "demo", key: 1})


def test_metric_names_and_bounds_are_checked_when_loading() -> None:
    with pytest.raises(ConfigError, match=r"evaluation\.thresholds\.auc.*'roc_auc'"):
        parse_config({"project": "d", "evaluation": {"thresholds": {"auc": {"min": 0.7}}}})
    with pytest.raises(ConfigError, match=r"evaluation\.champion\.metric"):
        parse_config({"project": "d", "evaluation": {"champion": {"metric": "gini"}}})
    with pytest.raises(ConfigError, match=r"min 0\.9 > max 0\.8"):
        parse_config(
            {"project": "d", "evaluation": {"thresholds": {"f1": {"min": 0.9, "max": 0.8}}}}
        )


def test_mlflow_tracking_uri_from_the_environment_is_honoured(tmp_path) -> None:
    """A CI job pointed at the team's server (MLFLOW_TRACKING_URI) registers there, not into
    a local SQLite file that is thrown away; shipml.yaml still wins when it names one."""
    from shipml.config import load_project

    (tmp_path / "shipml.yaml").write_text("project: loans\n")
    team = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    project = load_project(tmp_path, env=team)
    assert project.tracking_uri == "http://127.0.0.1:5000"
    assert project.tracking_uri_source == "MLFLOW_TRACKING_URI"
    local = load_project(tmp_path, env={})
    assert local.tracking_uri.startswith("sqlite:///") and "mlflow.db" in local.tracking_uri
    assert local.tracking_uri_source.startswith("default")
    (tmp_path / "shipml.yaml").write_text(
        "project: loans\ntraining: {tracking_uri: 'sqlite:///x.db'}\n"
    )
    pinned = load_project(tmp_path, env=team)
    assert pinned.tracking_uri == "sqlite:///x.db"
    assert pinned.tracking_uri_source == "training.tracking_uri"


def test_pointing_mlflow_at_a_project_leaves_the_users_variables_alone(tmp_path, monkeypatch):
    """MLflow writes MLFLOW_TRACKING_URI into the environment when its URI is set; if that
    stayed, the next project loaded here would take the first one's store for the user's."""
    import os

    from shipml._libs import mlflow_client
    from shipml.config import load_project

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "shipml.yaml").write_text(f"project: {name}\n")
    first = load_project(tmp_path / "a")
    mlflow_client(first.tracking_uri)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    second = load_project(tmp_path / "b")
    assert second.tracking_uri_source.startswith("default")
    assert str(tmp_path / "b") in second.tracking_uri
