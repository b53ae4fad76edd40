"""`shipml serve` against `mlflow models serve`: the same model, load generator and bodies.

    python benchmarks/serving/run.py [--quick] [--duration 30] [--json]   (or: make bench-serving)

Trains examples/credit in a temporary copy, then starts each server in turn on a free loopback
port (one worker each), checks its answers against the model loaded in process, warms it up and
drives it with wrk (post.lua) with 1-row, then 100-row bodies of real loans. The in-process
limit is `predict_proba` on 1000 rows. Only ratios of the same run count. See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_BIN = ROOT / ".venv" / "bin"
BIN = VENV_BIN if VENV_BIN.is_dir() else Path(sys.executable).parent
WARMUP_S, THREADS, CONNECTIONS, READY_TIMEOUT_S = 5, 2, 16, 240
LIMIT_S = 10  # seconds of in-process predict_proba, half before and half after the run
WORKLOADS = {"single": 1, "batch": 100}  # rows per request
JSON = "application/json"


@dataclass(frozen=True)
class Setup:
    """The trained copy of the example, the request bodies and the model loaded in process."""

    tmp: Path
    project: Path
    uri: str
    env: dict[str, str]
    wrk: str
    model: Any
    positive: Any
    rows: Any  # the first 1600 loans of the 100-row bodies: one round of 16 connections


def ensure_wrk() -> str:
    if not shutil.which("wrk"):
        print("wrk is missing: installing the Debian package", file=sys.stderr)
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "wrk"]):
            subprocess.run([*sudo, *cmd], check=True, env=env, timeout=600, stdout=sys.stderr)
    return shutil.which("wrk") or sys.exit("wrk is still missing after apt-get install")


def train(project: Path) -> int:
    cmd = [str(BIN / "shipml"), "run", "--json", "--project", str(project)]
    # register only: the servers under test are started by this benchmark, one at a time
    env = {**os.environ, "SHIPML_BUILD__BUILDER": "none", "SHIPML_DEPLOY__IN_RUN": "never"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    if proc.returncode != 0:
        sys.exit(
            f"shipml run failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    steps = {s["stage"]: s for s in json.loads(proc.stdout)["steps"]}
    return int(steps["register"]["outputs"]["version"])


def write_bodies(rows: Any, per_request: int, path: Path) -> None:
    """One `dataframe_split` body per line, `per_request` consecutive rows each."""
    split = rows.to_dict(orient="split")  # native Python values, floats at full precision
    with path.open("w") as f:
        for i in range(0, len(split["data"]) - per_request + 1, per_request):
            data = split["data"][i : i + per_request]
            f.write(json.dumps({"dataframe_split": {"columns": split["columns"], "data": data}}))
            f.write("\n")


def in_process(model: Any, rows: Any, seconds: float) -> tuple[int, float]:
    """(rows predicted, seconds taken) by `predict_proba` on `rows`, called for `seconds`.

    `rows` is one full round of the 100-row load (16 connections x 100): the most the server
    can give one model call, so this is the same work without a server. Timed over seconds,
    not a few calls, because this machine switches between fast and slow spells (the same
    call took 21 ms and 35 ms within a minute), which wrk's runs average over too.
    """
    for _ in range(3):
        model.predict_proba(rows)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.predict_proba(rows)
        done += len(rows)
    return done, time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(cmd: list[str], ready: str, env: dict[str, str], log: Path) -> Iterator[float]:
    """Run `cmd` in its own process group until the block ends; yield its start-up seconds."""
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{Path(cmd[0]).name} exited with {proc.returncode}")
            if time.perf_counter() - t0 > READY_TIMEOUT_S:
                raise RuntimeError(
                    f"{Path(cmd[0]).name} not ready after {READY_TIMEOUT_S} s ({ready})"
                )
            try:
                with urllib.request.urlopen(ready, timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        yield time.perf_counter() - t0
    finally:
        stop(proc, Path(cmd[0]).name)


def stop(proc: subprocess.Popen[bytes], name: str) -> None:
    """SIGTERM to the whole process group (servers fork workers), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            print(f"!! {name} still running {wait} s after {sig.name}", file=sys.stderr)


def wrk(binary: str, url: str, bodies: Path, seconds: int, rows: int) -> dict[str, Any]:
    cmd = [binary, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s"]
    cmd += ["-s", str(HERE / "post.lua"), url, "--", str(bodies)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}) on {url}:\n{out.stdout}{out.stderr}")
    r = json.loads(line.removeprefix("WRK_JSON "))
    rps = r["requests"] / (r["duration_us"] / 1e6)
    socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return {
        "requests_per_s": round(rps, 1),
        "rows_per_s": round(rps * rows, 1),
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "requests": r["requests"],
        "non_2xx": r["non2xx"],
        "socket_errors": socket_errors,
    }


