"""The sections of shipml.yaml as pydantic models: every field, its default and its meaning.

`shipml config reference` renders these descriptions into the README's table. Loading a file,
SHIPML_* overrides and the derived `Project` are in `shipml.config`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Metric = Literal[
    "accuracy", "roc_auc", "f1", "log_loss", "brier", "precision", "recall", "positive_rate"
]
"""The metrics evaluation computes: valid keys of evaluation.thresholds and champion.metric."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StateConfig(_Section):
    """Where shipml keeps its own records (step runs, lineage, audit log)."""

    dir: str = Field(".shipml", description="Local state directory, relative to the project.")
    url: str | None = Field(
        None,
        description="SQLAlchemy URL of the state store; default sqlite:///<dir>/state.db. "
        "A postgresql+psycopg:// URL scales past one machine.",
    )


class DataConfig(_Section):
    """The raw source and the snapshot table it is ingested into."""

    source: str = Field(
        "data.csv",
        description="A CSV or Parquet path (relative to the project), or a SQLAlchemy URL "
        "when format is sql.",
    )
    format: Literal["auto", "csv", "parquet", "sql"] = Field(
        "auto", description="How to read the source; auto decides by file suffix."
    )
    query: str | None = Field(None, description="The SQL query, when format is sql.")
    dataset: str | None = Field(None, description="Snapshot table name; default: project name.")
    store: str | None = Field(
        None,
        description="Where snapshot tables live: a folder or an object-store URI "
        "(s3://, gs://, az://); default <state.dir>/data.",
    )
    key: str | None = Field(None, description="A column whose values must be unique.")


class SuggestConfig(_Section):
    """How `shipml expectations suggest` turns a reference snapshot into a suite."""

    quantile: float = Field(
        0.001, ge=0, lt=0.5, description="Numeric ranges span this quantile to 1-quantile..."
    )
    margin: float = Field(0.1, ge=0, description="...widened by this fraction of the span.")
    outlier_tolerance: float = Field(
        0.01, ge=0, le=1, description="Fraction of rows allowed outside a range (GX mostly)."
    )
    max_categories: int = Field(
        30, ge=1, description="A text column with at most this many values gets a value set."
    )
    row_count_margin: float = Field(
        0.5, ge=0, description="Row-count bounds: reference rows times (1 -/+ margin)."
    )


class ValidationConfig(_Section):
    """The Great Expectations suite that gates every snapshot."""

    suite: str = Field("expectations/suite.json", description="Suite file in the project.")
    docs_dir: str | None = Field(
        None,
        description="Where validation reports (runs/*.html) and Data Docs go; default "
        "<state.dir>/reports/validation.",
    )
    suggest: SuggestConfig = SuggestConfig()


class TestsConfig(_Section):
    """The project's own pytest suite, run as a gate."""

    enabled: bool = Field(True, description="Run the project's tests as a gate.")
    path: str = Field("tests", description="Folder of the project's tests.")
    args: list[str] = Field(default_factory=list, description="Extra pytest arguments.")


class TrainingConfig(_Section):
    """The user's train function and how shipml tracks it."""

    entrypoint: str = Field(
        "train:train", description="module:function of `train(data, params) -> estimator`."
    )
    target: str = Field("target", description="The label column (binary).")
    positive_label: str | int | bool | None = Field(
        None,
        description="The label value that counts as positive (the event, e.g. 'bad'); "
        "default: the second of the sorted labels, as scikit-learn orders classes_.",
    )
    drop: list[str] = Field(
        default_factory=list, description="Columns never given to the model (ids, leaks)."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Passed to train().")
    test_size: float = Field(0.25, gt=0, lt=1, description="Held-out fraction.")
    stratify: bool = Field(True, description="Keep the label balance equal in both splits.")
    seed: int = Field(42, description="Seed of the split; also passed to train() as params.seed.")
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else "
        "sqlite:///<state.dir>/mlflow.db.",
    )
    experiment: str | None = Field(None, description="MLflow experiment; default project name.")

    @field_validator("entrypoint")
    @classmethod
    def _module_function(cls, value: str) -> str:
        module, _, func = value.partition(":")
        if not module or not func:
            raise ValueError(f"expected 'module:function' (e.g. 'train:train'), got {value!r}")
        return value


class Threshold(_Section):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}; swap or fix them")
        return self


class FairnessGate(_Section):
    sensitive: str | None = Field(None, description="Column to compare groups on; None = off.")
    max_demographic_parity_difference: float = Field(
        0.1, ge=0, description="Max gap in positive-prediction rate between groups (fairlearn)."
    )
    max_equalized_odds_difference: float = Field(
        0.2, ge=0, description="Max gap in true/false positive rates between groups (fairlearn)."
    )


class LatencyGate(_Section):
    enabled: bool = Field(True, description="Measure single-row latency in process.")
    max_p99_ms: float = Field(
        50.0,
        gt=0,
        description="Single-row predict p99 in process, of the model's own time (wall time "
        "less waits for a CPU).",
    )
    samples: int = Field(200, ge=20, description="Single-row calls measured.")


