"""shipml: CI/CD for machine-learning models on tabular data."""

__version__ = "0.1.0"
