"""`shipml report --markdown`: the newest run's verdicts, read back from the step records."""

from __future__ import annotations

from shipml.report import latest_run, markdown
from shipml.state.store import StepRecord


def step(run: str, stage: str, at: str, status: str = "succeeded", **outputs: object) -> StepRecord:
    return StepRecord(f"{run}-{stage}", run, stage, {}, dict(outputs), {}, status, at, 1.5)


def test_the_newest_run_is_rendered_with_its_failed_gate_and_why() -> None:
    old = step("run-old", "ingest", "2026-12-01T10:00:00", snapshot="d@0", rows=5, created=True)
    steps = [
        old,
        step("run-new", "ingest", "2026-12-02T10:00:00", snapshot="d@1", rows=9, created=True),
        step(
            "run-new",
            "evaluate",
            "2026-12-02T10:00:05",
            "gate_failed",
            metrics={"roc_auc": 0.55},
            gates={"threshold.roc_auc.min": "fail", "latency": "pass"},
            gate_details={"threshold.roc_auc.min": "roc_auc 0.550 < min 0.600 | raise it"},
        ),
    ]
    steps[-1].error = "evaluation gate failed:\n  - roc_auc 0.550 < min 0.600"

    newest = latest_run(steps)
    assert [s.stage for s in newest] == ["ingest", "evaluate"]
    text = markdown(newest, title="shipml · demo")
    assert text.startswith("## shipml · demo: run `run-new`, stopped at **evaluate**")
    assert "| ingest | ✅ passed | 1.5 | snapshot d@1, 9 rows (new) |" in text
    assert "| threshold.roc_auc.min | ❌ fail | roc_auc 0.550 < min 0.600 \\| raise it |" in text
    assert "<summary>evaluate: why</summary>" in text and "roc_auc 0.550 < min 0.600" in text


def test_no_run_yet_says_so() -> None:
    assert "No `shipml run` is recorded" in markdown([])
