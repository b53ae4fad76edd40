import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipml.deploy.analysis import (
    Thresholds,
    VariantStats,
    accuracy,
    agreement,
    analyse,
    binned_psi,
    delta,
    paired,
    parse_metrics,
    psi,
    shadow_agreement,
)
from shipml.errors import SourceError, UsageError
from shipml.serve.metrics import LATENCY_BUCKETS, Metrics


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


def serve(
    m: Metrics,
    variant: str,
    n: int,
    code: int = 200,
    latency: float = 0.003,
    version: str = "2",
    model: str = "credit",
    cpu: float = 0.002,
) -> None:
    """What the server does for `n` requests answered with `code`, one model call each."""
    m.requests.labels(model, version, variant, str(code)).inc(n)
    if code == 200:
        m.predictions.labels(model, version, variant).inc(n)
        for _ in range(n):
            m.latency.labels(model, version, variant).observe(latency)
            m.model_cpu.labels(model, version, variant).observe(cpu)
    elif code >= 500:
        m.errors.labels(model, version, variant, "model_error").inc(n)


def scrape(m: Metrics) -> dict[str, VariantStats]:
    return parse_metrics(m.render()[0].decode())


def stats(
    ok: int = 1000, e4: int = 0, e5: int = 0, latency: float = 0.003, cpu: float = 0.002
) -> VariantStats:
    m = Metrics()
    serve(m, "canary", ok, latency=latency, cpu=cpu)
    serve(m, "canary", e4, 400)
    serve(m, "canary", e5, 503)
    return scrape(m)["canary"]


def run(candidate: VariantStats, stable: VariantStats | None = None, **kw: float | None):
    scores = {k: kw.pop(k, None) for k in ("psi", "agreement", "accuracy")}
    window = {k: kw.pop(k) for k in ("share", "window_s") if k in kw}
    return analyse(candidate, stable, Thresholds(**kw), **scores, **window)  # type: ignore[arg-type]


# --- parsing and intervals ---------------------------------------------------------------


def test_parse_reads_prometheus_client_output_per_variant() -> None:
    m = Metrics()
    serve(m, "stable", 7, version="1", latency=0.02)
    serve(m, "canary", 5, latency=0.2)
    serve(m, "canary", 2, 422)
    serve(m, "canary", 3, 500)
    m.info.labels("credit", "2", "canary", "0.1").set(1)
    got = scrape(m)
    assert set(got) == {"stable", "canary"}
    canary = got["canary"]
    assert dict(canary.requests) == {"2xx": 5, "4xx": 2, "5xx": 3}
    assert dict(canary.errors) == {"model_error": 3}
    assert canary.predictions == 5
    assert [b for b, _ in canary.buckets] == [*LATENCY_BUCKETS, math.inf]
    assert dict(canary.buckets)[0.1] == 0 and dict(canary.buckets)[0.25] == 5
    assert canary.started is not None
    assert got["stable"].total_requests == 7 and got["stable"].error_rate == 0


def test_parse_filters_by_model_and_sums_versions() -> None:
    m = Metrics()
    serve(m, "stable", 4, version="1")
    serve(m, "stable", 6, version="2")
    serve(m, "stable", 100, model="other")
    text = m.render()[0].decode()
    assert parse_metrics(text, model="credit")["stable"].total_requests == 10
    assert parse_metrics(text)["stable"].total_requests == 110


def test_parse_rejects_text_that_is_not_exposition_format() -> None:
    with pytest.raises(SourceError, match="cannot be parsed"):
        parse_metrics("<html>502 Bad Gateway</html>")


@given(st.dictionaries(st.sampled_from([200, 201, 400, 404, 422, 500, 503]), st.integers(0, 50)))
@settings(max_examples=40, deadline=None)
def test_parse_counts_every_request_in_its_status_class(counts: dict[int, int]) -> None:
    m = Metrics()
    for code, n in counts.items():
        m.requests.labels("credit", "1", "stable", str(code)).inc(n)
    got = parse_metrics(m.render()[0].decode()).get("stable", VariantStats())
    for cls in "245":
        expected = sum(n for code, n in counts.items() if str(code)[0] == cls)
        assert got.requests.get(f"{cls}xx", 0) == expected


