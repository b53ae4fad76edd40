"""The rollout controller: releases a candidate step by step, judges each step, and either
promotes it or puts stable back. Target-independent: it only calls the `Target` protocol.

A release is planned as steps (`plan`): "shadow" mirrors traffic to the candidate, a number
gives it that share of traffic. Each step is held for windows of `deploy.analysis.interval_s`;
a window's verdict (analysis.py) from the servers' own metrics is pass (next step), fail (roll
back at once) or inconclusive (hold; fail after `max_inconclusive` windows in a row). After
the last step the candidate is promoted: it replaces the stable variant in place, the
champion alias moves to it, and the release is recorded as promoted.

Everything that changes is written to the state store before or as it happens (release row,
step index, each verdict, audit events), under a lock, so a second deploy is refused and a
controller killed mid-rollout is recovered by `rollback()` or `deploy(resume=True)`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shipml.config import DeployConfig, Project
from shipml.deploy import analysis as an
from shipml.deploy.target import STABLE, ModelRef, Target
from shipml.errors import GateFailed, UsageError
from shipml.state.releases import Release, Releases, Step
from shipml.state.store import StateStore

__all__ = ["Controller", "plan"]

SHADOW, CANARY = "shadow", "canary"
_NONE = an.VariantStats()  # a variant absent from a scrape has counted nothing yet


def plan(cfg: DeployConfig) -> list[Step]:
    """The steps of a release under `cfg.strategy`."""
    if cfg.strategy == "replace":
        return [100.0]
    if cfg.strategy == "shadow":
        return [SHADOW, 100.0]
    return [*([SHADOW] if cfg.shadow_first else []), *cfg.steps]


@dataclass
class Controller:
    project: Project
    store: StateStore
    target: Target
    say: Callable[[str], None] = lambda _message: None  # progress, one line at a time
    sleep: Callable[[float], None] = time.sleep

    @property
    def releases(self) -> Releases:
        return Releases(self.store)

    @property
    def lock_name(self) -> str:
        return f"deploy:{self.project.model_name}"

    # ---- commands ----------------------------------------------------------------------

    def deploy(self, version: int | None = None, *, resume: bool = False) -> Release:
        """Release `version` (default: the candidate alias) and return the finished release.
        Raises GateFailed when its analysis fails (stable then serves all traffic again)."""
        with self.releases.lock(self.lock_name, take_stale=resume):
            name = self.project.model_name
            if resume:
                release = self.releases.in_progress(name)
                if release is None:
                    raise UsageError(f"no release of {name} is in progress; nothing to resume")
                self.say(f"resuming release {release.id} at step {release.step + 1}")
                return self._guarded(release)
            if (busy := self.releases.in_progress(name)) is not None:
                raise UsageError(
                    f"release {busy.id} ({name}:{busy.version}) is still in progress and its "
                    f"controller is gone; `shipml deploy --resume` continues it, "
                    f"`shipml rollback` abandons it"
                )
            candidate = self._model(
                version or self._alias(self.project.config.registry.candidate_alias)
            )
            serving = self.releases.serving(name)
            previous, why = (
                (serving.version, f"release {serving.id}") if serving else self._unrecorded()
            )
            if previous is None or (serving is None and candidate.version == previous):
                return self._first(candidate)  # nothing serves, nothing (else) is champion
            if candidate.version == previous:
                raise UsageError(
                    f"{candidate.label} is already serving ({why}); register a "
                    f"new version first, or pass --version"
                )
            self.target.start(self._model(previous))
            cfg = self.project.config.deploy
            release = self.releases.create(
                model=name,
                version=candidate.version,
                previous_version=previous,
                snapshot=self._snapshot(candidate.version),
                kind="deploy",
                strategy=cfg.strategy,
                steps=plan(cfg),
                reason=f"candidate {candidate.label} replaces {name}:{previous} ({why})",
            )
            self._audit("release.started", release, {"steps": release.steps})
            return self._guarded(release)

    def ensure_serving(self) -> Release:
        """What `shipml run` does: serve the first champion, or make sure the serving release
        is up (a later candidate waits for `shipml deploy`: it needs traffic to be judged)."""
        with self.releases.lock(self.lock_name):
            serving = self.releases.serving(self.project.model_name)
            if serving is None:
                # a champion set by hand is what serves first, never a candidate unjudged
                version, _ = self._unrecorded()
                alias = self.project.config.registry.candidate_alias
                return self._first(self._model(version or self._alias(alias)))
            if not self.target.status().ready:
                self.target.start(self._model(serving.version))
            return serving

    def promote(
        self, version: int | None = None, *, reason: str = "promoted by hand"
    ) -> Release | None:
        """Without `version`: finish the release in progress now, by promotion (its remaining
        steps skipped). With one: serve it at once and make it champion, as a release; when
        nothing is deployed yet, only the champion alias moves (None is returned)."""
        with self.releases.lock(self.lock_name, take_stale=True):
            name = self.project.model_name
            release = self.releases.in_progress(name)
            if version is None and release is None:
                raise UsageError(
                    f"no release of {name} is in progress; start one with `shipml deploy`, "
                    f"or name the version: `shipml promote {name} VERSION`"
                )
            if release is not None and version in (None, release.version):
                return self._promote(release, reason=reason)
            if release is not None:
                raise UsageError(
                    f"release {release.id} ({name}:{release.version}) is in progress; promote "
                    f"it, or `shipml rollback` it first"
                )
            assert version is not None
            serving = self.releases.serving(name)
            if serving is None:
                self._move_champion(version, reason)
                return None
            model = self._model(version)
            self.target.start(model)
            done = self.releases.create(
                model=name,
                version=version,
                previous_version=serving.version,
                snapshot=self._snapshot(version),
                kind="promote",
                strategy="replace",
                steps=[100.0],
                reason=reason,
                status="promoted",
            )
            self._move_champion(version, f"{reason} (release {done.id})")
            self._audit("release.promoted", done, {"reason": reason})
            return done

    def status(self) -> dict[str, Any]:
        """What serves where: target, variants and weights, releases, aliases, the lock."""
        from shipml.registry.models import version_for_alias

        name, reg = self.project.model_name, self.project.config.registry
        target = self.target.status()
        current = self.releases.in_progress(name)
        holder = self.releases.holder(self.lock_name)
        return {
            "model": name,
            "target": {
                "kind": self.target.kind,
                "up": target.up,
                "ready": target.ready,
                "url": target.url,
                "detail": target.detail,
                **target.facts,
                "variants": [dataclasses.asdict(v) for v in target.variants],
            },
            "aliases": {
                a: version_for_alias(self.project, a)
                for a in (reg.champion_alias, reg.candidate_alias)
            },
            "serving_release": _summary(self.releases.serving(name)),
            "in_progress": _summary(current)
            | (
                {
                    "current_step": _describe(current.current_step)
                    if current.current_step is not None
                    else "promotion",
                    "last_analysis": current.analyses[-1] if current.analyses else None,
                }
                if current
                else {}
            ),
            "lock": None
            if holder is None
            else {"holder": holder.describe(), "stale": holder.stale},
            "releases": [_summary(r) for r in self.releases.history(name, limit=10)],
        }

    def rollback(self) -> Release:
        """Abandon the release in progress, or, when none is, go back to the release before
        the serving one (its model version and snapshot), recorded as a new release."""
        with self.releases.lock(self.lock_name, take_stale=True):
            name = self.project.model_name
            release = self.releases.in_progress(name)
            if release is not None:
                self._restore(release)
                done = self.releases.finish(release, "aborted", "rolled back by hand")
                self._audit("release.aborted", done, {"reason": "rolled back by hand"})
                self.say(
                    f"release {release.id} abandoned; {name}:{release.previous_version} serves"
                )
                return done
            history = [r for r in self.releases.history(name) if r.status == "promoted"]
            if len(history) < 2:
                raise UsageError(
                    f"{name} has no earlier release to roll back to "
                    f"({len(history)} promoted release{'s' if len(history) != 1 else ''})"
                )
            current, previous = history[0], history[1]
            model = self._model(previous.version)
            self.target.start(model)
            rolled = self.releases.create(
                model=name,
                version=previous.version,
                previous_version=current.version,
                snapshot=previous.snapshot,
                kind="rollback",
                strategy="replace",
                steps=[100.0],
                reason=f"rollback from {name}:{current.version} (release {current.id}) to "
                f"release {previous.id}",
                status="promoted",
            )
            self._move_champion(previous.version, f"rollback, release {rolled.id}")
            self._audit("release.rolled_back", rolled, {"from_release": current.id})
            return rolled

    def down(self) -> None:
        with self.releases.lock(self.lock_name, take_stale=True):
            self.target.stop()
            self.store.audit(
                "target.stopped", self.project.model_name, {"target": self.target.kind}
            )

    # ---- the rollout -------------------------------------------------------------------

    def _unrecorded(self) -> tuple[int | None, str]:
        """With no release recorded: the version a candidate must be judged against, if any
        (what the target serves, else the champion alias, e.g. set by `shipml promote`
        before anything was deployed), and where it comes from."""
        status = self.target.status()
        stable = status.variant(STABLE) if status.up else None
        if stable is not None and stable.version is not None:
            return stable.version, f"serving on the {self.target.kind} target, no release recorded"
        champion = self._champion()
        return champion, "the champion alias, no release recorded"

    def _champion(self) -> int | None:
        from shipml.registry.models import version_for_alias

        return version_for_alias(self.project, self.project.config.registry.champion_alias)

    def _first(self, candidate: ModelRef) -> Release:
        """Nothing serves and no other version is champion, so there is nothing to compare
        with: start it, check it answers (the only release that skips analysis)."""
        self.say(f"starting the {self.target.kind} server with {candidate.label}")
        self.target.start(candidate)
        release = self.releases.create(
            model=candidate.name,
            version=candidate.version,
            previous_version=None,
            snapshot=self._snapshot(candidate.version),
            kind="initial",
            strategy="replace",
            steps=[100.0],
            reason="first release: nothing was serving",
            status="promoted",
        )
        self._move_champion(candidate.version, f"first release {release.id}")
        self._audit("release.promoted", release, {})
        return release

    def _guarded(self, release: Release) -> Release:
        """Run the release; if anything but a verdict stops it (Ctrl-C, a target error),
        put stable back and record the release as aborted. Should that fail too, the
        release stays in progress for `shipml rollback`."""
        try:
            return self._run(release)
        except GateFailed:
            raise
        except BaseException as exc:
            reason = f"interrupted: {type(exc).__name__}: {exc}".rstrip(": ")
            try:
                self._restore(release)
                done = self.releases.finish(release, "aborted", reason)
                self._audit("release.aborted", done, {"reason": reason})
            except Exception as cleanup:  # report the original error; the release stays open
                self.say(f"could not put stable back ({cleanup}); run `shipml rollback`")
            raise

    def _run(self, release: Release) -> Release:
        candidate = self._model(release.version)
        held_out = self._held_out(release.version)
        for index in range(release.step, len(release.steps)):
            release = self.releases.advance(release, index)
            step = release.steps[index]
            self._apply(step, candidate)
            self.say(f"step {index + 1}/{len(release.steps)}: {_describe(step)}")
            with self._replay(held_out) as replay:
                verdict = self._judge(release, step, replay)
            if verdict.status != "pass":
                return self._reject(release, step, verdict)
        release = self.releases.advance(release, len(release.steps))
        return self._promote(release, reason="every step passed its analysis")

    def _apply(self, step: Step, candidate: ModelRef) -> None:
        if step == SHADOW:
            self.target.load(SHADOW, candidate, shadow=True)
            return
        share = float(step)
        self.target.load(CANARY, candidate, shadow=False)
        self.target.set_weights({STABLE: 100.0 - share, CANARY: share})
        self.target.remove(SHADOW)

    def _held_out(self, version: int) -> tuple[list[str], list[list[Any]], list[Any]] | None:
        """The rows to replay when `deploy.analysis.replay` is on (replay.py), else None."""
        if not self.project.config.deploy.analysis.replay:
            return None
        from shipml.deploy.replay import held_out

        columns, rows, labels = held_out(self.project, version)
        self.say(f"replaying {len(rows)} held-out rows as labelled synthetic traffic")
        return columns, rows, labels

    def _replay(self, held_out: tuple[list[str], list[list[Any]], list[Any]] | None) -> Any:
        if held_out is None:
            return contextlib.nullcontext(None)
        from shipml.deploy.replay import Replay

        cfg = self.project.config.deploy.analysis
        url = self.target.status().url or ""
        return Replay(
            url,
            *held_out,
            rate=cfg.replay_rate,
            max_seconds=cfg.interval_s * cfg.max_inconclusive + 60,
        )

    def _judge(self, release: Release, step: Step, replay: Any = None) -> an.Verdict:
        cfg = self.project.config.deploy.analysis
        name = SHADOW if step == SHADOW else CANARY
        thresholds = an.Thresholds(
            max_error_rate=cfg.max_error_rate,
            max_invalid_rate=cfg.max_invalid_rate,
            max_p99_ms=cfg.max_p99_ms,
            max_model_cpu_increase_ms=cfg.max_model_cpu_increase_ms,
            max_psi=cfg.max_psi,
            min_agreement=cfg.min_agreement if step == SHADOW else None,
            min_accuracy=cfg.min_accuracy,
            min_requests=cfg.min_requests,
            min_scores=cfg.min_scores,
        )
        inconclusive, started = 0, time.time()
        versions = {STABLE: str(release.previous_version), name: str(release.version)}
        while True:
            synthetic = replay.sent if replay is not None else 0
            before = self._scrape(versions)
            self.sleep(cfg.interval_s)
            after = self._scrape(versions)
            synthetic = replay.sent - synthetic if replay is not None else None
            window = an.delta(after.get(name, _NONE), before.get(name, _NONE))
            # stable over the same window while it still has traffic (the machine's load
            # changes); over its whole life otherwise (at 100%), and always for the scores
            everything = after.get(STABLE, _NONE)
            reference = an.delta(everything, before.get(STABLE, _NONE))
            if reference.total_requests < cfg.min_requests:
                reference = everything
            verdict = an.analyse(
                window,
                reference,
                thresholds,
                psi=an.binned_psi(everything, window, cfg.min_scores),
                agreement=an.shadow_agreement(window, cfg.min_scores) if step == SHADOW else None,
                accuracy=self._accuracy(name, started, cfg.min_scores),
                share=100.0 if step == SHADOW else float(step),
                window_s=cfg.interval_s,
            )
            self.releases.add_analysis(release, _record(release.step, step, verdict, synthetic))
            self.say(f"  {verdict.status}: " + "; ".join(c.detail for c in verdict.checks))
            if verdict.status != "inconclusive":
                return verdict
            inconclusive += 1
            if inconclusive >= cfg.max_inconclusive:
                return dataclasses.replace(verdict, status="fail")

    def _reject(self, release: Release, step: Step, verdict: an.Verdict) -> Release:
        self._restore(release)
        failing = [c for c in verdict.checks if c.status != "pass"]
        held = not any(c.status == "fail" for c in failing)  # a missing value is no failure
        reasons = verdict.reasons
        if held:
            limit = self.project.config.deploy.analysis.max_inconclusive
            reasons.insert(
                0, f"no verdict after {limit} windows (deploy.analysis.max_inconclusive)"
            )
        done = self.releases.finish(release, "rejected", "; ".join(reasons))
        self._tag(done, f"rejected (release {done.id}): {reasons[0] if reasons else ''}")
        self._audit(
            "release.rejected",
            done,
            {
                "step": _describe(step),
                "checks": [
                    {
                        "check": c.name,
                        "status": c.status,
                        "value": _num(c.value),
                        "threshold": _num(c.limit),
                        "detail": c.detail,
                    }
                    for c in failing
                ],
            },
        )
        raise GateFailed(
            f"deploy of {done.model}:{done.version} (release {done.id}, step "
            f"{_describe(step)}); {done.model}:{done.previous_version} serves all traffic again",
            reasons,
        )

    def _restore(self, release: Release) -> None:
        """Traffic back to the serving version at once, then unload the candidate."""
        if release.previous_version is None:
            return
        status = self.target.status()
        stable = status.variant(STABLE)
        if not status.up or stable is None or stable.version != release.previous_version:
            self.target.start(self._model(release.previous_version))
        else:
            self.target.set_weights({STABLE: 100.0})
        for name in (CANARY, SHADOW):
            self.target.remove(name)

    def _promote(self, release: Release, *, reason: str) -> Release:
        candidate = self._model(release.version)
        self.target.load(STABLE, candidate, shadow=False)
        self.target.set_weights({STABLE: 100.0})
        for name in (CANARY, SHADOW):
            self.target.remove(name)
        self._move_champion(release.version, f"release {release.id}")
        done = self.releases.finish(release, "promoted", reason)
        self._tag(done, f"promoted (release {done.id})")
        self._audit("release.promoted", done, {"reason": reason})
        self.say(f"promoted {candidate.label}: it serves all traffic and is champion")
        return done

    # ---- helpers -----------------------------------------------------------------------

    def _accuracy(self, variant: str, since: float, min_rows: int) -> float | None:
        """Accuracy of the step's labelled requests; None when the check is off."""
        if self.project.config.deploy.analysis.min_accuracy is None:
            return None
        import yaml

        rows = self.target.labelled(variant, since)
        if len(rows) < min_rows:
            return float("nan")
        version = self.releases.in_progress(self.project.model_name)
        meta = {}
        if version is not None:
            spec = yaml.safe_load((self._model(version.version).path / "MLmodel").read_text())
            meta = spec.get("metadata", {}).get("shipml", {})
        positive = str(meta.get("positive_label", 1))
        return an.accuracy(
            rows["output"], rows["label"] == positive, meta.get("decision_threshold", 0.5)
        )

    def _scrape(self, versions: dict[str, str]) -> dict[str, an.VariantStats]:
        return an.parse_metrics(self.target.metrics(), self.project.model_name, versions)

    def _alias(self, alias: str) -> int:
        from shipml.registry.models import version_for_alias

        version = version_for_alias(self.project, alias)
        if version is None:
            raise UsageError(
                f"{self.project.model_name}@{alias} is not set; run the pipeline (`shipml run`) "
                f"to register a candidate, or pass --version"
            )
        return version

    def _model(self, version: int) -> ModelRef:
        """The version, fetched into the serve cache and verified against its registration
        (the cached copy too, every time): a tampered file is refused here, naming it, before
        a release is recorded or the target is touched."""
        from shipml.registry.models import get_version
        from shipml.serve.model import preflight, resolve

        get_version(self.project, version)  # a clear error for an unknown version
        source = resolve(
            f"models:/{self.project.model_name}/{version}",
            tracking_uri=self.project.tracking_uri,
            cache_dir=self.project.state_dir / "serve" / "models",
            model_name=self.project.model_name,
        )
        preflight(source, allow_pickle=self.project.config.serve.allow_pickle)
        return ModelRef(source.name, int(source.version), source.path)

    def _snapshot(self, version: int) -> str | None:
        from shipml.registry.models import get_version

        return get_version(self.project, version).tags.get("shipml.snapshot_hash")

    def _move_champion(self, version: int, reason: str) -> None:
        from shipml.registry.models import promote

        promote(self.project, self.store, version, reason=reason)

    def _tag(self, release: Release, outcome: str) -> None:
        """The outcome on the registry version too, where people look first."""
        from shipml.registry.models import tag_version

        tag_version(self.project, release.version, "shipml.release", outcome[:500])

    def _audit(self, action: str, release: Release, details: dict[str, Any]) -> None:
        self.store.audit(
            action,
            f"{release.model}:{release.version}",
            {
                "release": release.id,
                "previous_version": release.previous_version,
                "target": self.target.kind,
                **details,
            },
        )


def _describe(step: Step) -> str:
    return "shadow (mirrored traffic)" if step == SHADOW else f"canary at {float(step):g}%"


def _summary(release: Release | None) -> dict[str, Any]:
    if release is None:
        return {}
    keys = ("id", "version", "previous_version", "kind", "status", "reason", "started_at")
    replayed = [a["synthetic_requests"] for a in release.analyses if "synthetic_requests" in a]
    traffic = f"synthetic: {sum(replayed)} replayed held-out requests" if replayed else "live"
    return {k: getattr(release, k) for k in keys} | {
        "finished_at": release.finished_at,
        "traffic": traffic if release.analyses else None,
    }


def _num(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)  # NaN is not JSON


def _record(
    index: int, step: Step, verdict: an.Verdict, synthetic: int | None = None
) -> dict[str, Any]:
    """One window's verdict; `synthetic` counts replayed requests (None: no replay)."""
    return {
        "step": index,
        "what": _describe(step),
        "at": time.time(),
        "status": verdict.status,
        **({} if synthetic is None else {"synthetic_requests": synthetic}),
        "checks": [
            {"check": c.name, "status": c.status, "value": _num(c.value), "detail": c.detail}
            for c in verdict.checks
        ],
    }
