"""Great Expectations suites: suggest one from a reference snapshot, run it, build Data Docs.

Importing this package does not import Great Expectations or pandas; the functions do.
"""

from shipml.validate._failures import Failure
from shipml.validate.run import ValidationReport, validate
from shipml.validate.suggest import suggest_suite, write_suite

__all__ = ["Failure", "ValidationReport", "suggest_suite", "validate", "write_suite"]
