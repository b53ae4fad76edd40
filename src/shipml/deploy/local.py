"""The local target: one supervised `shipml serve` process, driven through its admin API.

Files under `.shipml/deploy/`: `server.json` (the supervisor's pid, port, URL, start time),
`desired.json` (what the supervisor starts: the stable model and the server's options; kept
current on every stable swap, so a restarted server serves what was promoted last),
`admin.token` (random, mode 0600, handed over in the environment, never on a command line or
in a log) and `server.log` (supervisor and server output).

Who answers on the port is proven, never assumed: another process may hold it (the pre-flight
check and the server's own claim of its port say so, naming the holder), or take it while our
server is down. The token is also the server's identity: before counting the server ready,
and before every call that carries the token, the target sends a random challenge to
`/admin/identity` and accepts only the HMAC answer that a holder of the token can give
(serve/admin.py). The token itself never goes to a process that has not proven it holds it,
and the supervisor's restarts keep it (they inherit its environment).

The supervisor (supervise.py) runs in its own session, so it outlives the command that
started it, restarts a server that dies, and on SIGTERM (`shipml down`) stops it gracefully:
in-flight requests finish and the inference log is flushed.

The server is given registry references (`models:/name/3`), never folders: the controller
resolves and verifies each version first (refusing a tampered one before any release is
recorded) and pre-downloads it into the serve cache; the server looks the version up in the
same registry and verifies the cached files again before it loads them.
"""

from __future__ import annotations

import hmac
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipml._ports import ensure_free, holder
from shipml._process import pid_alive
from shipml.config import Project
from shipml.deploy.target import STABLE, ModelRef, TargetStatus, VariantState
from shipml.errors import DeployError, PortError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LocalTarget"]

_TAIL = 30  # log lines shown when the server fails
_FIX = "stop that process, or set serve.port to another port (0 picks a free one)"
OURS, OTHER, NOBODY = "ours", "another process", "nothing"  # who answers on the port