def check_answers(name: str, answer: Any, setup: Setup) -> None:
    """shipml returns the positive-class probability, mlflow the predicted label (predict)."""
    import numpy as np

    model, rows = setup.model, setup.rows.iloc[:100]  # the first 100-row body
    got = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(got, list) or len(got) != len(rows):
        raise RuntimeError(f"{name}: malformed answer for {len(rows)} rows: {str(answer)[:300]}")
    if name == "mlflow":
        expected = model.predict(rows).tolist()
        if got != expected:
            raise RuntimeError(f"mlflow: labels differ from in-process predict: {got[:5]}...")
        return
    index = list(model.classes_).index(setup.positive)
    diff = np.abs(np.asarray(got, dtype=float) - model.predict_proba(rows)[:, index]).max()
    if not diff <= 1e-9:
        raise RuntimeError(f"shipml: probabilities differ from in-process by up to {diff:.3g}")


def commands(name: str, uri: str, project: Path, port: int) -> tuple[list[str], str]:
    base = f"http://127.0.0.1:{port}"
    if name == "mlflow":
        cmd = [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local"]
        return [*cmd, "-h", "127.0.0.1", "-p", str(port), "-w", "1"], f"{base}/ping"
    cmd = [str(BIN / "shipml"), "serve", uri, "--project", str(project)]
    return [*cmd, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], f"{base}/readyz"


def ratios_and_goals(report: dict[str, Any]) -> None:
    s = report["servers"]
    if not all("workloads" in s.get(name, {}) for name in ("mlflow", "shipml")):
        return
    ship, base = s["shipml"]["workloads"], s["mlflow"]["workloads"]
    single = ship["single"]["requests_per_s"] / base["single"]["requests_per_s"]
    p99 = ship["single"]["p99_ms"] / base["single"]["p99_ms"]
    batch = ship["batch"]["rows_per_s"] / base["batch"]["rows_per_s"]
    limit = ship["batch"]["rows_per_s"] / s["shipml"]["in_process"]["rows_per_s"]
    report["ratios"] = {
        "single_throughput": round(single, 2),
        "single_p99": round(p99, 4),
        "batch_rows_per_s": round(batch, 2),
        "batch_of_in_process": round(limit, 3),
    }
    ok = {True: "PASS", False: "FAIL"}
    floor = "PASS" if single >= 20 else "FLOOR" if single >= 10 else "FAIL"
    report["goals"] = {  # in the order of the ratios they judge
        "single-row req/s >= 20x mlflow (10x floor)": floor,
        "single-row p99 <= 1/10 of mlflow's": ok[p99 <= 0.1],
        "100-row rows/s >= 5x mlflow's": ok[batch >= 5],
        "100-row rows/s >= 50% of in-process": ok[limit >= 0.5],
    }


def render(report: dict[str, Any]) -> None:
    row = "{:<8}{:>9}{:>9}{:>10}{:>9}{:>9}  {}".format
    print(row("server", "rows/req", "req/s", "rows/s", "p50 ms", "p99 ms", "errors"))
    for name, result in report["servers"].items():
        if "error" in result:
            print(f"{name:<8} FAILED: {result['error'].splitlines()[0]}")
            continue
        for workload, r in result["workloads"].items():
            errors = r["non_2xx"] + r["socket_errors"]
            rates = f"{r['requests_per_s']:.1f}", f"{r['rows_per_s']:.0f}"
            p50, p99 = f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}"
            flag = f"{errors}  <-- FAILED" if errors else "0"
            print(row(name, WORKLOADS[workload], *rates, p50, p99, flag))
        print(f"{'':<8}(answered /ping or /readyz {result['startup_s']:.1f} s after start)")
    for name, result in report["servers"].items():
        if "in_process" in result:
            r = result["in_process"]
            around = " and ".join(f"{x:,.0f}" for x in r["around"])
            print(f"\nin process, predict_proba on {len_round()}-row DataFrames, {LIMIT_S:g} s")
            print(f"before and after {name}'s 100-row run: {r['rows_per_s']:,.0f} rows/s")
            print(f"(each half: {around} rows/s)")
    goals, ratios = report.get("goals", {}), report.get("ratios", {}).values()
    for (goal, verdict), value in zip(goals.items(), ratios, strict=True):
        print(f"  {verdict:<5} {goal}: {value:g}x")