def test_delta_is_the_interval_between_two_scrapes() -> None:
    m = Metrics()
    serve(m, "canary", 50)
    before = scrape(m)["canary"]
    serve(m, "canary", 30, latency=0.07)
    serve(m, "canary", 2, 503)
    interval = delta(scrape(m)["canary"], before)
    assert not interval.reset
    assert dict(interval.requests) == {"2xx": 30, "5xx": 2}
    assert interval.predictions == 30 and interval.observations == 30
    assert dict(interval.buckets)[0.05] == 0 and dict(interval.buckets)[0.1] == 30


def test_counter_reset_makes_the_interval_inconclusive_not_negative() -> None:
    old, new = Metrics(), Metrics()  # the server restarted between the scrapes
    serve(old, "canary", 500)
    serve(new, "canary", 200)
    interval = delta(scrape(new)["canary"], scrape(old)["canary"])
    assert interval.reset and interval.total_requests == 0
    verdict = run(interval, max_error_rate=0.01, min_requests=0)
    assert verdict.status == "inconclusive"
    assert all(c.status == "inconclusive" for c in verdict.checks)
    assert "restarted" in verdict.checks[0].detail


def test_restart_is_detected_by_created_time_even_when_counters_grew() -> None:
    before = VariantStats({"2xx": 10.0}, started=100.0)
    after = VariantStats({"2xx": 50.0}, started=200.0)
    assert delta(after, before).reset
    assert not delta(VariantStats({"2xx": 50.0}, started=100.0), before).reset
    assert delta(VariantStats({"2xx": 50.0}), VariantStats({"2xx": 10.0, "5xx": 1.0})).reset


# --- interval metrics --------------------------------------------------------------------


def test_p99_interpolates_within_the_bucket_like_histogram_quantile() -> None:
    m = Metrics()
    serve(m, "canary", 90, latency=0.003)  # bucket (0.0025, 0.005]
    serve(m, "canary", 10, latency=0.07)  # bucket (0.05, 0.075]
    s = scrape(m)["canary"]
    # rank 99 of 100: 9 of the 10 observations into (0.05, 0.075] -> 0.05 + 0.025 * 9/10
    assert s.latency_quantile(0.99) == pytest.approx(0.0725)
    # rank 50: 50 of the 90 observations into (0.0025, 0.005]
    assert s.latency_quantile(0.5) == pytest.approx(0.0025 + 0.0025 * 50 / 90)


def test_p99_in_the_inf_bucket_is_the_largest_finite_bound_and_nan_when_empty() -> None:
    m = Metrics()
    serve(m, "canary", 10, latency=30.0)
    assert scrape(m)["canary"].latency_quantile(0.99) == 10.0
    assert math.isnan(VariantStats().latency_quantile(0.99))


def test_rates_are_per_request_and_nan_without_requests() -> None:
    s = stats(ok=80, e4=15, e5=5)
    assert (s.error_rate, s.invalid_rate, s.total_requests) == (0.05, 0.15, 100)
    assert math.isnan(VariantStats().error_rate)


# --- score shift ------------------------------------------------------------------------


def test_psi_is_near_zero_for_one_distribution_and_large_for_a_shifted_one() -> None:
    rng = np.random.default_rng(0)
    ref = rng.beta(2, 5, 20_000)
    assert psi(ref, ref) == 0.0
    assert psi(ref, rng.beta(2, 5, 20_000)) < 0.01
    assert psi(ref, rng.beta(5, 2, 20_000)) > 1.0
    assert math.isnan(psi(ref, [])) and math.isnan(psi(ref, [0.1, math.nan]))
    with pytest.raises(UsageError):
        psi(ref, ref, bins=0)


