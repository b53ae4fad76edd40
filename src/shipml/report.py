"""The verdict of every gate of one run, as Markdown (`shipml report --markdown`).

It reads only the step records of the state store, so any later process (a CI job's summary
step, a merge-request bot) can render what a `shipml run` decided, after the fact. CI jobs
write it to the job summary and keep it as an artifact to post as a merge-request comment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shipml.state.store import StepRecord

__all__ = ["latest_run", "markdown"]

_VERDICTS = {
    "succeeded": "✅ passed",
    "gate_failed": "❌ gate failed",
    "failed": "💥 error",
    "running": "⏳ did not finish",
}


def latest_run(steps: Sequence[StepRecord]) -> list[StepRecord]:
    """The step records of the newest run (the run whose first step started last)."""
    if not steps:
        return []
    first: dict[str, str] = {}
    for s in steps:
        first.setdefault(s.run_id, s.started_at)
    newest = max(first, key=lambda run: first[run])
    return [s for s in steps if s.run_id == newest]


def markdown(steps: Sequence[StepRecord], *, title: str = "shipml") -> str:
    if not steps:
        return f"## {title}\n\nNo `shipml run` is recorded in this project's state store yet.\n"
    failed = [s for s in steps if s.status != "succeeded"]
    headline = "all gates passed"
    if failed:
        verdict = _VERDICTS.get(failed[0].status, failed[0].status)
        headline = f"stopped at **{failed[0].stage}** ({verdict})"
    lines = [
        f"## {title}: run `{steps[0].run_id[:8]}`, {headline}",
        "",
        "| stage | verdict | seconds | details |",
        "|---|---|---:|---|",
    ]
    for s in steps:
        seconds = f"{s.duration_s:.1f}" if s.duration_s is not None else ""
        verdict = _VERDICTS.get(s.status, s.status)
        if s.outputs.get("skipped"):
            verdict = "⏭️ skipped"
        lines.append(f"| {s.stage} | {verdict} | {seconds} | {_cell(_details(s))} |")
    for s in steps:
        gates = s.outputs.get("gates") or {}
        if gates:
            details = s.outputs.get("gate_details") or {}
            lines += ["", f"### {s.stage} gates", ""]
            lines += ["| gate | verdict | measured |", "|---|---|---|"]
            marks = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⏭️ skip"}
            for name, verdict in gates.items():
                lines.append(
                    f"| {name} | {marks.get(verdict, verdict)} | {_cell(details.get(name, ''))} |"
                )
    for s in failed:
        if s.error:
            lines += ["", f"<details><summary>{s.stage}: why</summary>", "", "```text"]
            lines += [s.error.replace("```", "'''"), "```", "", "</details>"]
    return "\n".join(lines) + "\n"


def _details(s: StepRecord) -> str:
    o: dict[str, Any] = s.outputs
    if s.stage == "ingest" and "snapshot" in o:
        state = "new" if o.get("created") else "unchanged"
        return f"snapshot {o['snapshot']}, {o.get('rows')} rows ({state})"
    if s.stage == "validate" and "evaluated" in o:
        return f"{o['evaluated']} expectations, {o.get('failed', 0)} failed"
    if s.stage == "test" and "summary" in o:
        return str(o["summary"])
    if s.stage == "evaluate" and o.get("metrics"):
        return ", ".join(f"{k} {v:.3f}" for k, v in o["metrics"].items() if v is not None)
    if s.stage == "register" and "version" in o:
        return f"{o['model']} version {o['version']} (alias {o.get('alias')})"
    if o.get("reason"):
        return str(o["reason"])
    if s.error:
        return s.error.splitlines()[-1].strip(" -")
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
