"""The server in process (httpx over ASGI): protocols, bad input, variants, admin, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from shipml.config import ServeConfig, load_project
from shipml.serve.app import App, ServerSpec, VariantSpec
from shipml.serve.model import Source, load
from tests.integration.serve.conftest import TOKEN, records

Client = httpx.AsyncClient


REGISTERED = "models:/credit/1"  # the same model, as registered (conftest)


def run(model_dir: Path, test: Callable[[App, Client], Awaitable[None]], **serve: Any) -> None:
    """The app serving `model_dir` (a trusted folder) as stable, version label "1"; its admin
    API loads from the credit project's registry."""
    project = load_project(model_dir.parents[4], env={})

    async def main() -> None:
        app = App(
            ServerSpec(
                variants=[VariantSpec("stable", str(model_dir), "credit", "1", trusted=True)],
                admin_token=TOKEN,
                serve=ServeConfig(**serve),
                tracking_uri=project.tracking_uri,
                model_cache=str(project.state_dir / "serve" / "models"),
            )
        )
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                await test(app, client)
        finally:
            await app.shutdown()

    asyncio.run(main())


def expected(model_dir: Path, frame: pd.DataFrame) -> np.ndarray:
    model = load(Source.trusted_folder(model_dir))
    return model.estimator.predict_proba(frame)[:, model.positive_index]


def split(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "dataframe_split": {
            "columns": list(frame.columns),
            "data": [list(r.values()) for r in records(frame)],
        }
    }


def v2(frame: pd.DataFrame) -> dict[str, Any]:
    types = {"int64": "INT64", "float64": "FP64"}
    return {
        "id": "req-1",
        "inputs": [
            {
                "name": c,
                "shape": [len(frame)],
                "datatype": types.get(str(frame[c].dtype), "BYTES"),
                "data": [r[c] for r in records(frame)],
            }
            for c in frame.columns
        ],
    }


def test_every_protocol_gives_the_in_process_probabilities(
    model_dir: Path, rows: pd.DataFrame
) -> None:
    frame = rows.head(5)
    want = expected(model_dir, frame)
    bodies = [
        split(frame),
        {"dataframe_records": records(frame)},
        {"instances": records(frame)},
        {"inputs": {c: [r[c] for r in records(frame)] for c in frame.columns}},
    ]

    async def test(app: App, client: Client) -> None:
        for body in bodies:
            r = await client.post("/invocations", json=body)
            assert r.status_code == 200, r.text
            assert np.allclose(r.json()["predictions"], want, rtol=0, atol=1e-12)
            assert r.headers["x-shipml-variant"] == "stable"
        r = await client.post("/v2/models/credit/infer", json=v2(frame))
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["id"] == "req-1" and out["model_name"] == "credit"
        assert np.allclose(out["outputs"][0]["data"], want, rtol=0, atol=1e-12)
        meta = (await client.get("/v2/models/credit")).json()
        assert [i["name"] for i in meta["inputs"]] == list(frame.columns)

    run(model_dir, test)


def test_infer_for_a_model_not_served_is_404(model_dir: Path, rows: pd.DataFrame) -> None:
    """Like the metadata route: a name (or a versioned path) this server does not serve is
    404, never an answer from the model that is served."""

    async def test(app: App, client: Client) -> None:
        for path in ("/v2/models/nope/infer", "/v2/models/credit/versions/7/infer"):
            r = await client.post(path, json=v2(rows.head(1)))
            assert r.status_code == 404, (path, r.text)
            assert r.json()["error"]["code"] == "model_not_found"
        assert (await client.post("/v2/models/credit/infer", json=v2(rows.head(1)))).is_success

    run(model_dir, test)


def test_health_readiness_and_openapi(model_dir: Path) -> None:
    async def test(app: App, client: Client) -> None:
        for path in (
            "/healthz",
            "/readyz",
            "/v2/health/live",
            "/v2/health/ready",
            "/v2/models/credit/ready",
        ):
            assert (await client.get(path)).status_code == 200, path
        doc = (await client.get("/openapi.json")).json()
        assert "/invocations" in doc["paths"] and "/v2/models/credit/infer" in doc["paths"]
        app.ready = False
        assert (await client.get("/readyz")).status_code == 503

    run(model_dir, test)


