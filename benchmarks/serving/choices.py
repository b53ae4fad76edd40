"""Two design choices of `shipml serve`, measured: the ASGI server and the JSON library.

    python benchmarks/serving/choices.py [--rounds 2] [--duration 10] [--model-dir DIR]

The same shipml App (predict replaced by a no-op) under each ASGI server in turn, one worker,
loaded with wrk; then orjson, msgspec and json on the request path's JSON. See CHOICES.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BIN = ROOT / ".venv" / "bin"
SLOW_ROWS = 997  # a batch of this many rows or more makes predict sleep 1 s (SIGTERM test)
APP_MODULE = f"""\
import os, pathlib, time, numpy
from shipml.serve import app as shipml_app, model
_predict, calls = model.ServedModel.predict, [0, 0]  # predict calls, rows
def predict(self, batch):
    calls[0] += 1
    calls[1] += batch.rows
    if batch.rows >= {SLOW_ROWS}:  # only the SIGTERM test sends so many rows
        time.sleep(1.0)
    return _predict(self, batch) if os.environ.get("CHOICES_REAL") else numpy.zeros(batch.rows)
model.ServedModel.predict = predict
_shutdown = shipml_app.App.shutdown
async def shutdown(self):
    await _shutdown(self)
    pathlib.Path(os.environ["CHOICES_MARKER"]).write_text(f"{{calls[0]}} {{calls[1]}}")