def prepare(tmp: Path, wrk_binary: str) -> Setup:
    """Train the example in a copy, write the bodies, load the model in process."""
    import mlflow
    import pandas as pd
    import yaml

    project = tmp / "credit"
    ignore = shutil.ignore_patterns(".shipml", "__pycache__")
    shutil.copytree(ROOT / "examples" / "credit", project, ignore=ignore)
    print("training examples/credit (shipml run)...", file=sys.stderr)
    uri = f"models:/credit/{train(project)}"
    tracking = f"sqlite:///{project / '.shipml' / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    columns = mlflow.models.get_model_info(uri).signature.inputs.input_names()
    config = yaml.safe_load((project / "shipml.yaml").read_text())
    data = pd.read_csv(project / config["data"]["source"])[columns]
    write_bodies(data.sample(200, random_state=0), 1, tmp / "single.jsonl")
    batches = data.sample(2000, random_state=1)
    write_bodies(batches, 100, tmp / "batch.jsonl")
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PATH": f"{BIN}:{os.environ['PATH']}"}
    model = mlflow.sklearn.load_model(uri)
    positive = config["training"]["positive_label"]
    return Setup(tmp, project, uri, env, wrk_binary, model, positive, batches.iloc[: len_round()])


def len_round() -> int:
    """Rows in flight when every connection has a 100-row request out."""
    return CONNECTIONS * WORKLOADS["batch"]


def bench(name: str, setup: Setup, seconds: int, *, limit: bool) -> dict[str, Any]:
    """Start `name`, check an answer, run both workloads; with `limit`, time the in-process
    limit half before and half after the 100-row run."""
    port = free_port()
    cmd, ready = commands(name, setup.uri, setup.project, port)
    url = f"http://127.0.0.1:{port}"
    with server(cmd, ready, setup.env, setup.tmp / f"{name}.log") as startup:
        body = (setup.tmp / "batch.jsonl").read_text().splitlines()[0].encode()  # setup.rows[:100]
        request = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": JSON})
        with urllib.request.urlopen(request, timeout=30) as response:
            check_answers(name, json.loads(response.read()), setup)
        result: dict[str, Any] = {"startup_s": round(startup, 1), "workloads": {}}
        for workload, rows in WORKLOADS.items():
            bodies = setup.tmp / f"{workload}.jsonl"
            wrk(setup.wrk, url, bodies, WARMUP_S, rows)
            if workload == "batch" and limit:  # measured next to the run it bounds
                before = in_process(setup.model, setup.rows, LIMIT_S / 2)
            result["workloads"][workload] = wrk(setup.wrk, url, bodies, seconds, rows)
        if limit:
            after = in_process(setup.model, setup.rows, LIMIT_S / 2)
            result["in_process"] = {
                "rows_per_s": round((before[0] + after[0]) / (before[1] + after[1]), 1),
                "around": [round(n / t, 1) for n, t in (before, after)],
            }
    return result


def problems(name: str, result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return [f"{name}: {result['error']}\n--- end of its log:\n{result['log_tail']}"]
    return [
        f"{name} {workload}: {r['non_2xx']} non-2xx responses and {r['socket_errors']} socket "
        "errors: the benchmark FAILED"
        for workload, r in result["workloads"].items()
        if r["non_2xx"] or r["socket_errors"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds of load per workload")
    parser.add_argument("--quick", action="store_true", help="10 s of load per workload")
    parser.add_argument("--servers", default="mlflow,shipml", help="comma-separated, in order")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    seconds = 10 if args.quick else args.duration
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in `finally`
    wrk_binary = ensure_wrk()
    report: dict[str, Any] = {
        "duration_s": seconds,
        "load": f"wrk -t{THREADS} -c{CONNECTIONS}, {WARMUP_S} s warm-up, one worker per server",
        "servers": {},
    }
    with tempfile.TemporaryDirectory(prefix="shipml-bench-serving-") as tmp:
        setup = prepare(Path(tmp), wrk_binary)
        for name in args.servers.split(","):
            print(f"benchmarking {name}...", file=sys.stderr)
            try:
                report["servers"][name] = bench(name, setup, seconds, limit=name == "shipml")
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                log = setup.tmp / f"{name}.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                report["servers"][name] = {"error": str(exc), "log_tail": tail}
    ratios_and_goals(report)
    report["problems"] = [p for n, r in report["servers"].items() for p in problems(n, r)]
    report["ok"] = not report["problems"]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report)
    for problem in report["problems"]:
        print(f"\n!! {problem}", file=sys.stderr)
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    try:
        import mlflow  # noqa: F401
    except ImportError:  # run by a Python without the project: use the project's venv
        if (VENV_BIN / "python").exists():
            os.execv(VENV_BIN / "python", [str(VENV_BIN / "python"), *sys.argv])
        raise
    try:
        main()
    except KeyboardInterrupt:  # the servers are stopped and the temporary folder removed
        sys.exit("interrupted")