def bad_inputs(good: dict[str, Any]) -> list[tuple[str, bytes, dict[str, str], int, str]]:
    row = good["dataframe_records"][0]
    json = {"content-type": "application/json"}

    def body(records_: list[dict[str, Any]]) -> bytes:
        import json as stdjson  # orjson refuses integers beyond 64 bits; clients may not

        return stdjson.dumps({"dataframe_records": records_}).encode()

    return [
        ("malformed", b'{"dataframe_records": [', json, 400, "malformed_json"),
        (
            "nan literal",
            body([{**row, "int_rate": 0.5}]).replace(b"0.5", b"NaN"),
            json,
            400,
            "malformed_json",
        ),
        ("unknown format", b'{"rows": []}', json, 400, "unsupported_format"),
        (
            "missing column",
            body([{k: v for k, v in row.items() if k != "annual_inc"}]),
            json,
            422,
            "missing_column",
        ),
        ("extra column", body([{**row, "zodiac": "leo"}]), json, 422, "unexpected_column"),
        ("string in number", body([{**row, "int_rate": "12%"}]), json, 422, "wrong_type"),
        ("number in string", body([{**row, "term": 36}]), json, 422, "wrong_type"),
        ("bool in long", body([{**row, "funded_amnt": True}]), json, 422, "wrong_type"),
        (
            "infinity",
            body([{**row, "int_rate": 0.5}]).replace(b"0.5", b"1e400"),
            json,
            422,
            "non_finite",
        ),
        ("int overflow", body([{**row, "funded_amnt": 2**70}]), json, 422, "integer_out_of_range"),
        ("empty batch", body([]), json, 422, "empty_batch"),
        ("too many rows", body([row] * 50), json, 413, "too_many_rows"),
        (
            "wrong content type",
            body([row]),
            {"content-type": "text/csv"},
            415,
            "unsupported_media_type",
        ),
    ]


def test_bad_input_gets_4xx_with_a_stable_code(model_dir: Path, rows: pd.DataFrame) -> None:
    cases = bad_inputs({"dataframe_records": records(rows.head(1))})

    async def test(app: App, client: Client) -> None:
        for name, content, headers, status, code in cases:
            r = await client.post("/invocations", content=content, headers=headers)
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), (name, r.text)
        big = b"x" * (1024 * 64 + 1)
        r = await client.post(
            "/invocations", content=big, headers={"content-type": "application/json"}
        )
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        metrics = (await client.get("/metrics")).text
        assert "inference_errors_total{code" not in metrics
        assert 'reason="missing_column"' in metrics

    run(model_dir, test, max_rows=20, max_body_bytes=1024 * 64)


