"""`python -m shipml` is the `shipml` command."""

from shipml.cli import main

main()
