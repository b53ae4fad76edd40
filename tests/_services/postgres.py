"""Throwaway PostgreSQL server for tests.

Fixtures (loaded via ``pytest_plugins`` in ``tests/conftest.py``):

``postgres_server`` (session)
    Starts one private PostgreSQL server on a free 127.0.0.1 port, with its data
    directory and unix socket in a temp dir. Always stopped and removed at the end.
``postgres_url`` (session)
    SQLAlchemy URL (``postgresql+psycopg://...``) of a database on that server that
    is shared by the whole session.
``fresh_postgres_url`` (function)
    SQLAlchemy URL of a new, empty database created for one test and dropped after it.

Binaries are looked up in ``$SHIPML_PG_BIN``, then ``PATH``, then
``/usr/lib/postgresql/*/bin`` (newest version first). If none are found the tests
are skipped -- unless ``SHIPML_REQUIRE_SERVICES=1`` (set by CI), then they fail.

When running as root (initdb refuses root) the server runs as the ``postgres`` OS
user (override with ``$SHIPML_PG_USER``), falling back to ``nobody``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "SHIPML_REQUIRE_SERVICES"
BIN_ENV = "SHIPML_PG_BIN"
USER_ENV = "SHIPML_PG_USER"
INSTALL_HINT = (
    "install PostgreSQL (Debian/Ubuntu: `apt-get install -y postgresql`) "
    f"or point ${BIN_ENV} at a directory containing initdb and postgres"
)
STARTUP_TIMEOUT = 60.0
_NEEDED = ("initdb", "postgres")
_FIXTURES = {"postgres_server", "postgres_url", "fresh_postgres_url"}


def _services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _unavailable(reason: str) -> None:
    """Skip, or fail when CI demands that services are available."""
    if _services_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so this is an error, not a skip)", pytrace=False)
    pytest.skip(reason)


def _has_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in _NEEDED)


def _version_key(directory: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", directory.parent.name)) or (0,)


def find_pg_bin() -> Path | None:
    """Directory holding initdb + postgres, or None."""
    override = os.environ.get(BIN_ENV)
    if override:
        directory = Path(override)
        if not _has_binaries(directory):
            pytest.fail(f"{BIN_ENV}={override} does not contain {' and '.join(_NEEDED)}")
        return directory
    on_path = shutil.which("initdb")
    if on_path:
        directory = Path(on_path).resolve().parent
        if _has_binaries(directory):
            return directory
    candidates = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if _has_binaries(d)]
    if candidates:
        return max(candidates, key=_version_key)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """OS user to run the server as (None: the current user)."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get(USER_ENV)
    for name in [wanted] if wanted else ["postgres", "nobody"]:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    pytest.fail(f"running as root, but OS user {wanted or 'postgres/nobody'} does not exist")
    raise AssertionError  # unreachable; pytest.fail raises


def _traversable_by_others(path: Path) -> bool:
    return all(part.stat().st_mode & stat.S_IXOTH for part in [path, *path.parents])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<no log: {exc}>"


def _die_with_parent() -> None:
    """In the child: get SIGQUIT (immediate shutdown) if pytest dies without teardown.

    Runs after the uid switch (which would otherwise clear the setting). Linux only.
    """
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGQUIT))


def _connect(**kwargs: Any) -> Any:
    import psycopg

    return psycopg.connect(autocommit=True, connect_timeout=5, **kwargs)


