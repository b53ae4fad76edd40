import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipml.state.releases import LockHeld, Releases
from shipml.state.store import StateStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def releases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Releases]:
    """On SQLite and on a real PostgreSQL server started by the tests."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_postgres_url")
    store = StateStore(url)
    yield Releases(store)
    store.close()


def new(r: Releases, version: int, status: str = "in_progress", previous: int | None = None):
    return r.create(
        model="credit",
        version=version,
        previous_version=previous,
        snapshot="sha256:abc",
        kind="deploy",
        strategy="canary",
        steps=["shadow", 5.0, 100.0],
        reason="test",
        status=status,  # type: ignore[arg-type]
    )


def test_release_round_trip_and_serving_is_the_newest_promoted(releases: Releases) -> None:
    assert releases.serving("credit") is None
    first = new(releases, 1, "promoted")
    assert first.finished_at is not None and first.steps == ["shadow", 5.0, 100.0]
    second = new(releases, 2, previous=1)
    assert releases.in_progress("credit") == second
    assert second.current_step == "shadow"
    second = releases.advance(second, 1)
    assert second.current_step == 5.0
    releases.add_analysis(second, {"status": "inconclusive"})
    second = releases.add_analysis(second, {"status": "pass"})
    assert [a["status"] for a in second.analyses] == ["inconclusive", "pass"]
    done = releases.finish(second, "promoted", "every step passed")
    assert releases.serving("credit") == done and releases.in_progress("credit") is None
    assert [r.id for r in releases.history("credit")] == [done.id, first.id]
    assert releases.history("other") == []


def test_a_held_lock_refuses_a_second_holder_and_names_the_first(releases: Releases) -> None:
    with releases.lock("deploy:credit") as held:
        with pytest.raises(LockHeld, match=r"deploy:credit is held by .*pid \d+") as refused:
            releases.acquire("deploy:credit")
        assert refused.value.lock.token == held.token
        assert "wait for it to finish" in str(refused.value)
        # the holder is alive (it is us): even a recovery command may not take it
        with pytest.raises(LockHeld):
            releases.acquire("deploy:credit", take_stale=True)
    assert releases.holder("deploy:credit") is None
    with releases.lock("deploy:credit"):
        pass


def test_only_one_of_many_racing_deploys_gets_the_lock(releases: Releases) -> None:
    won: list[str] = []
    refused: list[str] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        barrier.wait()
        try:
            won.append(releases.acquire("deploy:credit").token)
        except LockHeld:
            refused.append("x")

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 7


def test_a_dead_holders_lock_is_stale_and_only_recovery_takes_it(releases: Releases) -> None:
    # a real process takes the lock and dies without releasing it
    url = releases.store.url
    code = (
        "from shipml.state.releases import Releases; from shipml.state.store import StateStore;"
        f"Releases(StateStore({url!r})).acquire('deploy:credit')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    left = releases.holder("deploy:credit")
    assert left is not None and left.stale
    with pytest.raises(LockHeld, match="its process is gone: recover with `shipml rollback`"):
        releases.acquire("deploy:credit")
    taken = releases.acquire("deploy:credit", take_stale=True)
    assert taken.token != left.token and not taken.stale