def test_psi_gives_an_empty_bin_a_small_epsilon_share() -> None:
    # reference 0..9 in 2 bins split at 4.5: shares (0.5, 0.5); candidate all in the first bin
    expected = (1 - 0.5) * math.log(1 / 0.5) + (1e-6 - 0.5) * math.log(1e-6 / 0.5)
    assert psi(np.arange(10), np.zeros(100), bins=2) == pytest.approx(expected)


finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=200), st.lists(finite, min_size=1, max_size=200))
@settings(max_examples=200, deadline=None)
def test_psi_is_never_negative(ref: list[float], cand: list[float]) -> None:
    assert psi(ref, cand) >= 0.0


@given(st.lists(finite, min_size=1, max_size=200), st.integers(1, 20))
@settings(max_examples=200, deadline=None)
def test_psi_of_a_sample_with_itself_is_zero(x: list[float], bins: int) -> None:
    assert psi(x, x, bins) == pytest.approx(0.0, abs=1e-12)


def test_agreement_and_accuracy_count_sides_of_the_threshold() -> None:
    stable = [0.1, 0.6, 0.5, 0.9]
    shadow = [0.2, 0.4, 0.7, 0.49]
    assert agreement(stable, shadow, 0.5) == 0.5  # rows 0 and 2 agree
    assert agreement(stable, shadow, 0.15) == 0.75  # row 0 now disagrees
    assert accuracy(shadow, [0, 1, 1, 1]) == 0.5
    assert accuracy([0.9, 0.1], [True, False]) == 1.0
    assert math.isnan(agreement([], []))
    with pytest.raises(UsageError, match="paired"):
        agreement([0.1, 0.2], [0.3])


def test_paired_lines_up_two_variants_by_request_and_row() -> None:
    log = pd.DataFrame(
        {
            "request_id": ["a", "a", "b", "a", "a", "c"],
            "row": [0, 1, 0, 1, 0, 0],
            "variant": ["stable", "stable", "stable", "shadow", "shadow", "shadow"],
            "output": [0.1, 0.2, 0.3, 0.25, 0.15, 0.9],
        }
    )
    s, c = paired(log, "stable", "shadow")
    assert sorted(zip(s.tolist(), c.tolist(), strict=True)) == [(0.1, 0.15), (0.2, 0.25)]


# --- verdicts ---------------------------------------------------------------------------

CASES = [  # (stats, metric kwargs, threshold name, failing limit, passing limit, value)
    (dict(ok=950, e5=50), {}, "max_error_rate", 0.01, 0.1, 0.05),
    (dict(ok=900, e4=100), {}, "max_invalid_rate", 0.05, 0.2, 0.1),
    (dict(latency=0.07), {}, "max_p99_ms", 50.0, 200.0, 74.75),
    ({}, {"psi": 0.3}, "max_psi", 0.2, 0.5, 0.3),
    ({}, {"agreement": 0.9}, "min_agreement", 0.95, 0.85, 0.9),
    ({}, {"accuracy": 0.8}, "min_accuracy", 0.9, 0.7, 0.8),
]


@pytest.mark.parametrize(("kind", "metrics", "name", "bad", "good", "value"), CASES)
def test_each_check_fails_and_passes(kind, metrics, name, bad, good, value) -> None:
    s = stats(**kind)
    failed = run(s, **metrics, **{name: bad})
    assert failed.status == "fail"
    check = next(c for c in failed.checks if c.status == "fail")
    assert check.value == pytest.approx(value) and check.limit == bad
    assert failed.reasons == [check.detail]
    passed = run(s, **metrics, **{name: good})
    assert passed.status == "pass"
    assert [c.status for c in passed.checks] == ["pass", "pass"]


