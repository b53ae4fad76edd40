"""`shipml serve` as a real process: graceful shutdown, several workers, the OpenAPI contract."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from shipml.serve.inference_log import read_feedback, read_log
from tests.integration.serve.conftest import TOKEN, Served, records, start_server

pytestmark = pytest.mark.slow


def body(frame: pd.DataFrame) -> dict[str, object]:
    return {"dataframe_records": records(frame)}


def test_sigterm_during_a_burst_drops_nothing(served: Served, rows: pd.DataFrame) -> None:
    """SIGTERM mid-burst: every request the server received is answered and logged; the
    server then refuses new connections and exits."""
    payload = body(rows.head(2))

    async def burst() -> dict[str, int]:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=served.url, timeout=30, limits=limits) as client:

            async def post(i: int) -> int:
                try:
                    headers = {"x-request-id": f"burst-{i}"}
                    return (
                        await client.post("/invocations", json=payload, headers=headers)
                    ).status_code
                except httpx.TransportError:
                    return -1  # not accepted: the server had stopped taking connections

            tasks = [asyncio.create_task(post(i)) for i in range(300)]
            for _ in range(3000):  # until a part of the burst is answered (at most 30 s)
                if any(t.done() for t in tasks):
                    break
                await asyncio.sleep(0.01)
            served.process.send_signal(signal.SIGTERM)  # with the rest queued or in flight
            codes = await asyncio.gather(*tasks)
        return {f"burst-{i}": code for i, code in enumerate(codes)}

    codes = asyncio.run(burst())
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the exit status says why.
    assert served.process.wait(60) in (0, -signal.SIGTERM)
    answered = {rid for rid, code in codes.items() if code != -1}
    assert answered, "no request was answered before SIGTERM; the test proves nothing"
    assert {codes[rid] for rid in answered} == {200}, codes  # never a 5xx or a reset
    logged = set(read_log(served.project / ".shipml" / "inference", "credit")["request_id"])
    assert answered <= logged  # and every answer reached the inference log on disk


def test_feedback_joins_the_inference_log(served: Served, rows: pd.DataFrame) -> None:
    r = httpx.post(
        f"{served.url}/invocations", json=body(rows.head(1)), headers={"x-request-id": "loan-42"}
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "loan-42"
    fb = httpx.post(f"{served.url}/feedback", json={"request_id": "loan-42", "label": "bad"})
    assert fb.status_code == 202
    assert httpx.post(f"{served.url}/feedback", json={"label": "bad"}).status_code == 422
    assert served.stop() in (0, -signal.SIGTERM)
    directory = served.project / ".shipml" / "inference"
    joined = read_log(directory, "credit").merge(
        read_feedback(directory, "credit"), on="request_id"
    )
    assert list(joined["label"]) == ["bad"]


def test_request_counter_is_exact_across_workers(
    model_dir: Path, credit_project: Path, rows: pd.DataFrame
) -> None:
    server = start_server(model_dir, credit_project, "--workers", "2")
    payload = body(rows.head(1))
    try:

        async def send(n: int) -> set[int]:
            limits = httpx.Limits(max_keepalive_connections=0)  # new connection each: both workers
            async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as c:
                return {
                    r.status_code
                    for r in await asyncio.gather(
                        *[c.post("/invocations", json=payload) for _ in range(n)]
                    )
                }

        assert asyncio.run(send(120)) == {200}
        auth = {"authorization": f"Bearer {TOKEN}"}
        change = httpx.put(
            f"{server.url}/admin/weights", json={"weights": {"stable": 1}}, headers=auth
        )
        assert change.status_code == 409 and change.json()["error"]["code"] == "several_workers"
        text = httpx.get(f"{server.url}/metrics").text
        counts = re.findall(r'^prediction_requests_total\{code="200".*\} (\S+)$', text, flags=re.M)
        assert sum(float(c) for c in counts) == 120
    finally:
        assert server.stop() in (0, -signal.SIGTERM)


def test_the_admin_token_never_reaches_the_log(served: Served) -> None:
    for token in (TOKEN, "a-wrong-token-5678"):
        httpx.get(f"{served.url}/admin/variants", headers={"authorization": f"Bearer {token}"})
    httpx.post(
        f"{served.url}/invocations", content=b"{", headers={"content-type": "application/json"}
    )
    served.stop()
    output = served.process.stdout.read().decode() if served.process.stdout else ""
    assert "serving credit" in output  # the log was captured
    assert TOKEN not in output and "a-wrong-token-5678" not in output


def test_openapi_contract_has_no_server_error(served: Served, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    assert st.exists(), "schemathesis is a dev dependency"
    out = subprocess.run(
        [
            st,
            "run",
            f"{served.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "60",
            "--seed",
            "1",
            "--request-timeout",
            "20",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # schemathesis keeps a .schemathesis/ folder in its working directory
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
