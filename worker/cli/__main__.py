"""`python -m worker.cli ...` runs the `smsq` command (the demo starts the sandbox this way)."""

from worker.cli.main import main

main()
