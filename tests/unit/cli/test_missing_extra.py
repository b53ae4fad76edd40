import pytest

import shipml.cli as cli


def test_a_missing_extra_is_named_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(**_: object) -> None:
        raise ModuleNotFoundError("No module named 'mlflow.tracking'", name="mlflow.tracking")

    monkeypatch.setattr(cli, "app", run)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    assert "pip install 'shipml[pipeline]'" in capsys.readouterr().err


def test_any_other_missing_module_is_a_real_bug_and_propagates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def run(**_: object) -> None:
        raise ModuleNotFoundError("No module named 'nonsense'", name="nonsense")

    monkeypatch.setattr(cli, "app", run)
    with pytest.raises(ModuleNotFoundError):
        cli.main()