def test_detail_is_one_readable_line_with_stable_for_comparison() -> None:
    verdict = run(stats(ok=900, e5=100), stats(ok=1000), max_error_rate=0.01)
    assert verdict.checks[1].detail == (
        "error rate 0.100 > max 0.010 over 1000 requests (stable 0.000); errors: model_error 100"
    )
    latency = run(stats(latency=0.07), stats(latency=0.003), max_p99_ms=50)
    assert latency.checks[1].detail == (
        "p99 latency 74.8 ms > max 50.0 ms over 1000 requests (stable 5.0 ms, +69.8 ms)"
    )


def test_too_few_requests_is_inconclusive_even_when_every_value_is_within_limits() -> None:
    verdict = run(stats(ok=99), max_error_rate=0.01, max_p99_ms=500, min_requests=100)
    assert verdict.status == "inconclusive"
    assert [c.status for c in verdict.checks] == ["inconclusive"] * 3
    assert "over only 99 requests (< min 100)" in verdict.checks[1].detail
    assert run(stats(ok=100), max_error_rate=0.01, min_requests=100).status == "pass"


@pytest.mark.parametrize("value", [None, math.nan])
def test_missing_or_nan_score_is_inconclusive(value: float | None) -> None:
    verdict = run(stats(), agreement=value, min_agreement=0.9)
    assert verdict.status == "inconclusive"
    assert verdict.checks[-1].detail.startswith("agreement with stable inconclusive, unknown (")


def test_unset_threshold_is_not_checked_and_a_failure_outweighs_missing_data() -> None:
    assert [c.name for c in run(stats(), psi=math.nan).checks] == ["requests"]
    verdict = run(stats(ok=500, e5=500), max_error_rate=0.01, min_accuracy=0.9)
    assert verdict.status == "fail"
    assert {c.name: c.status for c in verdict.checks}["accuracy"] == "inconclusive"


@pytest.mark.parametrize(
    "bad", [{"max_error_rate": 1.5}, {"max_p99_ms": -1}, {"max_psi": math.nan}]
)
def test_thresholds_reject_impossible_limits(bad: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match=next(iter(bad))):
        Thresholds(**bad)


maybe_nan = st.one_of(st.none(), st.just(math.nan), st.floats(0, 1))


@given(
    ok=st.integers(0, 300),
    e4=st.integers(0, 30),
    e5=st.integers(0, 30),
    min_requests=st.integers(0, 400),
    scores=st.tuples(maybe_nan, maybe_nan, maybe_nan),
)
@settings(max_examples=150, deadline=None)
def test_verdict_never_passes_on_nan_missing_or_too_few_requests(
    ok: int, e4: int, e5: int, min_requests: int, scores: tuple[float | None, ...]
) -> None:
    requests = {"2xx": float(ok), "4xx": float(e4), "5xx": float(e5)}
    buckets = ((0.01, float(ok)), (math.inf, float(ok)))
    s = VariantStats(requests, predictions=float(ok), buckets=buckets)
    t = Thresholds(1.0, 1.0, 1e9, 1e9, 0.0, 0.0, min_requests)  # every value is within limits
    verdict = analyse(s, None, t, psi=scores[0], agreement=scores[1], accuracy=scores[2])
    unknown = any(v is None or math.isnan(v) for v in scores)
    # the latency histogram counts answered (2xx) requests only: p99 needs enough of them
    if unknown or ok + e4 + e5 < min_requests or ok < max(min_requests, 1):
        assert verdict.status == "inconclusive"
    else:
        assert verdict.status == "pass"


# --- score histograms, shadow agreement and the median check (what the server exports) --------


def test_score_bins_and_shadow_decisions_are_parsed_and_differenced() -> None:
    m = Metrics()
    labels = ("credit", "2", "shadow")
    m.observe_scores(labels, np.array([0.05, 0.15, 0.15, 0.95, 1.0]))
    m.shadow_decisions.labels(*labels, "true").inc(9)
    m.shadow_decisions.labels(*labels, "false").inc(1)
    before = scrape(m)["shadow"]
    assert before.scores == (1.0, 2.0, 0, 0, 0, 0, 0, 0, 0, 2.0)  # 1.0 goes in the last bin
    assert (before.agreed, before.compared) == (9.0, 10.0)
    m.observe_scores(labels, np.array([0.55]))
    m.shadow_decisions.labels(*labels, "false").inc(10)
    window = delta(scrape(m)["shadow"], before)
    assert window.scores[5] == 1.0 and sum(window.scores) == 1.0
    assert (window.agreed, window.compared) == (0.0, 10.0)


