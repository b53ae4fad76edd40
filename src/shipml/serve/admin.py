"""The admin API: load variants, set traffic weights, remove variants. Token required.

    GET    /admin/variants         what is loaded, with weights
    POST   /admin/variants         {"name", "model": "models:/NAME/VERSION", "weight", "shadow"}
    PUT    /admin/weights          {"weights": {"stable": 90, "canary": 10}}
    DELETE /admin/variants/{name}
    GET    /admin/identity         x-shipml-challenge: <random> -> {"proof": proof(token, it)}

`/admin/identity` needs no Authorization: whoever started the server asks it to prove that it
holds the token, without sending the token to whatever answers on the port (the local target
asks before it counts the server ready and before every token-bearing call; another process
on that port cannot answer it). The proof is an HMAC of the challenge under the token.

`Authorization: Bearer <token>`: 401 without it, 403 with a wrong one (compared in constant
time), 403 for every call when the server was started without a token. The token is never
logged or echoed. Every change builds a new routing table and swaps it in one assignment,
after any new model is loaded and warmed up, so no request fails during a swap.

A variant is a registered version of the served model, named by registry reference and
resolved in the server's configured registry; its files are verified against the
registration before anything of them is loaded (serve/model.py). Paths are refused with one
message whatever they name, so the API tells nothing about the server's filesystem.

Changes are refused (409) when the server runs several worker processes: each holds its own
routing table, and a change would reach only the worker that happened to receive it.
"""

from __future__ import annotations

import asyncio
import hmac
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from shipml.serve.inputs import InputError

if TYPE_CHECKING:
    from shipml.serve.app import App
    from shipml.serve.http import Receive, Scope, Send


class Admin:
    def __init__(self, app: App, token: str | None) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode() if token else None
        self._token = token or None
        self._lock = asyncio.Lock()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        from shipml.serve.http import error, headers_of, read_body, respond

        headers = headers_of(scope)
        given = headers.get(b"authorization")
        if scope["path"] == "/admin/identity" and self._token is not None:
            challenge = headers.get(b"x-shipml-challenge", b"")[:256].decode("latin-1")
            await respond(send, 200, orjson.dumps({"proof": proof(self._token, challenge)}))
            return
        if self._expected is None:
            await error(
                send,
                403,
                "admin_disabled",
                "the admin API is off: start the server with an admin token",
            )
            return
        if not given:
            await error(send, 401, "unauthorized", "send Authorization: Bearer <admin token>")
            return
        if not hmac.compare_digest(given, self._expected):
            await error(send, 403, "forbidden", "the admin token is wrong")
            return
        method, path = scope["method"], scope["path"]
        if method != "GET" and self.app.spec.workers > 1:
            await error(
                send,
                409,
                "several_workers",
                f"this server runs {self.app.spec.workers} worker processes, each with its own "
                f"variants; a change here would reach only one of them. Run variants with "
                f"serve.workers: 1 (one server per variant set)",
            )
            return
        body = await read_body(receive, headers, 1 << 20) if method in ("POST", "PUT") else b""
        async with self._lock:  # one change at a time; requests keep flowing meanwhile
            if method == "GET" and path == "/admin/variants":
                result: Any = self.describe()
            elif method == "POST" and path == "/admin/variants":
                result = await self._add(_json(body))
            elif method == "PUT" and path == "/admin/weights":
                result = self._weights(_json(body))
            elif method == "DELETE" and path.startswith("/admin/variants/"):
                result = self._remove(path.removeprefix("/admin/variants/"))
            else:
                await error(send, 404, "not_found", f"no admin route {method} {path}")
                return
        await respond(send, 200, orjson.dumps(result))

    def describe(self) -> dict[str, Any]:
        return {"variants": [v.describe() for v in self.app.routing.variants.values()]}

    async def _add(self, data: dict[str, Any]) -> dict[str, Any]:
        """Load a registered version of the served model from the configured registry.

        Only registry references are accepted, never paths: a path would let the caller run
        any folder's code, and an error about it would tell whether the path exists.
        """
        from shipml.serve.app import VariantSpec
        from shipml.serve.model import REF, resolve

        name, model = data.get("name"), data.get("model")
        if not isinstance(name, str) or not name or not isinstance(model, str):
            raise InputError(422, "invalid_variant", _ADD_HELP, "name")
        if REF.match(model) is None:
            raise InputError(
                422,
                "not_a_registry_reference",
                f"the admin API loads registered versions only; {_ADD_HELP}",
                "model",
            )
        weight, shadow = _number(data.get("weight", 0), "weight"), bool(data.get("shadow", False))
        spec = self.app.spec
        cache = Path(spec.model_cache or ".shipml/serve/models")
        served = self._served_name()
        try:
            source = await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: resolve(
                    model, tracking_uri=spec.tracking_uri, cache_dir=cache, model_name=served
                ),
            )
            assert source.record is not None
            await self.app.add_variant(
                VariantSpec(
                    name,
                    str(source.path),
                    source.name,
                    source.version,
                    weight,
                    shadow,
                    record=source.record.to_dict(),
                )
            )
        except Exception as exc:
            raise InputError(
                422, "model_not_loadable", f"cannot load {model!r}: {exc}", "model"
            ) from None
        return self.describe()

    def _served_name(self) -> str | None:
        return next((v.model.name for v in self.app.routing.variants.values()), None)

    def _weights(self, data: dict[str, Any]) -> dict[str, Any]:
        weights = data.get("weights")
        routing = self.app.routing
        if not isinstance(weights, dict) or not weights:
            raise InputError(
                422, "invalid_weights", 'send {"weights": {"stable": 90, "canary": 10}}', "weights"
            )
        for name, value in weights.items():
            variant = routing.variants.get(name)
            if variant is None or variant.shadow:
                raise InputError(
                    422,
                    "unknown_variant",
                    f"no serving variant {name!r}; loaded: {sorted(routing.variants)}",
                    name,
                )
            _number(value, name)
        if sum(float(w) for w in weights.values()) <= 0:
            raise InputError(
                422, "invalid_weights", "at least one weight must be positive", "weights"
            )
        self.app.routing = routing.with_weights({k: float(v) for k, v in weights.items()})
        self.app._publish_info()
        return self.describe()

    def _remove(self, name: str) -> dict[str, Any]:
        routing = self.app.routing
        variant = routing.variants.get(name)
        if variant is None:
            raise InputError(404, "unknown_variant", f"no variant {name!r}", name)
        remaining = routing.without(name)
        if not variant.shadow and remaining.pick(self.app.rng) is None:
            raise InputError(
                409,
                "last_variant",
                f"{name!r} serves all traffic; set weights elsewhere first",
                name,
            )
        self.app.routing = remaining
        self.app._publish_info()
        self.app._spawn(variant.batcher.close())  # its queued requests still get answers
        return self.describe()


def proof(token: str, challenge: str) -> str:
    """What only a holder of `token` can answer to `challenge` (GET /admin/identity)."""
    message = f"shipml-identity:{challenge}".encode()
    return hmac.new(token.encode(), message, "sha256").hexdigest()


_ADD_HELP = (
    'send {"name": "canary", "model": "models:/NAME/VERSION" (or models:/NAME@ALIAS, of the '
    'registry this server is configured with), "weight": 0}'
)


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InputError(400, "malformed_json", "the body is not valid JSON", None) from None
    if not isinstance(data, dict):
        raise InputError(422, "invalid_body", "send a JSON object", None)
    return data


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError(
            422, "invalid_weights", f"{field}: a weight is a number >= 0, got {value!r}", field
        )
    return float(value)