@dataclass
class PostgresServer:
    """A running throwaway server; ``superuser``/``password`` work over TCP."""

    bin_dir: Path
    base_dir: Path
    host: str
    port: int
    superuser: str
    password: str
    version: str = ""
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    def url(self, database: str) -> str:
        return (
            f"postgresql+psycopg://{self.superuser}:{self.password}"
            f"@{self.host}:{self.port}/{database}"
        )

    def admin_connect(self, dbname: str = "postgres") -> Any:
        return _connect(
            host=self.host,
            port=self.port,
            user=self.superuser,
            password=self.password,
            dbname=dbname,
        )

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex}"
        with self.admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_file, lines)

    # -- lifecycle ---------------------------------------------------------

    def _subprocess_kwargs(self) -> dict[str, Any]:
        user = _run_as()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",
            "LANG": "C",
            "TZ": "UTC",
        }
        if user is None:
            return {"env": {**env, "HOME": os.environ.get("HOME", str(self.base_dir))}}
        return {
            "env": {**env, "HOME": str(self.base_dir), "USER": user.pw_name},
            "user": user.pw_uid,
            "group": user.pw_gid,
            "extra_groups": [],
            "cwd": self.base_dir,
        }

    def init(self) -> None:
        user = _run_as()
        if user is not None:
            os.chown(self.base_dir, user.pw_uid, user.pw_gid)
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        pwfile.chmod(0o600)
        try:
            result = subprocess.run(
                [
                    str(self.bin_dir / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    self.superuser,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                **self._subprocess_kwargs(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            pytest.fail(
                f"initdb failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}",
                pytrace=False,
            )

    def start(self) -> None:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.base_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            "shared_buffers": "32MB",
            "logging_collector": "off",
        }
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                **self._subprocess_kwargs(),
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        import psycopg

        assert self._proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServerStartError(
                    f"postgres exited with code {self._proc.returncode} during startup"
                )
            try:
                with self.admin_connect() as conn:
                    row = conn.execute("SHOW server_version").fetchone()
                    self.version = str(row[0]) if row else ""
                return
            except psycopg.OperationalError as exc:
                last_error = exc
                time.sleep(0.05)
        raise ServerStartError(
            f"postgres not accepting connections after {STARTUP_TIMEOUT:.0f}s: {last_error}"
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # SIGINT = fast shutdown, SIGQUIT = immediate shutdown, then SIGKILL.
        for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


class ServerStartError(RuntimeError):
    pass


_DIR_PREFIX = "shipml-pg-"
_STALE_AFTER = 3600.0


def _remove_stale_dirs(parent: Path) -> None:
    """Remove dirs left by sessions killed without teardown (SIGTERM/SIGKILL).

    Only dirs older than an hour whose postmaster is not running are touched.
    """
    now = time.time()
    for old in parent.glob(f"{_DIR_PREFIX}*"):
        with contextlib.suppress(OSError, ValueError):
            if now - old.stat().st_mtime < _STALE_AFTER:
                continue
            pid_file = old / "data" / "postmaster.pid"
            if pid_file.exists():
                pid = int(pid_file.read_text().split("\n", 1)[0])
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 0)
                    continue  # still running
            shutil.rmtree(old, ignore_errors=True)


def _make_base_dir() -> Path:
    parent = Path(tempfile.gettempdir())
    if os.geteuid() == 0 and not _traversable_by_others(parent):
        parent = Path("/tmp")  # the server user must be able to reach its data dir
    _remove_stale_dirs(parent)
    return Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=parent))


@contextlib.contextmanager
def running_server(bin_dir: Path, attempts: int = 3) -> Iterator[PostgresServer]:
    """Start a server (retrying on a port race), yield it, always stop + remove it."""
    base_dir = _make_base_dir()
    server = PostgresServer(
        bin_dir=bin_dir,
        base_dir=base_dir,
        host="127.0.0.1",
        port=0,
        superuser="shipml",
        password=secrets.token_hex(16),
    )
    try:
        server.init()
        errors: list[str] = []
        started = False
        for attempt in range(1, attempts + 1):
            server.port = _free_port()
            try:
                server.start()
                started = True
                break
            except ServerStartError as exc:
                server.stop()
                errors.append(f"attempt {attempt} (port {server.port}): {exc}")
                if "already in use" not in server.log_tail():
                    break  # only a lost race for the port is worth a retry
        if not started:
            pytest.fail(
                "could not start PostgreSQL:\n"
                + "\n".join(errors)
                + f"\n--- tail of {server.log_file} ---\n{server.log_tail()}",
                pytrace=False,
            )
        yield server
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


# -- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        _unavailable(f"PostgreSQL binaries not found; {INSTALL_HINT}")
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed; `pip install -e '.[postgres]'`")
        return
    with running_server(bin_dir) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of one database shared by the whole test session."""
    return postgres_server.url(postgres_server.create_database("shipml_test"))


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a new, empty database for this test only (dropped afterwards)."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    try:
        postgres_server.drop_database(name)
    except Exception as exc:  # the server is thrown away anyway
        warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests using these fixtures get the ``postgres`` marker automatically."""
    for item in items:
        if _FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


__all__ = [
    "PostgresServer",
    "find_pg_bin",
    "fresh_postgres_url",
    "postgres_server",
    "postgres_url",
    "running_server",
]