def test_binned_psi_is_zero_for_equal_shapes_large_for_shifted_and_nan_below_min() -> None:
    def scores(*counts: float) -> VariantStats:
        return VariantStats(scores=tuple(counts))

    even = scores(*[10.0] * 10)
    assert binned_psi(even, scores(*[30.0] * 10)) == pytest.approx(0.0)
    shifted = scores(*[0.0] * 5, *[20.0] * 5)
    assert binned_psi(even, shifted) > 1.0
    assert math.isnan(binned_psi(even, scores(*[1.0] * 10), min_scores=50))


def test_shadow_agreement_needs_enough_compared_rows() -> None:
    assert shadow_agreement(VariantStats(agreed=95, compared=100)) == pytest.approx(0.95)
    assert math.isnan(shadow_agreement(VariantStats(agreed=5, compared=5), min_scores=10))


def test_model_cpu_increase_fails_a_costlier_candidate_whatever_its_end_to_end_latency() -> None:
    stable = stats(latency=0.008, cpu=0.002)
    # the canary's requests waited longer (little traffic, behind stable's work): no matter
    slow_queue = run(stats(latency=0.045, cpu=0.002), stable, max_model_cpu_increase_ms=10)
    assert slow_queue.status == "pass"
    costly = run(stats(latency=0.045, cpu=0.04), stable, max_model_cpu_increase_ms=10)
    assert costly.status == "fail"
    [check] = [c for c in costly.checks if c.name == "model_cpu_increase"]
    assert check.value == pytest.approx(38, abs=5) and check.limit == 10
    assert "model calls" in check.detail
    alone = run(stats(cpu=0.002), None, max_model_cpu_increase_ms=10)
    assert alone.status == "inconclusive"  # nothing to compare with is never a pass
    few = run(stats(ok=10, cpu=0.04), stable, max_model_cpu_increase_ms=10, min_requests=1)
    assert few.status == "inconclusive" and "(< min 20)" in few.checks[-1].detail


def test_missing_psi_is_inconclusive_no_failure_and_names_the_traffic_a_step_needs() -> None:
    few = stats(ok=150)  # 150 requests, no scores counted
    verdict = run(few, stats(), psi=math.nan, max_psi=0.2, min_scores=200, share=5, window_s=30)
    assert verdict.status == "inconclusive"
    [check] = [c for c in verdict.checks if c.name == "psi"]
    assert check.status == "inconclusive"
    assert "0 candidate scores in the window, 200 needed (deploy.analysis.min_scores)" in (
        check.detail
    )
    assert "about 4000 requests in all at 5% of traffic (133.3/s over 30 s)" in check.detail
    assert verdict.reasons == [check.detail]
    # beside a real failure, a missing value is not listed as a reason to fail
    failed = run(stats(ok=90, e5=60), psi=math.nan, max_psi=0.2, max_error_rate=0.01)
    assert failed.status == "fail"
    assert len(failed.reasons) == 1 and failed.reasons[0].startswith("error rate")


def test_a_variants_earlier_version_is_left_out_when_versions_are_named() -> None:
    m = Metrics()
    serve(m, "stable", 50, version="1", cpu=0.002)  # before a swap of the stable variant
    serve(m, "stable", 30, version="6", cpu=0.013)
    text = m.render()[0].decode()
    assert parse_metrics(text)["stable"].model_calls == 80  # summed over versions
    now = parse_metrics(text, versions={"stable": "6"})["stable"]
    assert now.total_requests == 30 and now.model_cpu_quantile(0.5) > 0.01
