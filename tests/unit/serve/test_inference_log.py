import logging
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipml.errors import UsageError
from shipml.serve import inference_log
from shipml.serve.inference_log import FeedbackLog, InferenceLog, read_feedback, read_log

DAY = 86_400.0
AT = 1_790_000_000.25  # 2026-09-21, UTC
LOG_COLUMNS = ["request_id", "row", "timestamp", "variant", "model_version", "output", "date"]


def proba(*positive: float) -> np.ndarray:
    p = np.array(positive)
    return np.column_stack([1 - p, p])


def record(log: InferenceLog, rid: str, rows: int = 1, at: float = AT) -> bool:
    return log.record(
        rid, "a", "1", {"x": np.arange(rows, dtype=np.float64)}, proba(*[0.5] * rows), at
    )


def parts(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def sorted_log(directory: Path, model: str = "m") -> pd.DataFrame:
    return read_log(directory, model).sort_values(["request_id", "row"], ignore_index=True)


def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_module_import_loads_neither_pyarrow_nor_pandas() -> None:
    code = (
        "import sys, shipml.serve; before = set(sys.modules);"
        "import shipml.serve.inference_log;"
        "print(sorted(m for m in set(sys.modules) - before"
        " if m.split('.')[0] in ('pyarrow', 'pandas', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_sampled_fraction_follows_rate_and_seed(tmp_path: Path) -> None:
    with InferenceLog(tmp_path, model="m", sample_rate=0.1, seed=7) as log:
        kept = {f"req-{i}" for i in range(5000) if record(log, f"req-{i}")}
    again = InferenceLog(tmp_path / "again", model="m", sample_rate=0.1, seed=7)
    assert {f"req-{i}" for i in range(5000) if record(again, f"req-{i}")} == kept
    other = InferenceLog(tmp_path / "other", model="m", sample_rate=0.1, seed=8)
    assert {f"req-{i}" for i in range(5000) if record(other, f"req-{i}")} != kept
    again.close()
    other.close()
    assert 400 <= len(kept) <= 600  # Binomial(5000, 0.1): mean 500, sd 21
    assert set(read_log(tmp_path, "m").request_id) == kept
    # evenly spread, also over consecutive ids: each tenth holds 50 +- 5 sd (sd 6.7)
    assert all(
        16 <= sum(f"req-{i}" in kept for i in range(k, k + 500)) <= 84 for k in range(0, 5000, 500)
    )


def test_a_request_and_its_shadows_are_sampled_together(tmp_path: Path) -> None:
    with InferenceLog(tmp_path, model="m", sample_rate=0.3) as log:
        for i in range(1000):
            for variant in ("served", "shadow"):
                log.record(f"id{i}", variant, "1", {"x": np.zeros(1)}, np.array([0.5]), AT)
    df = read_log(tmp_path, "m")
    assert 200 <= df.request_id.nunique() <= 400
    assert (df.groupby("request_id").variant.apply(set) == {"served", "shadow"}).all()


def test_rate_zero_writes_nothing_and_reads_back_empty(tmp_path: Path) -> None:
    with InferenceLog(tmp_path, model="m", sample_rate=0.0) as log:
        assert not any(record(log, f"r{i}") for i in range(200))
    assert parts(tmp_path) == []
    empty = read_log(tmp_path, "m")
    assert list(empty.columns) == LOG_COLUMNS and len(empty) == 0
    assert str(empty.timestamp.dtype) == "datetime64[us, UTC]"
    assert list(read_feedback(tmp_path, "m").columns) == [
        "request_id",
        "label",
        "timestamp",
        "date",
    ]


def test_rate_one_round_trips_every_row_exactly(tmp_path: Path) -> None:
    inputs = {
        "income": np.array([1.5, -2.25, np.nan]),
        "age": np.array([30, 41, 52], dtype=np.int64),
        "owner": np.array([True, False, True]),
        "grade": np.array(["A", None, "C"], dtype=object),
    }
    with InferenceLog(tmp_path, model="m", sample_rate=1.0) as log:
        assert log.record("multi", "blue", "7", inputs, proba(0.1, 0.2, 0.9), at=AT)
        assert log.record(
            "single", "green", "8", {"income": np.array([3.0])}, np.array([0.4]), AT + DAY
        )
    df = sorted_log(tmp_path)
    multi, single = df[df.request_id == "multi"], df[df.request_id == "single"]
    assert list(multi.row) == [0, 1, 2] and list(multi.output) == [0.1, 0.2, 0.9]
    np.testing.assert_array_equal(multi["input.income"], inputs["income"])
    assert list(multi["input.age"]) == [30, 41, 52] and list(multi["input.owner"]) == [
        True,
        False,
        True,
    ]
    assert list(multi["input.grade"].fillna("-")) == ["A", "-", "C"]
    assert set(multi.variant) == {"blue"} and set(multi.model_version) == {"7"}
    assert set(multi.timestamp) == {pd.Timestamp(round(AT * 1e6), unit="us", tz="UTC")}
    assert list(single.output) == [0.4] and list(single["input.income"]) == [3.0]
    assert single.date.tolist() == ["2026-09-22"] and set(multi.date) == {"2026-09-21"}
    assert (tmp_path / "m" / "date=2026-09-22").is_dir()


def test_close_right_after_record_loses_nothing(tmp_path: Path) -> None:
    log = InferenceLog(tmp_path, model="m", sample_rate=1.0, flush_rows=10**9, flush_seconds=3600)
    for i in range(1000):
        record(log, f"r{i:04}", rows=3)
    log.close()
    log.close()  # idempotent
    df = sorted_log(tmp_path)
    assert len(df) == 3000 and df.request_id.nunique() == 1000
    assert not record(log, "late") and log.dropped == 1


def test_close_and_flush_without_any_record_create_nothing(tmp_path: Path) -> None:
    log = InferenceLog(tmp_path, model="m", sample_rate=1.0)
    log.flush()
    log.close()
    assert parts(tmp_path) == [] and log.errors == 0


def test_flush_makes_everything_so_far_readable(tmp_path: Path) -> None:
    with InferenceLog(tmp_path, model="m", sample_rate=1.0, flush_seconds=3600) as log:
        record(log, "r1", rows=2)
        log.flush()
        assert list(sorted_log(tmp_path).request_id) == ["r1", "r1"]
        record(log, "r2")
    assert list(sorted_log(tmp_path).request_id) == ["r1", "r1", "r2"]


def test_writer_flushes_on_row_count(tmp_path: Path) -> None:
    with InferenceLog(
        tmp_path, model="m", sample_rate=1.0, flush_rows=5, flush_seconds=3600
    ) as log:
        record(log, "r1", rows=2)
        record(log, "r2", rows=3)
        assert wait_for(lambda: len(read_log(tmp_path, "m")) == 5)


def test_writer_flushes_on_elapsed_time(tmp_path: Path) -> None:
    with InferenceLog(tmp_path, model="m", sample_rate=1.0, flush_seconds=0.05) as log:
        record(log, "r1")
        assert wait_for(lambda: len(read_log(tmp_path, "m")) == 1)


def test_full_queue_drops_and_counts_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    write = inference_log._Writer._write

    def stalled(self: inference_log._Writer[Any], items: list[Any]) -> None:
        entered.set()
        release.wait(30)
        write(self, items)

    monkeypatch.setattr(inference_log._Writer, "_write", stalled)
    log = InferenceLog(tmp_path, model="m", sample_rate=1.0, flush_rows=1, max_pending=2)
    assert record(log, "r0") and entered.wait(10)  # the writer now holds r0 and is stuck
    assert record(log, "r1") and record(log, "r2")
    started = time.perf_counter()
    accepted = record(log, "r3")
    elapsed = time.perf_counter() - started
    release.set()
    log.close()
    assert not accepted and log.dropped == 1 and elapsed < 0.05
    assert set(read_log(tmp_path, "m").request_id) == {"r0", "r1", "r2"}


def test_concurrent_records_from_threads_are_all_written(tmp_path: Path) -> None:
    log = InferenceLog(tmp_path, model="m", sample_rate=1.0, flush_rows=50)
    results: list[bool] = []

    def worker(t: int) -> None:
        results.extend(record(log, f"t{t}-{i}", rows=2) for i in range(300))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    df = read_log(tmp_path, "m")
    assert results.count(True) == 2400 and log.dropped == 0
    assert len(df) == 4800 and not df.duplicated(["request_id", "row"]).any()


def test_files_are_atomic_named_and_readable(tmp_path: Path) -> None:
    with InferenceLog(tmp_path, model="m", sample_rate=1.0, flush_rows=7) as log:
        for i in range(100):
            record(log, f"r{i}", rows=1 + i % 3, at=AT + (i % 2) * DAY)
    files = parts(tmp_path)
    assert len(files) > 2
    assert all(f.suffix == ".parquet" and f.name.startswith("part-") for f in files)
    assert sum(pq.read_table(f).num_rows for f in files) == sum(1 + i % 3 for i in range(100))


def test_failed_write_is_logged_counted_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = pq.write_table

    def half_then_fail(table: object, where: object, **kw: object) -> None:
        Path(str(where)).write_bytes(b"PAR1 half")
        raise OSError("disk full")

    log = InferenceLog(tmp_path, model="m", sample_rate=1.0)
    monkeypatch.setattr(pq, "write_table", half_then_fail)
    with caplog.at_level(logging.ERROR, logger="shipml.serve.inference_log"):
        record(log, "lost")
        log.flush()
    monkeypatch.setattr(pq, "write_table", real)
    record(log, "kept")  # the writer thread survived
    log.close()
    assert log.errors == 1 and "rows are lost" in caplog.text
    assert [f.suffix for f in parts(tmp_path)] == [".parquet"]
    assert list(read_log(tmp_path, "m").request_id) == ["kept"]


def test_bad_record_is_skipped_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with InferenceLog(tmp_path, model="m", sample_rate=1.0) as log:
        record(log, "good1")
        log.record("bad", "a", "1", {"x": np.arange(3)}, np.array([0.5]))  # 3 inputs, 1 output
        record(log, "good2")
    assert log.errors == 1 and "'bad'" in caplog.text
    assert sorted(read_log(tmp_path, "m").request_id) == ["good1", "good2"]


def test_type_differences_between_requests_are_unified(tmp_path: Path) -> None:
    with InferenceLog(tmp_path, model="m", sample_rate=1.0) as log:
        log.record("int", "a", "1", {"x": np.array([1, 2])}, np.array([0.1, 0.2]), AT)
        log.record("float", "a", "1", {"x": np.array([2.5])}, np.array([0.3]), AT)
        log.record("extra", "a", "1", {"x": np.array([3]), "y": np.array([1.0])}, proba(0.4), AT)
    assert log.errors == 0 and len(parts(tmp_path)) == 1  # int + float: one file of float64
    df = sorted_log(tmp_path)
    assert df["input.x"].dtype == np.float64 and list(df["input.x"]) == [3.0, 2.5, 1.0, 2.0]
    assert df["input.y"].isna().sum() == 3


def test_inputs_of_other_shapes_are_flattened_alongside_plain_columns(tmp_path: Path) -> None:
    """The fast path (plain 1-D columns) gives way to the per-request one for any other shape."""
    with InferenceLog(tmp_path, model="m", sample_rate=1.0) as log:
        log.record("plain", "a", "1", {"x": np.array([1.0, 2.0])}, np.array([0.1, 0.2]), AT)
        log.record("column", "a", "1", {"x": np.array([[3.0], [4.0]])}, proba(0.3, 0.4), AT)
        log.record("list", "a", "1", {"x": [5.0]}, [0.5], AT)  # type: ignore[dict-item,arg-type]
    assert log.errors == 0
    df = sorted_log(tmp_path)
    assert list(df.request_id) == ["column", "column", "list", "plain", "plain"]
    assert list(df["input.x"]) == [3.0, 4.0, 5.0, 1.0, 2.0]
    assert list(df.output) == [0.3, 0.4, 0.5, 0.1, 0.2]


def test_incompatible_types_go_to_separate_files_and_read_as_text(tmp_path: Path) -> None:
    with InferenceLog(tmp_path, model="m", sample_rate=1.0) as log:
        log.record("num", "a", "1", {"x": np.array([1])}, np.array([0.1]), AT)
        log.record("txt", "a", "1", {"x": np.array(["b"], dtype=object)}, np.array([0.2]), AT)
    assert log.errors == 0 and len(parts(tmp_path)) == 2
    assert list(sorted_log(tmp_path)["input.x"]) == ["1", "b"]


def test_feedback_round_trips_and_joins_with_the_log(tmp_path: Path) -> None:
    with InferenceLog(tmp_path, model="m", sample_rate=1.0) as log:
        for rid in ("r1", "r2", "r3"):
            record(log, rid, rows=1)
    with FeedbackLog(tmp_path, model="m") as feedback:
        assert feedback.record("r1", 1, at=AT + DAY)
        assert feedback.record("r3", "no", at=AT + 2 * DAY)
        assert feedback.record("r9", None)
    labels = read_feedback(tmp_path, "m")
    assert sorted(labels.request_id) == ["r1", "r3", "r9"] and labels.label.isna().sum() == 1
    joined = read_log(tmp_path, "m").merge(labels, on="request_id", suffixes=("", "_label"))
    assert dict(zip(joined.request_id, joined.label, strict=True)) == {"r1": "1", "r3": "no"}
    assert sorted(joined.date_label) == ["2026-09-22", "2026-09-23"]
    assert len(read_log(tmp_path, "m")) == 3  # feedback files are not part of the log


def test_invalid_arguments_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="sample_rate"):
        InferenceLog(tmp_path, model="m", sample_rate=1.5)
    with pytest.raises(UsageError, match="model name"):
        InferenceLog(tmp_path, model="../etc", sample_rate=1.0)
    with pytest.raises(UsageError, match="max_pending=0"):
        InferenceLog(tmp_path, model="m", sample_rate=1.0, max_pending=0)


requests = st.lists(
    st.tuples(
        st.integers(1, 4),  # rows
        st.booleans(),  # x as int64 (True) or float64
        st.integers(-(2**40), 2**40),
        st.floats(0, 1),
        st.integers(0, 3),  # day offset
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(requests, st.integers(1, 10))
def test_any_sequence_at_rate_one_reads_back_exactly(
    reqs: list[tuple[int, bool, int, float, int]], flush_rows: int
) -> None:
    with tempfile.TemporaryDirectory() as d:
        expected = []
        with InferenceLog(Path(d), model="m", sample_rate=1.0, flush_rows=flush_rows) as log:
            for i, (rows, as_int, base, p, day) in enumerate(reqs):
                x = np.arange(base, base + rows, dtype=np.int64 if as_int else np.float64)
                assert log.record(f"r{i:03}", "a", "1", {"x": x}, np.full(rows, p), AT + day * DAY)
                expected += [(f"r{i:03}", j, float(x[j]), p) for j in range(rows)]
        df = sorted_log(Path(d))
        got = list(
            zip(df.request_id, df.row, df["input.x"] if reqs else [], df.output, strict=True)
        )
        assert got == expected and log.errors == 0
