"""`python -m agent.cli`: the `lineside` command line."""

from agent.cli.main import main

raise SystemExit(main())
