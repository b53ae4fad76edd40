"""How much of `shipml run` is shipml's own overhead, and how fast `shipml --help` answers.

    python benchmarks/pipeline/run.py [--rounds 2] [--json]

Copies examples/credit into a temporary folder and runs `shipml run --json` there `--rounds`
times (round 1 is cold: the MLflow database is created; later rounds re-ingest unchanged
data and train again). Every step records the seconds spent inside the libraries (Great
Expectations, the user's fit, MLflow, pytest on the project's tests, deltalake, matplotlib,
the model's own predictions in the gates); the rest of the wall time is shipml's own work
plus Python start-up and imports, which are reported separately. Ratios, not bare times,
are the result: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPML = [sys.executable, "-m", "shipml"]
HEAVY = ["pandas", "sklearn", "deltalake", "great_expectations", "mlflow", "fairlearn", "matplotlib"]


def help_seconds(n: int = 7) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([*SHIPML, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def python_seconds(n: int = 7) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def import_seconds() -> float:
    code = "import time; t=time.perf_counter(); import " + ", ".join(HEAVY)
    code += "; print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def pipeline_round(project: Path) -> dict[str, object]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*SHIPML, "run", "--json", "--project", str(project)], capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"shipml run failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout)
    libraries: dict[str, float] = {}
    for step in result["steps"]:
        for name, seconds in step["timings"].items():
            key = name.split(" ")[0]
            libraries[key] = libraries.get(key, 0.0) + seconds
    return {"wall": wall, "inside_run": result["seconds"], "libraries": libraries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="shipml-bench-") as tmp:
        project = Path(tmp) / "credit"
        shutil.copytree(ROOT / "examples" / "credit", project, ignore=shutil.ignore_patterns(".shipml"))
        imports = import_seconds()
        rounds = [pipeline_round(project) for _ in range(args.rounds)]
    report = {
        "help_seconds": help_seconds(),
        "python_startup_seconds": python_seconds(),
        "heavy_imports_seconds": imports,
        "rounds": [],
    }
    for r in rounds:
        wall, libs = float(r["wall"]), dict(r["libraries"])  # type: ignore[arg-type]
        lib_total = sum(libs.values())
        own = wall - lib_total - imports
        report["rounds"].append(  # type: ignore[attr-defined]
            {
                "wall_seconds": round(wall, 2),
                "library_seconds": {k: round(v, 2) for k, v in sorted(libs.items())},
                "library_total": round(lib_total, 2),
                "imports": round(imports, 2),
                "shipml_own_seconds": round(own, 2),
                "shipml_own_fraction": round(own / wall, 3),
                "shipml_own_fraction_with_imports": round((own + imports) / wall, 3),
            }
        )
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"shipml --help: {report['help_seconds']:.3f} s (bare python: {report['python_startup_seconds']:.3f} s)")
    for i, r in enumerate(report["rounds"], 1):  # type: ignore[attr-defined]
        print(f"\nround {i}: wall {r['wall_seconds']} s")
        for k, v in r["library_seconds"].items():
            print(f"  inside {k:<20} {v:6.2f} s  ({v / r['wall_seconds']:.0%})")
        print(f"  importing libraries     {r['imports']:6.2f} s  ({r['imports'] / r['wall_seconds']:.0%})")
        print(
            f"  shipml's own work       {r['shipml_own_seconds']:6.2f} s  "
            f"({r['shipml_own_fraction']:.1%}; {r['shipml_own_fraction_with_imports']:.1%} counting imports)"
        )


if __name__ == "__main__":
    main()