@dataclass
class LocalTarget:
    project: Project
    kind: str = "local"

    @property
    def dir(self) -> Path:
        return self.project.deploy_dir

    @property
    def log_file(self) -> Path:
        return self.dir / "server.log"

    # ---- Target ------------------------------------------------------------------------

    def preflight(self) -> None:
        """Before a run does any work: the server it would start can have its port."""
        cfg = self.project.config.serve
        if cfg.port and not self._alive():
            ensure_free(cfg.host, cfg.port, fix=_FIX)

    def start(self, stable: ModelRef) -> None:
        if self._alive():
            self.load(STABLE, stable, shadow=False)
            self.set_weights({STABLE: 100.0})
            for v in self.status().variants:
                if v.name != STABLE:
                    self.remove(v.name)
            return
        self._spawn(stable)

    def load(self, variant: str, model: ModelRef, *, shadow: bool) -> None:
        current = self.status().variant(variant)
        if current and current.version == model.version and current.shadow == shadow:
            return
        weight = 100.0 if variant == STABLE else 0.0
        if current is not None and not shadow:
            weight = current.weight  # a replaced variant keeps its traffic
        self._admin(
            "POST",
            "/admin/variants",
            {
                "name": variant,
                "model": model.uri,
                "weight": weight,
                "shadow": shadow,
            },
        )
        if variant == STABLE:
            self._desire(model)

    def set_weights(self, weights: dict[str, float]) -> None:
        self._admin("PUT", "/admin/weights", {"weights": weights})

    def remove(self, variant: str) -> None:
        if self.status().variant(variant) is not None:
            self._admin("DELETE", f"/admin/variants/{variant}")

    def metrics(self) -> str:
        return self._get("/metrics").decode()

    def labelled(self, variant: str, since: float) -> pd.DataFrame:
        import pandas as pd

        from shipml.serve.inference_log import read_feedback, read_log

        logged = read_log(self.project.inference_log_dir, self.project.model_name)
        labels = read_feedback(self.project.inference_log_dir, self.project.model_name)
        start = pd.Timestamp(since, unit="s", tz="UTC")
        mine = logged[(logged["variant"] == variant) & (logged["timestamp"] >= start)]
        first_rows = mine[mine["row"] == 0][["request_id", "output"]]  # one label per request
        latest = labels.drop_duplicates("request_id", keep="last")[["request_id", "label"]]
        return first_rows.merge(latest, on="request_id")[["output", "label"]]

    def status(self) -> TargetStatus:
        record = self._record()
        if record is None:
            cfg = self.project.config.serve
            url = _url(cfg.host, cfg.port) if cfg.port else None
            return self._down("not started (no server.json)", url, {})
        facts = {"pid": record["pid"], "log": str(self.log_file), "since": record["started_at"]}
        if not pid_alive(record["pid"]):
            detail = f"our server is down (its supervisor, pid {record['pid']}, is gone)"
            return self._down(detail, record["url"], facts, keep_url=True)
        facts["answering"] = who = self._identify(record["url"])
        if who != OURS:
            return TargetStatus(True, False, record["url"], (), self._not_ours(who), facts)
        try:
            ready = self._status_code("/readyz") == 200
            data = json.loads(self._admin("GET", "/admin/variants"))
        except DeployError as exc:
            return TargetStatus(True, False, record["url"], detail=str(exc), facts=facts)
        variants = tuple(
            VariantState(
                v["name"],
                int(v["version"]) if str(v["version"]).isdigit() else None,
                float(v["weight"]),
                bool(v["shadow"]),
            )
            for v in data["variants"]
        )
        return TargetStatus(True, ready, record["url"], variants, "", facts)

    def _down(
        self, detail: str, url: str | None, facts: dict[str, object], *, keep_url: bool = False
    ) -> TargetStatus:
        """Our server is not running; say so, and whether another process answers instead."""
        if url is not None:
            facts["answering"] = who = self._identify(url)
            if who == OTHER:
                detail = f"{detail}; {self._not_ours(who, url)}"
        return TargetStatus(False, False, url if keep_url else None, detail=detail, facts=facts)

    def stop(self) -> None:
        record = self._record()
        if record is None:
            return
        pid = int(record["pid"])
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)  # the supervisor passes it on, once, to the server
            deadline = time.monotonic() + 40
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        (self.dir / "server.json").unlink(missing_ok=True)

    # ---- the process -------------------------------------------------------------------

    def _spawn(self, stable: ModelRef) -> None:
        cfg = self.project.config.serve
        if cfg.workers > 1:
            raise DeployError(
                f"the local target needs serve.workers: 1 (got {cfg.workers}): variants are "
                f"changed through the admin API, which one worker process cannot pass on"
            )
        port = cfg.port or _free_port(cfg.host)
        ensure_free(cfg.host, port, fix=_FIX)
        self.dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        token_file = self.dir / "admin.token"
        token_file.touch(mode=0o600)
        token_file.write_text(token)
        options = ["--project", str(self.project.root), "--host", cfg.host, "--port", str(port)]
        self._desire(stable, options)
        command = [sys.executable, "-m", "shipml.deploy.supervise", str(self.dir)]
        env = {**os.environ, cfg.admin_token_env: token, "PYTHONUNBUFFERED": "1"}
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.project.root,
                start_new_session=True,  # outlives this command; stopped by `shipml down`
            )
        record = {
            "pid": process.pid,
            "port": port,
            "url": _url(cfg.host, port),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (self.dir / "server.json").write_text(json.dumps(record))
        self._wait_ready(process)

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        """Until the server we started answers ready and proves it is ours."""
        cfg, url = self.project.config, self._url()
        deadline = time.monotonic() + cfg.deploy.ready_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                (self.dir / "server.json").unlink(missing_ok=True)
                ensure_free(cfg.serve.host, _port(url), fix=_FIX)  # taken since the check?
                raise DeployError(
                    f"the server exited with code {process.returncode} before it was ready; "
                    f"last lines of {self.log_file}:\n{self.log_tail()}"
                )
            try:
                if self._identify(url) == OURS and self._status_code("/readyz") == 200:
                    return
            except DeployError:
                pass
            time.sleep(0.1)
        who = self._identify(url)
        self.stop()
        if who == OTHER:
            raise PortError(self._not_ours(who, url))
        raise DeployError(
            f"the server was not ready within {cfg.deploy.ready_timeout_s:g} s "
            f"(deploy.ready_timeout_s); last lines of {self.log_file}:\n{self.log_tail()}"
        )

    def _desire(self, stable: ModelRef, options: list[str] | None = None) -> None:
        """Record what a (re)started server must serve; written atomically."""
        file = self.dir / "desired.json"
        if options is None:
            options = json.loads(file.read_text())["args"]
        desired = {
            "stable": {"model": stable.uri, "name": stable.name, "version": stable.version},
            "args": options,
        }
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(desired))
        tmp.replace(file)

    def log_tail(self, lines: int = _TAIL) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _alive(self) -> bool:
        record = self._record()
        return record is not None and pid_alive(record["pid"])

    def _record(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.dir / "server.json").read_text())
        except (OSError, ValueError):
            return None
        return data

    # ---- HTTP --------------------------------------------------------------------------

    def _url(self) -> str:
        record = self._record()
        if record is None:
            raise DeployError("no local server is running; start one with `shipml deploy`")
        return str(record["url"])

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        url = self._url()
        if (who := self._identify(url)) != OURS:  # the token goes only to our own server
            raise DeployError(self._not_ours(who, url))
        token = self._token() or ""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        return self._send(request, timeout=120)

    def _token(self) -> str | None:
        try:
            return (self.dir / "admin.token").read_text().strip() or None
        except OSError:
            return None

    def _identify(self, url: str) -> str:
        """Who answers on `url`: OURS (it proved it holds admin.token), OTHER or NOBODY."""
        from shipml.serve.admin import proof

        challenge = secrets.token_hex(16)
        request = urllib.request.Request(
            url + "/admin/identity", headers={"x-shipml-challenge": challenge}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                data = json.loads(response.read())
        except (urllib.error.HTTPError, http.client.HTTPException, ValueError):
            return OTHER  # an answer, but not our server's: an error, not HTTP, not JSON
        except OSError:  # refused, reset or timed out (URLError is an OSError)
            return NOBODY
        token, answer = self._token(), data.get("proof") if isinstance(data, dict) else None
        if not token or not isinstance(answer, str):
            return OTHER
        return OURS if hmac.compare_digest(answer, proof(token, challenge)) else OTHER

    def _not_ours(self, who: str, url: str | None = None) -> str:
        url = url or self._url()
        if who == NOBODY:
            return f"our server does not answer on {url} (starting, or stuck); see {self.log_file}"
        by = holder(_port(url))
        return (
            f"another process answers on {url}{f', held by {by}' if by else ''}: it is not the "
            f"server shipml started; {_FIX}"
        )

    def _get(self, path: str) -> bytes:
        return self._send(urllib.request.Request(self._url() + path), timeout=10)

    def _status_code(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self._url() + path, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError) as exc:
            raise DeployError(f"the local server does not answer: {exc}") from None

    def _send(self, request: urllib.request.Request, *, timeout: float) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise DeployError(
                f"the local server refused {request.get_method()} {request.selector}: "
                f"{exc.code} {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DeployError(
                f"the local server does not answer {request.get_method()} {request.selector}: "
                f"{exc}; see {self.log_file}"
            ) from None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _url(host: str, port: int) -> str:
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def curl_example(model_dir: Path, url: str) -> str:
    """A `curl` command that gets a prediction for the first row of the model's own input
    example (MLflow's serving_input_example.json), so it works as printed."""
    import shlex

    try:
        example = json.loads((model_dir / "serving_input_example.json").read_text())
        split = example["dataframe_split"]
        body = {"dataframe_split": {"columns": split["columns"], "data": split["data"][:1]}}
    except (OSError, ValueError, KeyError, TypeError):
        return f"curl -s {url}/v2/models  # (this model folder has no input example)"
    payload = json.dumps(body, separators=(",", ":"))
    return (
        f"curl -s {url}/invocations -H 'Content-Type: application/json' -d {shlex.quote(payload)}"
    )