shipml_app.App.shutdown = shutdown
spec = shipml_app.VariantSpec(
    "stable", os.environ["CHOICES_MODEL_DIR"], "credit", "1", trusted=True
)
app = shipml_app.App(shipml_app.ServerSpec(variants=[spec]))
"""
PIN: dict[str, list[str]] = {"server": [], "wrk": []}  # --pin: taskset prefixes, one core for each
HOST, BASELINE = "127.0.0.1", "uvicorn uvloop+httptools"
UVICORN = (  # the options of shipml.serve.server.run, then the loop and HTTP parser
    "uvicorn choices_app:app --host {host} --port {port} --lifespan on --no-access-log "
    "--log-level warning --timeout-graceful-shutdown 30 --backlog 2048 --loop {loop} --http {http}"
)
SERVERS = {  # name -> command line; each serves choices_app:app from the temporary folder
    BASELINE: UVICORN.replace("{loop}", "uvloop").replace("{http}", "httptools"),
    "uvicorn asyncio+h11": UVICORN.replace("{loop}", "asyncio").replace("{http}", "h11"),
    "granian asgi uvloop": "granian --interface asgi --host {host} --port {port} --workers 1 "
    "--loop uvloop --no-access-log --log-level warning choices_app:app",
    "hypercorn uvloop": "hypercorn -k uvloop -w 1 -b {host}:{port} --log-level warning "
    "--graceful-timeout 30 choices_app:app",
}


def train(tmp: Path) -> Path:
    project = tmp / "credit"
    shutil.copytree(ROOT / "examples" / "credit", project, ignore=shutil.ignore_patterns(".*"))
    print("training examples/credit in a temporary copy (shipml run)...", file=sys.stderr)
    cmd = [str(BIN / "shipml"), "run", "--json", "--project", str(project)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        sys.exit(f"shipml run failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return next((project / ".shipml/artifacts/models").glob("*/artifacts/MLmodel")).parent


def split_body(split: dict[str, Any], rows: slice) -> bytes:
    body = {"dataframe_split": {"columns": split["columns"], "data": split["data"][rows]}}
    return json.dumps(body).encode()


def post(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("not ready after 120 s")


def wrk(url: str, lines: Path, seconds: int) -> dict[str, Any]:
    cmd = [*PIN["wrk"], "wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    cmd += ["-s", str(HERE / "post.lua"), url, "--", str(lines)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    r = json.loads(next(x for x in out.splitlines() if x.startswith("WRK_JSON "))[9:])
    r["rps"] = r["requests"] * 1e6 / r["duration_us"]
    r["p50_ms"], r["p99_ms"] = r["p50_us"] / 1000, r["p99_us"] / 1000
    r["errors"] = r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def group_ticks(pgid: int) -> list[int]:
    """CPU clock ticks (user + system, all threads) of each live process of a process group."""
    ticks = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            ticks.append(int(fields[11]) + int(fields[12]))
    return ticks


def sigterm_test(proc: subprocess.Popen[bytes], url: str, slow: bytes, marker: Path) -> str:
    """SIGTERM to the main process with a 1 s request in flight: is it answered, does it exit?"""
    answer: list[Any] = []
    client = threading.Thread(target=lambda: answer.append(post(f"{url}/invocations", slow)))
    client.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    try:
        code: int | str = proc.wait(20)
    except subprocess.TimeoutExpired:
        code = "none: still running 20 s later"
    exit_s = time.monotonic() - t0
    client.join(35)
    deadline = time.monotonic() + 5
    while group_ticks(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = ", a worker outlived it by 5 s+" if group_ticks(proc.pid) else ""
    return (
        f"in-flight request {answer[0][0] if answer else 'unanswered'}; exit status {code} "
        f"after {exit_s:.1f} s; lifespan shutdown {'ran' if marker.exists() else 'NOT run'}{left}"
    )


def bench_server(name: str, tmp: Path, env: dict[str, str], seconds: int, body: bytes) -> dict:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = str(s.getsockname()[1])
    url, marker = f"http://{HOST}:{port}", tmp / "shutdown.marker"
    marker.unlink(missing_ok=True)
    cmd = SERVERS[name].format(host=HOST, port=port).split()
    if not (BIN / cmd[0]).exists():
        return {"skipped": f"not installed (.venv/bin/pip install {cmd[0]})"}
    cmd = [*PIN["server"], str(BIN / cmd[0]), *cmd[1:]]
    with (tmp / "server.log").open("ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        wait_ready(proc, url)
        status, answer = post(f"{url}/invocations", body)
        got = answer.get("predictions") if isinstance(answer, dict) else None
        real = env["CHOICES_REAL"] and isinstance(got, list) and len(got) == 1 and 0 < got[0] < 1
        if status != 200 or not (got == [0.0] or real):
            raise RuntimeError(f"wrong answer to one row: {status} {answer!r}")
        wrk(url, tmp / "single.jsonl", 2)  # warm-up, discarded
        ticks = sum(group_ticks(proc.pid))
        result = wrk(url, tmp / "single.jsonl", seconds)
        cpu_s = (sum(group_ticks(proc.pid)) - ticks) / os.sysconf("SC_CLK_TCK")
        result["cpu_ms"] = cpu_s * 1000 / max(result["requests"], 1)
        result["sigterm"] = sigterm_test(proc, url, (tmp / "slow.json").read_bytes(), marker)
        if marker.exists():  # predict calls and rows over the server's life, written at shutdown
            n, rows = map(int, marker.read_text().split())
            result["rows_per_call"] = (rows - SLOW_ROWS) / max(n - 1, 1)
        return result
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the whole group, workers included
            try:
                os.killpg(proc.pid, sig)
                proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


def per_call_us(stmt: Any) -> float:
    """Median over 15 timeit repeats of the time of one call, in microseconds."""
    number, _ = timeit.Timer(stmt).autorange()
    return statistics.median(timeit.repeat(stmt, number=number, repeat=15)) / number * 1e6


def json_table(one: bytes, hundred: bytes, model_dir: Path) -> list[str]:
    import numpy as np
    import orjson

    from shipml.serve.inputs import Policy, parse_invocations
    from shipml.serve.model import Source, load

    opt = orjson.OPT_SERIALIZE_NUMPY
    libs = {"orjson": (orjson.loads, lambda a: orjson.dumps({"predictions": a}, option=opt))}
    try:
        import msgspec

        decoder, encoder = msgspec.json.Decoder(), msgspec.json.Encoder()
        libs["msgspec"] = (decoder.decode, lambda a: encoder.encode({"predictions": a.tolist()}))
    except ImportError:
        print("msgspec is not installed: skipped", file=sys.stderr)
    libs["json"] = (json.loads, lambda a: json.dumps({"predictions": a.tolist()}).encode())
    rng, others = np.random.default_rng(0), [n for n in libs if n != "orjson"]
    cases = {"parse 1 row": one, "parse 100 rows": hundred, "dump 1": 1, "dump 100": 100}
    head = [*(f"{n} µs" for n in libs), *(f"{n}/orjson" for n in others)]
    lines = [f"| operation | {' | '.join(head)} |", "|---" * (len(head) + 1) + "|"]
    for case, arg in cases.items():
        if isinstance(arg, int):  # a response: {"predictions": float64 array of `arg` rows}
            a = rng.random(arg)
            us = {n: per_call_us(lambda d=d, a=a: d(a)) for n, (_, d) in libs.items()}
        else:
            us = {n: per_call_us(lambda p=p, b=arg: p(b)) for n, (p, _) in libs.items()}
        cells = [*(f"{us[n]:.2f}" for n in libs), *(f"{us[n] / us['orjson']:.2f}x" for n in others)]
        lines.append(f"| {case} | {' | '.join(cells)} |")
    schema, policy = load(Source.trusted_folder(model_dir)).schema, Policy()
    whole = [per_call_us(lambda b=b: parse_invocations(b, schema, policy)) for b in (one, hundred)]
    lines.append(
        f"\nFor scale, the whole of parse_invocations (orjson, checks, numpy columns): "
        f"{whole[0]:.1f} µs for 1 row, {whole[1]:.1f} µs for 100 rows."
    )
    return lines


def report(results: dict[str, list[dict[str, Any]]], args: Any, loads: list[str]) -> bool:
    print(
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average (1/5/15 min) {loads[0]} before, {loads[1]} after; "
        f"wrk -t2 -c16 -d{args.duration}s after 2 s of warm-up, {args.rounds} round(s)"
        f"{'; server pinned to CPU 1, wrk to CPU 0' if args.pin else ''}"
        f"{'; the real model (--real-model)' if args.real_model else '; predict a no-op'}\n"
    )
    head = "server | req/s each round | mean req/s | ratio | p50 ms | p99 ms | CPU ms/req "
    head += "| rows/predict | non-2xx"
    print(f"| {head} |\n" + "|---" * 9 + "|")
    base = [r["rps"] for r in results.get(BASELINE, []) if "rps" in r]
    ok = True
    for server, runs in results.items():
        good = [r for r in runs if "rps" in r]
        if not good:
            ok &= "skipped" in runs[0]
            print(f"| {server} | {runs[0].get('skipped') or 'FAILED: ' + runs[0]['error']} |")
            continue
        ok &= len(good) == len(runs) and not any(r["errors"] for r in good)
        rps = statistics.mean(r["rps"] for r in good)
        ratio = f"{rps / statistics.mean(base):.2f}x" if base else "n/a"
        cells = [", ".join(f"{r['rps']:.0f}" for r in good), f"{rps:.0f}", ratio]
        cells += [f"{statistics.mean(r[k] for r in good):.2f}" for k in ("p50_ms", "p99_ms")]
        cells += [f"{statistics.mean(r['cpu_ms'] for r in good):.3f}"]
        cells += [f"{statistics.mean(r.get('rows_per_call', float('nan')) for r in good):.2f}"]
        print(f"| {server} | {' | '.join(cells)} | {sum(r['errors'] for r in good)} |")
    print("\nSIGTERM to the main process with a 1 s request in flight (each round):")
    for server, runs in results.items():
        print(f"- {server}: " + " / ".join(str(r.get("sigterm", r.get("error"))) for r in runs))
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="load runs per server")
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--model-dir", type=Path, help="an MLflow model folder (skips training)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated names")
    parser.add_argument("--real-model", action="store_true", help="keep the model's predict")
    parser.add_argument("--pin", action="store_true", help="server on CPU 1, wrk on CPU 0")
    args = parser.parse_args()
    if args.pin:
        PIN.update(server=["taskset", "-c", "1"], wrk=["taskset", "-c", "0"])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in `finally`
    import pandas as pd

    load_before = "/".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="shipml-choices-") as name:
        tmp = Path(name)
        model_dir = args.model_dir or train(tmp)
        data = pd.read_csv(ROOT / "examples/credit/data/lending_club.csv.gz")
        data = data.drop(columns=["Class", "loan_id"])
        loans = data.sample(200, random_state=0).to_dict(orient="split")
        singles = [split_body(loans, slice(i, i + 1)) for i in range(200)]
        (tmp / "single.jsonl").write_bytes(b"\n".join(singles) + b"\n")
        many = data.sample(SLOW_ROWS, random_state=1).to_dict(orient="split")
        (tmp / "slow.json").write_bytes(split_body(many, slice(None)))
        (tmp / "choices_app.py").write_text(APP_MODULE)
        env = {**os.environ, "PYTHONPATH": str(tmp), "CHOICES_MODEL_DIR": str(model_dir)}
        env["CHOICES_MARKER"] = str(tmp / "shutdown.marker")
        env["CHOICES_REAL"] = "1" if args.real_model else ""
        print("timing JSON libraries...", file=sys.stderr)
        json_lines = json_table(singles[0], split_body(many, slice(100)), model_dir)
        results: dict[str, list[dict[str, Any]]] = {}
        for r in range(args.rounds):
            for server in args.servers.split(","):
                print(f"round {r + 1}: {server}...", file=sys.stderr)
                try:
                    result = bench_server(server, tmp, env, args.duration, singles[0])
                except (RuntimeError, OSError, subprocess.SubprocessError, StopIteration) as exc:
                    result = {"error": str(exc) or type(exc).__name__}
                results.setdefault(server, []).append(result)
    ok = report(results, args, [load_before, "/".join(f"{x:.2f}" for x in os.getloadavg())])
    print("\nJSON, per call (median of 15 timeit repeats):\n\n" + "\n".join(json_lines))
    sys.exit(0 if ok else "\n!! a server failed, or answered non-2xx or with socket errors")


if __name__ == "__main__":
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and (BIN / "python").exists():
        os.execv(BIN / "python", [str(BIN / "python"), *sys.argv])  # the project's venv
    main()
