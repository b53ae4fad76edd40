"""The throwaway PostgreSQL fixture works and gives independent databases."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text

pytestmark = pytest.mark.postgres


def test_server_is_postgresql_15(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    assert "@127.0.0.1:" in postgres_url
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("select version()")).scalar_one()
    finally:
        engine.dispose()
    assert version.startswith("PostgreSQL 15"), version


def test_fresh_databases_are_independent(fresh_postgres_url: str, postgres_url: str) -> None:
    assert fresh_postgres_url != postgres_url
    fresh = create_engine(fresh_postgres_url)
    shared = create_engine(postgres_url)
    try:
        with fresh.begin() as conn:
            conn.execute(text("create table only_here (id int primary key)"))
            conn.execute(text("insert into only_here values (1)"))
        assert "only_here" in inspect(fresh).get_table_names()
        assert "only_here" not in inspect(shared).get_table_names()
    finally:
        fresh.dispose()
        shared.dispose()


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_gets_an_empty_database(fresh_postgres_url: str, round_: int) -> None:
    engine = create_engine(fresh_postgres_url)
    try:
        # Would fail in round 2 if the database from round 1 were reused.
        assert inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(text("create table leftover (round int)"))
            conn.execute(text("insert into leftover values (:r)"), {"r": round_})
    finally:
        engine.dispose()
