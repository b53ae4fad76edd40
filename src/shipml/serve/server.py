"""Start the inference server: resolve and verify the model, build the spec, run uvicorn.

uvicorn with uvloop and httptools, access log off (one log line per request costs latency and
would write request data to logs). With `workers > 1` each worker process builds its own App
from the spec passed in `SHIPML_SERVE_SPEC`, and metrics switch to prometheus-client's
multiprocess mode in a private directory, so counts are summed across workers.

The HTTP protocol and the server are uvicorn's with two changes (connections.py): read
deadlines (`serve.header_timeout_s`, `serve.body_timeout_s`) cut slow clients, and SIGTERM
(or Ctrl-C) answers every request whose bytes had arrived: the server stops accepting, takes
in the connections already queued in the accept backlog, reads and answers each request
already received (closing the connection after it), closes idle connections, and then the
app's shutdown answers everything queued and flushes the inference log.

`run` serves on a socket the caller has already claimed (`shipml._ports.claim`): the port is
taken before the model loads and before anything is announced, so a busy port fails at once
with a message naming its holder, and nobody else can take the port while the model loads.
A server that cannot start (its model does not load) exits with 2, not uvicorn's 3.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
from pathlib import Path
from socket import socket
from typing import Any

from shipml.config import Project, ServeConfig
from shipml.errors import UsageError
from shipml.serve.app import App, ServerSpec, VariantSpec

SPEC_ENV = "SHIPML_SERVE_SPEC"


def build_spec(
    model: str,
    project: Project | None,
    *,
    with_log: bool = True,
    record_file: Path | None = None,
    trust_folder: bool = False,
) -> ServerSpec:
    """The spec for serving `model` as the `stable` variant.

    `model` is a registry reference (`models:/name/3`, `models:/name@alias`: resolved and
    verified), or a folder: verified against `record_file` (the registration record the build
    bakes into an image, so no registry is needed), or served as it is with `trust_folder`.
    A folder with neither is refused: nothing would vouch for the code it runs.
    """
    from shipml.serve.model import Source, preflight, resolve

    cfg = project.config.serve if project else ServeConfig()
    cache = (project.state_dir if project else Path(".shipml")) / "serve" / "models"
    if model.startswith("models:/"):
        source = resolve(
            model, tracking_uri=project.tracking_uri if project else None, cache_dir=cache
        )
    elif record_file is not None:
        from shipml.registry.manifest import Record

        source = Source.registered(Path(model), Record.load(record_file))
    elif trust_folder:
        source = Source.trusted_folder(Path(model))
    else:
        raise UsageError(
            f"{model} is a folder, not a registry reference: nothing vouches for its files, "
            f"and loading it would run its code. Serve a registered version "
            f"(models:/NAME/VERSION or models:/NAME@ALIAS), pass the registration record a "
            f"build wrote (--record model.record.json), or, for a folder you trust as it is, "
            f"pass --trust-folder"
        )
    preflight(source, allow_pickle=cfg.allow_pickle)  # refused here, before the server starts
    variant = VariantSpec(
        "stable",
        str(source.path),
        source.name,
        source.version,
        100.0,
        record=source.record.to_dict() if source.record else None,
        trusted=source.trusted,
    )
    return ServerSpec(
        variants=[variant],
        serve=cfg,
        log_dir=str(project.inference_log_dir)
        if project and with_log and cfg.log_sample_rate > 0
        else None,
        admin_token=os.environ.get(cfg.admin_token_env) or None,
        tracking_uri=project.tracking_uri if project else None,
        model_cache=str(cache),
    )


def app_from_env() -> App:
    """uvicorn's factory in each worker process."""
    data: dict[str, Any] = json.loads(os.environ[SPEC_ENV])
    data["variants"] = [VariantSpec(**v) for v in data["variants"]]
    data["serve"] = ServeConfig.model_validate(data["serve"])
    return App(ServerSpec(**data))


def run(spec: ServerSpec, *, sock: socket, workers: int = 1) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from shipml.serve.connections import Protocol, Server

    host, port = sock.getsockname()[:2]
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": functools.partial(
            Protocol,
            header_timeout_s=spec.serve.header_timeout_s,
            body_timeout_s=spec.serve.body_timeout_s,
        ),
        "lifespan": "on",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 30,
        "backlog": 2048,
    }
    spec = dataclasses.replace(spec, workers=workers)
    if workers == 1:
        server = Server(uvicorn.Config(App(spec), **options))
        try:
            server.run(sockets=[sock])  # what uvicorn.run does, on our socket
        except KeyboardInterrupt:  # Ctrl-C, after the shutdown
            pass
        except SystemExit as exc:  # uvicorn's "start-up failed" (3); the log says why
            raise SystemExit(2 if exc.code == 3 else exc.code) from None
        if not server.started:
            raise SystemExit(2)
        return
    # Each worker runs uvicorn's own Server: read deadlines hold there too, but a SIGTERM
    # resets connections still queued in the shared accept backlog (see docs/architecture.md).
    with tempfile.TemporaryDirectory(prefix="shipml-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        payload = {**dataclasses.asdict(spec), "serve": spec.serve.model_dump(mode="json")}
        os.environ[SPEC_ENV] = json.dumps(payload)
        config = uvicorn.Config(
            "shipml.serve.server:app_from_env", factory=True, workers=workers, **options
        )
        sock.set_inheritable(True)
        Multiprocess(config, sockets=[sock]).run()
