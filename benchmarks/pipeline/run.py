"""How much of `shipml run` is shipml's own work, and how fast `shipml --help` answers.

    python benchmarks/pipeline/run.py [--rounds 2] [--json]      (or: make bench-pipeline)

Copies examples/credit into a temporary folder and runs `shipml run --json` there `--rounds`
times, under `python -X importtime`. Round 1 is cold (the MLflow database is created);
later rounds re-ingest unchanged data and train again.

The wall time of each round is split into:
- library work: every step records the seconds spent inside the libraries (Great
  Expectations, the user's fit, MLflow, pytest on the project's own tests, deltalake, pandas,
  matplotlib, the model's predictions in the gates); imports are kept out of those blocks;
- imports of third-party libraries, read from the run's own `-X importtime` output;
- Python's start-up, measured as a bare `python -c pass`;
- shipml's own work: the rest (config, hashing, state store, orchestration, rendering).
The result is a ratio of the same run, so it holds on a shared, noisy machine.

The build and deploy stages are off here (`build.builder: none`, `deploy.in_run: never`):
their time is another process's (the image builder, the server starting), not the pipeline's;
the server has its own benchmark (benchmarks/serving).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHIPML = [sys.executable, "-m", "shipml"]
OWN = {"shipml", "train", "features", "__main__"}
TARGET = 0.15  # the target for shipml's own share of the wall time


def median_seconds(cmd: list[str], n: int = 7) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def third_party_import_seconds(importtime: str) -> float:
    """Seconds spent importing third-party packages, each import tree counted once.

    `-X importtime` prints one line per module, children before their parent, indented by
    depth. A third-party module counts (with everything it imported) when it was imported by
    shipml, by the project's own code, or at run time from a function (no parent line).
    """
    rows = []
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((depth, int(cumulative), name.strip().split(".")[0]))
    stdlib = set(sys.stdlib_module_names)
    total = 0
    for i, (depth, cumulative, top) in enumerate(rows):
        if top in OWN or top in stdlib or top.startswith("_"):
            continue
        parent = next((r for r in rows[i + 1 :] if r[0] < depth), None)
        if parent is None or parent[2] in OWN:
            total += cumulative
    return total / 1e6


def pipeline_round(project: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-X", "importtime", "-m", "shipml", "run", "--json"]
    t0 = time.perf_counter()
    env = {**os.environ, "SHIPML_BUILD__BUILDER": "none", "SHIPML_DEPLOY__IN_RUN": "never"}
    proc = subprocess.run(
        [*cmd, "--project", str(project)], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"shipml run failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    libraries: dict[str, float] = {}
    for step in json.loads(proc.stdout)["steps"]:
        for name, seconds in step["timings"].items():
            libraries[name] = libraries.get(name, 0.0) + seconds
    return {
        "wall": wall,
        "libraries": libraries,
        "imports": third_party_import_seconds(proc.stderr),
    }


def summarise(r: dict[str, Any], startup: float) -> dict[str, Any]:
    wall, libs, imports = r["wall"], r["libraries"], r["imports"]
    own = wall - sum(libs.values()) - imports - startup
    return {
        "wall_seconds": round(wall, 2),
        "library_seconds": {k: round(v, 2) for k, v in sorted(libs.items(), key=lambda x: -x[1])},
        "import_seconds": round(imports, 2),
        "python_startup_seconds": round(startup, 3),
        "shipml_own_seconds": round(own, 2),
        "shipml_own_fraction": round(own / wall, 3),
        "target_fraction": TARGET,
        "meets_target": own / wall < TARGET,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="pipeline runs (first is cold)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    startup = median_seconds([sys.executable, "-c", "pass"])
    report: dict[str, Any] = {
        "help_seconds": round(median_seconds([*SHIPML, "--help"]), 3),
        "python_startup_seconds": round(startup, 3),
    }
    with tempfile.TemporaryDirectory(prefix="shipml-bench-") as tmp:
        project = Path(tmp) / "credit"
        ignore = shutil.ignore_patterns(".shipml", "__pycache__")
        shutil.copytree(ROOT / "examples" / "credit", project, ignore=ignore)
        report["rounds"] = [summarise(pipeline_round(project), startup) for _ in range(args.rounds)]
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"shipml --help  {report['help_seconds']:.3f} s   (bare python {startup:.3f} s)")
    for i, r in enumerate(report["rounds"], 1):
        wall = r["wall_seconds"]
        print(f"\nshipml run, round {i}{' (cold)' if i == 1 else ''}: {wall:.1f} s wall")
        for name, seconds in r["library_seconds"].items():
            print(f"  inside {name:<22}{seconds:7.2f} s  {seconds / wall:6.1%}")
        imports = r["import_seconds"]
        print(f"  importing libraries        {imports:7.2f} s  {imports / wall:6.1%}")
        print(f"  python start-up            {startup:7.2f} s  {startup / wall:6.1%}")
        verdict = "meets" if r["meets_target"] else "MISSES"
        print(
            f"  shipml's own work          {r['shipml_own_seconds']:7.2f} s  "
            f"{r['shipml_own_fraction']:6.1%}   ({verdict} the {TARGET:.0%} target)"
        )


if __name__ == "__main__":
    main()
