"""`python -m streams.cli ...` (the tests and the demo start workers this way)."""

from streams.cli.main import main

raise SystemExit(main())
