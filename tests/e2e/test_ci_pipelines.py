"""The generated CI pipelines, executed: `shipml init --ci both` in a fresh Git repository,
commit, then the GitLab pipeline under gitlab-ci-local (shell executor) and the GitHub
workflow under act (jobs on this host) both pass; a copy whose data breaks the suite makes
both stop at the validate job with exit 1, and no later job runs.

What is not the real thing, and why: the jobs use this checkout's shipml through the
pipelines' own override (SHIPML_PYTHON: this interpreter; PYTHONPATH: this checkout's src)
instead of `pip install shipml[pipeline]`, which would need a package index and minutes.
act cannot download remote actions here; the workflow skips them under act (`!env.ACT`), and
act is given an empty stand-in for each (`--local-repository`) so that it can set up the job.
The build/deploy jobs are manual (GitLab) or left out (GitHub: SHIPML_DEPLOY=off), as a
protected environment would hold them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests._services.ci_tools import tool
from tests.e2e.conftest import PROJECTS, init

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"
DATA = PROJECTS["cancer"] / "data" / "cancer.csv"
REMOTE_ACTIONS = [
    "actions/setup-python@v6",
    "actions/cache@v5",
    "actions/upload-artifact@v6",
    "mikepenz/action-junit-report@v5",
]
STUB_ACTION = """\
name: stand-in
description: an empty stand-in for a remote action that the workflow skips under act
runs:
  using: composite
  steps:
    - run: echo "stand-in action"
      shell: bash
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [tool("git"), "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(SRC), "HOME": str(cwd.parent / "home")},
    )


def _gitlab(repo: Path) -> subprocess.CompletedProcess[str]:
    tool("rsync")  # the shell executor copies each job's tree with it
    return _run(
        [
            tool("gitlab-ci-local"),
            "--force-shell-executor",
            "--shell-isolation",
            "--home",
            str(repo.parent / "home"),
            "--variable",
            f"SHIPML_PYTHON={sys.executable}",
            "--variable",
            f"PYTHONPATH={SRC}",
            "--variable",
            "SHIPML_SERVE__PORT=0",
        ],
        repo,
    )


def _github(repo: Path) -> subprocess.CompletedProcess[str]:
    stub = repo.parent / "stand-in-action"
    stub.mkdir(exist_ok=True)
    (stub / "action.yml").write_text(STUB_ACTION)
    argv = [
        tool("act"),
        "push",
        "-P",
        "ubuntu-latest=-self-hosted",
        "--defaultbranch",
        "main",
        "--var",
        f"SHIPML_PYTHON={sys.executable}",
        "--var",
        "SHIPML_DEPLOY=off",
        "--env",
        f"PYTHONPATH={SRC}",
        "--env",
        "SHIPML_SERVE__PORT=0",
        "--cache-server-addr",
        "127.0.0.1",
        "--artifact-server-addr",
        "127.0.0.1",
        "--action-cache-path",
        str(repo.parent / "act-cache"),
    ]
    for action in REMOTE_ACTIONS:
        argv += ["--local-repository", f"{action}={stub}"]
    return _run(argv, repo)


def _new_project(root: Path) -> Path:
    repo = root / "cancer"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    out = init(repo, "--data", str(DATA), "--ci", "both", "--json")
    assert out.code == 0, out.stdout + out.stderr
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "shipml init")
    return repo


def _jobs_run(log: str, names: list[str], pattern: str) -> list[str]:
    return [n for n in names if re.search(pattern.format(job=re.escape(n)), log, re.M)]


def test_generated_pipelines_pass_then_stop_at_validate_when_the_data_breaks(
    tmp_path: Path,
) -> None:
    repo = _new_project(tmp_path / "good")

    gitlab = _gitlab(repo)
    log = gitlab.stdout + gitlab.stderr
    assert gitlab.returncode == 0, log[-6000:]
    assert _jobs_run(log, ["validate", "test", "train"], r"^ PASS\s+{job}\b") == [
        "validate",
        "test",
        "train",
    ], log[-4000:]
    artifacts = repo / ".gitlab-ci-local" / "artifacts"
    junit = artifacts / "test" / ".shipml" / "reports" / "junit.xml"
    assert "<testsuite" in junit.read_text()
    summary = (artifacts / "train" / ".shipml" / "reports" / "summary.md").read_text()
    assert "all gates passed" in summary and "| register | ✅ passed" in summary

    github = _github(repo)
    log = github.stdout + github.stderr
    assert github.returncode == 0, log[-6000:]
    names = ["validate data", "test the project", "train, evaluate, register"]
    assert _jobs_run(log, names, r"^\[shipml/{job}\] 🏁  Job succeeded") == names, log[-4000:]
    assert "Summary - ## shipml · cancer" in log  # the job summary got the Markdown verdicts

    # The same project, with one measurement recorded in the wrong unit: validation says no.
    bad = tmp_path / "bad" / "cancer"
    shutil.copytree(repo, bad, ignore=shutil.ignore_patterns(".shipml", ".gitlab-ci-local"))
    frame = pd.read_csv(bad / "data" / "cancer.csv")
    frame["mean radius"] = frame["mean radius"] * 1000
    frame.to_csv(bad / "data" / "cancer.csv", index=False)
    _git(bad, "commit", "-q", "-am", "data in the wrong unit")

    gitlab = _gitlab(bad)
    log = gitlab.stdout + gitlab.stderr
    assert gitlab.returncode == 1, log[-6000:]
    assert re.search(r"^ FAIL\s+validate\b", log, re.M), log[-4000:]
    assert "a gate said no (exit 1)" in log
    assert not _jobs_run(log, ["test", "train"], r"^{job}\s+> "), log[-4000:]

    github = _github(bad)
    log = github.stdout + github.stderr
    assert github.returncode == 1, log[-6000:]
    assert "[shipml/validate data] 🏁  Job failed" in log, log[-4000:]
    assert "a gate said no (exit 1)" in log
    assert "[shipml/test the project]" not in log and "[shipml/train" not in log
    assert "stopped at **validate**" in log  # the summary still names the failed gate
