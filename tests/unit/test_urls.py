"""Passwords never reach a screen or a record: URLs are shown with the password masked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shipml._urls import redact

SAFE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)


def test_the_password_is_masked_and_the_rest_kept() -> None:
    url = "postgresql+psycopg://bob:s3cret@127.0.0.1:5432/state?sslmode=disable"
    assert redact(url) == "postgresql+psycopg://bob:***@127.0.0.1:5432/state?sslmode=disable"
    assert redact("http://token@mlflow.internal:5000") == "http://token@mlflow.internal:5000"
    for plain in ("data/loans.csv", "sqlite:///.shipml/state.db", "http://h:5000/x"):
        assert redact(plain) == plain


@given(user=SAFE, password=SAFE, host=SAFE)
def test_no_password_survives(user: str, password: str, host: str) -> None:
    shown = redact(f"https://{user}:{password}@{host}.test/path")
    assert shown == f"https://{user}:***@{host}.test/path"
