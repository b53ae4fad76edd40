from pathlib import Path

from shipml.config import Config
from shipml.config.reference import render, section_of

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_reference_matches_the_config_model() -> None:
    assert section_of(README) == render(), (
        "README.md's configuration reference is stale; "
        "run `shipml config reference --write README.md`"
    )


def test_every_section_appears_in_the_reference() -> None:
    text = render()
    for section in Config.model_fields:
        assert f"`{section}" in text