def test_shadow_never_changes_a_response(model_dir: Path, rows: pd.DataFrame) -> None:
    frame = rows.head(20)
    want = expected(model_dir, frame)

    async def test(app: App, client: Client) -> None:
        auth = {"authorization": f"Bearer {TOKEN}"}
        r = await client.post(
            "/admin/variants",
            json={"name": "shadow", "model": REGISTERED, "shadow": True},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        shadow = app.routing.variants["shadow"]
        object.__setattr__(shadow.model, "predict", lambda batch: np.full(batch.rows, 0.123))
        for _ in range(20):
            r = await client.post("/invocations", json=split(frame))
            assert r.headers["x-shipml-variant"] == "stable"
            assert np.allclose(r.json()["predictions"], want)
        await asyncio.sleep(0.2)
        metrics = (await client.get("/metrics")).text
        assert 'predictions_total{model="credit",variant="shadow",version="1"} 400.0' in metrics
        assert 'predictions_total{model="credit",variant="stable",version="1"} 400.0' in metrics
        assert 'predictions_total{model="credit",variant="stable",version="1"} 400.0' in metrics

    run(model_dir, test)


def test_admin_requires_the_token(model_dir: Path) -> None:
    async def test(app: App, client: Client) -> None:
        assert (await client.get("/admin/variants")).status_code == 401
        wrong = await client.get("/admin/variants", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 403 and TOKEN not in wrong.text
        ok = await client.get("/admin/variants", headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["variants"][0]["name"] == "stable"

    run(model_dir, test)


def test_admin_is_off_without_a_token(model_dir: Path) -> None:
    async def main() -> None:
        stable = VariantSpec("stable", str(model_dir), "credit", "1", trusted=True)
        app = App(ServerSpec(variants=[stable]))
        await app.startup()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            r = await c.get("/admin/variants", headers={"authorization": "Bearer anything"})
            assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"
        await app.shutdown()

    asyncio.run(main())


def test_weight_changes_under_load_fail_no_request(model_dir: Path, rows: pd.DataFrame) -> None:
    body = split(rows.head(1))

    async def test(app: App, client: Client) -> None:
        auth = {"authorization": f"Bearer {TOKEN}"}
        r = await client.post(
            "/admin/variants",
            json={"name": "canary", "model": REGISTERED, "weight": 0},
            headers=auth,
        )
        assert r.status_code == 200
        statuses: list[int] = []
        seen: set[str] = set()

        async def load() -> None:
            for _ in range(60):
                r = await client.post("/invocations", json=body)
                statuses.append(r.status_code)
                seen.add(r.headers.get("x-shipml-variant", "?"))

        async def flip() -> None:
            for weights in ({"stable": 50, "canary": 50}, {"canary": 100}, {"stable": 100}) * 3:
                r = await client.put("/admin/weights", json={"weights": weights}, headers=auth)
                assert r.status_code == 200, r.text
                # hold each table until some requests ran under it (batches take a while on
                # a busy machine), at most 5 s
                answered = len(statuses)
                for _ in range(500):
                    if len(statuses) >= min(answered + 8, 480):
                        break
                    await asyncio.sleep(0.01)

        await asyncio.gather(*[load() for _ in range(8)], flip())
        assert statuses and set(statuses) == {200}
        assert seen == {"stable", "canary"}

    run(model_dir, test)


def test_request_counter_counts_every_request(model_dir: Path, rows: pd.DataFrame) -> None:
    body = split(rows.head(3))

    async def test(app: App, client: Client) -> None:
        await asyncio.gather(*[client.post("/invocations", json=body) for _ in range(50)])
        text = (await client.get("/metrics")).text
        assert (
            'prediction_requests_total{code="200",model="credit",variant="stable",version="1"} 50.0'
            in text
        )
        assert 'predictions_total{model="credit",variant="stable",version="1"} 150.0' in text
        assert (
            'prediction_latency_seconds_count{model="credit",variant="stable",version="1"} 50.0'
            in text
        )

    run(model_dir, test)


def test_overload_sheds_with_retry_after(model_dir: Path, rows: pd.DataFrame) -> None:
    body = split(rows.head(8))

    async def test(app: App, client: Client) -> None:
        responses = await asyncio.gather(
            *[client.post("/invocations", json=body) for _ in range(40)]
        )
        codes = [r.status_code for r in responses]
        assert 200 in codes and 503 in codes, codes
        shed = next(r for r in responses if r.status_code == 503)
        assert shed.headers["retry-after"] == "1" and shed.json()["error"]["code"] == "overloaded"

    run(model_dir, test, max_queue_rows=16)


def test_slow_answers_time_out_with_504(model_dir: Path, rows: pd.DataFrame) -> None:
    import time

    async def test(app: App, client: Client) -> None:
        variant = app.routing.variants["stable"]
        slow = variant.model.predict
        object.__setattr__(variant.model, "predict", lambda b: (time.sleep(0.3), slow(b))[1])
        r = await client.post("/invocations", json=split(rows.head(1)))
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"

    run(model_dir, test, timeout_ms=50)


def test_a_stuck_model_turns_readiness_red_and_holds_only_its_variant(
    model_dir: Path, rows: pd.DataFrame
) -> None:
    """The canary's model call hangs (a fake: predict blocks on an event, as a deadlocked
    native library would). /readyz turns 503 naming the canary; the canary's requests get
    503 at once; stable's keep getting 200 while the call still hangs, also after the canary
    is removed (closing its batcher must not wait for the hung call on the event loop)."""
    import threading

    release = threading.Event()
    watchdog = threading.Timer(60, release.set)  # the test's bound if the server froze

    async def test(app: App, client: Client) -> None:
        auth = {"authorization": f"Bearer {TOKEN}"}
        canary = await app.add_variant(
            VariantSpec("canary", str(model_dir), "credit", "2", 100, trusted=True)
        )
        real = canary.model.predict
        object.__setattr__(canary.model, "predict", lambda b: (release.wait(), real(b))[1])
        body = split(rows.head(1))
        first = [asyncio.ensure_future(client.post("/invocations", json=body)) for _ in range(8)]
        ready = await client.get("/readyz")
        for _ in range(200):  # until the hung call counts as stuck (0.2 s), at most ~20 s
            if ready.status_code == 503:
                break
            await asyncio.sleep(0.1)
            ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert "'canary'" in ready.json()["reason"] and "stuck" in ready.json()["reason"]
        assert (await client.get("/v2/models/credit/ready")).status_code == 503
        answers = await asyncio.gather(*[client.post("/invocations", json=body) for _ in range(20)])
        by_variant: dict[str, set[int]] = {}
        for r in answers:
            name = r.headers.get("x-shipml-variant", "canary")  # errors carry no variant
            by_variant.setdefault(name, set()).add(r.status_code)
        assert by_variant.get("stable") == {200}, by_variant
        assert by_variant.get("canary") == {503}, by_variant
        removed = await client.delete("/admin/variants/canary", headers=auth)
        assert removed.status_code == 200
        for _ in range(30):  # old code froze here once the canary's queue had drained
            r = await client.post("/invocations", json=body)
            assert r.status_code == 200 and r.headers["x-shipml-variant"] == "stable"
            assert not release.is_set(), "stable waited for the canary's hung call"
            await asyncio.sleep(0.05)
        assert (await client.get("/readyz")).status_code == 200  # the stuck variant is gone
        release.set()
        await asyncio.gather(*first)

    watchdog.start()
    try:
        run(model_dir, test, stuck_call_s=0.2, timeout_ms=1000)
    finally:
        release.set()
        watchdog.cancel()


@pytest.mark.parametrize("missing", ["allow", "reject"])
def test_missing_value_policy(model_dir: Path, rows: pd.DataFrame, missing: str) -> None:
    row = {**records(rows.head(1))[0], "annual_inc": None}

    async def test(app: App, client: Client) -> None:
        r = await client.post("/invocations", json={"dataframe_records": [row]})
        if missing == "allow":
            assert r.status_code == 200 and 0 <= r.json()["predictions"][0] <= 1
        else:
            assert r.status_code == 422 and r.json()["error"]["field"] == "annual_inc"

    run(model_dir, test, missing_values=missing)


def test_a_client_that_goes_away_is_counted_apart_not_as_invalid_input(
    model_dir: Path, rows: pd.DataFrame
) -> None:
    from shipml.deploy.analysis import parse_metrics

    body = split(rows.head(1))

    async def gone() -> dict[str, Any]:  # what uvicorn hands over when the client hung up
        return {"type": "http.disconnect"}

    async def test(app: App, client: Client) -> None:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        for _ in range(10):
            assert (await client.post("/invocations", json=body)).status_code == 200
        for path in ("/invocations", "/feedback"):
            scope = {
                "type": "http",
                "method": "POST",
                "path": path,
                "headers": [(b"content-type", b"application/json")],
            }
            await app(scope, gone, send)
        assert sent == []  # nobody to answer
        text = (await client.get("/metrics")).text
        assert 'code="400"' not in text and "disconnected" not in text
        assert 'client_disconnects_total{model="credit",variant="stable",version="1"} 1.0' in text
        stable = parse_metrics(text)["stable"]
        assert (stable.total_requests, stable.invalid_rate, stable.error_rate) == (10, 0.0, 0.0)
        assert stable.disconnects == 1

    run(model_dir, test)