class RobustnessGate(_Section):
    enabled: bool = Field(True, description="Perturb inputs and measure how predictions move.")
    noise: float = Field(0.01, ge=0, description="Gaussian noise, as a fraction of each std.")
    max_noise_change: float = Field(0.05, ge=0, description="Max mean |delta probability|.")
    missing_fraction: float = Field(0.1, ge=0, le=1, description="Cells set to missing.")
    max_missing_change: float = Field(0.1, ge=0, description="Max mean |delta probability|.")


class ChampionGate(_Section):
    enabled: bool = Field(True, description="Compare with the current champion, if one exists.")
    metric: Metric = Field("roc_auc", description="The metric compared on the same held-out data.")
    tolerance: float = Field(0.01, ge=0, description="How much worse than champion is allowed.")


class EvaluationConfig(_Section):
    """Gates a trained model must pass before it is registered."""

    decision_threshold: float = Field(
        0.5, gt=0, lt=1, description="Probability above which a row is predicted positive."
    )
    thresholds: dict[Metric, Threshold] = Field(
        default_factory=lambda: {"roc_auc": Threshold(min=0.6)},  # type: ignore[arg-type]
        description="Metric bounds: accuracy, roc_auc, f1, log_loss, brier.",
    )
    fairness: FairnessGate = FairnessGate()
    latency: LatencyGate = LatencyGate()
    robustness: RobustnessGate = RobustnessGate()
    champion: ChampionGate = ChampionGate()
    reports_dir: str | None = Field(
        None, description="Where evaluation reports go; default <state.dir>/reports/evaluation."
    )


class RegistryConfig(_Section):
    """Names in the MLflow Model Registry."""

    model_name: str | None = Field(None, description="Registered model; default project name.")
    candidate_alias: str = Field("candidate", description="Alias set on each new registration.")
    champion_alias: str = Field("champion", description="Alias of the model in production.")


class ServeConfig(_Section):
    """The inference server (`shipml serve`): protocols, limits, batching, logging."""

    host: str = Field("127.0.0.1", description="Bind address; loopback unless you mean it.")
    port: int = Field(8080, ge=0, le=65535, description="Port; 0 picks a free one.")
    workers: int = Field(1, ge=1, description="Server processes sharing the port.")
    max_batch_rows: int = Field(
        2048, ge=1, description="Micro-batching: most rows predicted in one model call."
    )
    max_wait_ms: float = Field(
        2.0, ge=0, description="Micro-batching: longest a request waits for others to join."
    )
    max_queue_rows: int = Field(
        4096, ge=1, description="Rows waiting beyond this are shed with 503 and Retry-After."
    )
    timeout_ms: float = Field(5000, gt=0, description="A request not answered by then gets 504.")
    header_timeout_s: float = Field(
        10,
        gt=0,
        description="A connection that has not sent a request's whole header block within "
        "this (from connect, or from the request's first byte) is closed.",
    )
    body_timeout_s: float = Field(
        30,
        gt=0,
        description="A request body not received whole within this (from the end of its "
        "headers) gets 408 and its connection is closed.",
    )
    stuck_call_s: float = Field(
        10,
        gt=0,
        description="A model call running longer than this marks its variant stuck: /readyz "
        "answers 503 naming it, and its requests get 503 at once until the call returns.",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Larger bodies get 413 without being read whole."
    )
    max_rows: int = Field(10_000, ge=1, description="Most rows accepted in one request.")
    extra_columns: Literal["reject", "drop"] = Field(
        "reject", description="Columns the model's signature lacks: a 422, or dropped."
    )
    missing_values: Literal["reject", "allow"] = Field(
        "allow",
        description="null in a request: a 422, or passed to the model as missing (NaN/None).",
    )
    log_sample_rate: float = Field(
        1.0, ge=0, le=1, description="Fraction of requests written to the inference log."
    )
    admin_token_env: str = Field(
        "SHIPML_ADMIN_TOKEN", description="Environment variable holding the admin API token."
    )
    allow_pickle: bool = Field(
        False,
        description="Load pickled models (serialization_format: cloudpickle), which run any "
        "code they hold when loaded; off: only skops models load.",
    )


