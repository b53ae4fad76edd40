"""Every error shipml raises on purpose.

    ShipmlError                         base; `exit_code` tells the CLI how to exit
     ├── ConfigError(ValueError)        shipml.yaml or SHIPML_* is wrong          (exit 2)
     ├── UsageError(ValueError)         a command was called with bad arguments  (exit 2)
     ├── SourceError(ValueError)        a data source cannot be read             (exit 2)
     ├── SnapshotError(LookupError)     a snapshot is missing or corrupted       (exit 2)
     ├── TrainingContractError(TypeError) the user's train function breaks the contract (exit 2)
     ├── UserCodeError(RuntimeError)    the project's own code raised (its file:line)  (exit 2)
     ├── RegistryError(RuntimeError)    the model registry refused an operation  (exit 2)
     ├── ModelIntegrityError(RuntimeError) a model's files are not what was registered (exit 2)
     ├── StateError(RuntimeError)       the state store is unreachable or inconsistent (exit 2)
     ├── BuildError(RuntimeError)       an image cannot be built (builder, wheels, model) (exit 2)
     ├── DeployError(RuntimeError)      a deploy target cannot start, load or answer   (exit 2)
     ├── PortError(OSError)             a server's port is taken by another process    (exit 2)
     └── GateFailed(RuntimeError)       a gate said no: validation, tests, evaluation (exit 1)

Messages follow one pattern: what happened, the offending value, and how to fix it, e.g.
"column 'income' is missing from snapshot 3 (expected by suite 'credit'); add it to the
source or remove the expectation". An expected error is printed as that one line by the CLI,
never as a traceback.
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "ConfigError",
    "DeployError",
    "GateFailed",
    "ModelIntegrityError",
    "PortError",
    "RegistryError",
    "ShipmlError",
    "SnapshotError",
    "SourceError",
    "StateError",
    "TrainingContractError",
    "UsageError",
    "UserCodeError",
]


class ShipmlError(Exception):
    """Base of every error shipml raises on purpose."""

    exit_code = 2


class ConfigError(ShipmlError, ValueError):
    """shipml.yaml or a SHIPML_* variable is invalid."""


class UsageError(ShipmlError, ValueError):
    """A command or function was called with arguments that cannot work."""


class SourceError(ShipmlError, ValueError):
    """A data source (CSV, Parquet, SQL) cannot be read."""


class SnapshotError(ShipmlError, LookupError):
    """A snapshot does not exist, or its files no longer match their recorded hashes."""


class TrainingContractError(ShipmlError, TypeError):
    """The user's train function is missing, has the wrong signature, or returned a non-model."""


class UserCodeError(ShipmlError, RuntimeError):
    """The project's own code (its train function or a module it imports) raised. The message
    names the user's file and line and the exception; the full traceback is saved to a file,
    since a trace through shipml, pandas and scikit-learn buries the line that matters."""


class RegistryError(ShipmlError, RuntimeError):
    """The model registry refused an operation (unknown model, version or alias)."""


class ModelIntegrityError(ShipmlError, RuntimeError):
    """A model's files do not match what its registration recorded, it has no such record,
    or it would run code nobody verified (a pickle, a folder served without a registry
    reference); nothing of it is loaded."""


class StateError(ShipmlError, RuntimeError):
    """The state store cannot be reached, or its records are inconsistent."""


class BuildError(ShipmlError, RuntimeError):
    """An image cannot be built: no usable builder, a wheel the training run did not lock, a
    model artifact that does not match its recorded hash, or the builder failed (a failed
    infra validation of a built image is a GateFailed instead)."""


class DeployError(ShipmlError, RuntimeError):
    """A deploy target cannot start a server, load a model or answer (a failed rollout
    analysis is a GateFailed instead)."""


class PortError(ShipmlError, OSError):
    """A server cannot listen on its port: another process holds it (named when it can be
    found), or the address is not allowed. Checked before a run does any work."""


class GateFailed(ShipmlError, RuntimeError):
    """A gate said no. `reasons` lists each failed check in one readable line."""

    exit_code = 1

    def __init__(self, stage: str, reasons: list[str]) -> None:
        self.stage = stage
        self.reasons = list(reasons)
        lines = "\n".join(f"  - {r}" for r in self.reasons)
        super().__init__(f"{stage} gate failed:\n{lines}")