class BuildConfig(_Section):
    """The serving image (`shipml build`): base, builder, registry, infra validation."""

    builder: Literal["auto", "docker", "podman", "buildah", "none"] = Field(
        "auto",
        description="auto: the first of docker, podman, buildah that answers; "
        "none: `shipml run` skips the build.",
    )
    base: str = Field(
        "docker.io/library/python:3.11-slim-bookworm"
        "@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91",
        description="Base image with the training run's Python (major.minor), pinned by "
        "digest: NAME@sha256:HEX.",
    )
    base_glibc: str = Field(
        "2.36", description="glibc of the base image (Debian 12: 2.36); wheels are chosen for it."
    )
    arch: Literal["x86_64", "aarch64"] = Field(
        "x86_64", description="CPU of the image; wheels are chosen for it."
    )
    registry: str | None = Field(
        None,
        description="Push to this registry (e.g. ghcr.io/acme) after infra validation; "
        "none keeps the image local.",
    )
    repository: str | None = Field(None, description="Image name; default: the model name.")
    dockerfile: str | None = Field(
        None,
        description="Your own Dockerfile (e.g. from `shipml build --eject`); "
        "default: rendered by shipml at each build.",
    )
    port: int = Field(8080, ge=1, le=65535, description="Port the server listens on in the image.")
    uid: int = Field(10001, ge=1, description="Non-root user id the server runs as.")
    wheelhouse: str | None = Field(
        None,
        description="Take wheels only from this folder (pip --no-index --find-links) "
        "instead of the package index.",
    )
    smoke_test: bool = Field(
        True,
        description="Infra validation gate: start the image, wait for /readyz, compare one "
        "prediction with the in-process one.",
    )
    smoke_timeout_s: float = Field(
        120, gt=0, description="Longest wait for the started image to be ready."
    )

    @field_validator("base")
    @classmethod
    def _pinned(cls, value: str) -> str:
        _, _, digest = value.partition("@sha256:")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(
                f"pin the base image by digest (NAME@sha256:<64 hex>), got {value!r}; "
                f"find it with `docker buildx imagetools inspect NAME` or `buildah inspect NAME`"
            )
        return value


class AnalysisConfig(_Section):
    """Limits a rollout step must stay within; a limit set to null is not checked."""

    interval_s: float = Field(30.0, gt=0, description="Each step is judged over this window.")
    min_requests: int = Field(
        100, ge=1, description="Fewer candidate requests in a window: inconclusive, never a pass."
    )
    max_inconclusive: int = Field(
        10, ge=1, description="Windows in a row without a verdict before the step fails."
    )
    max_error_rate: float | None = Field(
        0.01, ge=0, le=1, description="Server errors (5xx) / requests of the candidate."
    )
    max_invalid_rate: float | None = Field(
        0.05, ge=0, le=1, description="Rejected inputs (4xx) / requests of the candidate."
    )
    max_p99_ms: float | None = Field(None, ge=0, description="Candidate p99 latency limit.")
    max_model_cpu_increase_ms: float | None = Field(
        10.0,
        ge=0,
        description="Latency regression: candidate's median CPU time per model call minus "
        "stable's, in ms (measured alike for both, whatever their traffic shares).",
    )
    max_psi: float | None = Field(
        0.2, ge=0, description="Score distribution shift against stable (PSI, 10 bins)."
    )
    min_agreement: float | None = Field(
        0.9, ge=0, le=1, description="Shadow: share of decisions equal to stable's."
    )
    min_accuracy: float | None = Field(
        None, ge=0, le=1, description="Accuracy on requests whose labels arrived (/feedback)."
    )
    min_scores: int = Field(
        200,
        ge=1,
        description="Scores needed before PSI and agreement are judged (PSI of two equal "
        "models over 200 scores stays below 0.15 in 999 of 1000 windows).",
    )
    replay: bool = Field(
        False,
        description="Local target: replay the held-out rows of the candidate's training "
        "snapshot as labelled synthetic traffic during each step (status says so); with "
        "min_accuracy set, a local release is judged on accuracy too.",
    )
    replay_rate: float = Field(
        200.0,
        gt=0,
        le=2000,
        description="Replay: most synthetic requests a second (a 5% step needs 134/s for "
        "200 scores in a 30 s window).",
    )


class DeployConfig(_Section):
    """Releases (`shipml deploy`): strategy, steps, analysis, and the local target."""

    strategy: Literal["canary", "shadow", "replace"] = Field(
        "canary",
        description="canary: traffic steps; shadow: mirror then replace; replace: at once. "
        "Every step is analysed before the next.",
    )
    shadow_first: bool = Field(True, description="canary: mirror traffic before the first step.")
    steps: list[float] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0],
        description="canary: the candidate's traffic share (%) at each step; ends at 100.",
    )
    analysis: AnalysisConfig = AnalysisConfig()
    in_run: Literal["first", "never"] = Field(
        "first",
        description="`shipml run` starts the local server with the first champion; later "
        "candidates wait for `shipml deploy` (they need traffic to be judged).",
    )
    ready_timeout_s: float = Field(120, gt=0, description="Longest wait for a server to be ready.")

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[float]) -> list[float]:
        if not value or value[-1] != 100 or any(not 0 < w <= 100 for w in value):
            raise ValueError(f"steps are traffic shares in (0, 100] ending at 100, got {value}")
        if value != sorted(value):
            raise ValueError(f"steps must not decrease, got {value}")
        return value


class Config(_Section):
    """shipml.yaml: one section per stage, every field with a default that works locally."""

    project: str = Field(description="Project name; the default model and dataset name.")
    state: StateConfig = StateConfig()
    data: DataConfig = DataConfig()
    validation: ValidationConfig = ValidationConfig()
    tests: TestsConfig = TestsConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    registry: RegistryConfig = RegistryConfig()
    serve: ServeConfig = ServeConfig()
    build: BuildConfig = BuildConfig()
    deploy: DeployConfig = DeployConfig()

    @field_validator("project")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_" for c in value):
            raise ValueError(f"use letters, digits, '-' and '_' only, got {value!r}")
        return value
