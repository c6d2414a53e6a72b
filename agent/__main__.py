"""`python -m agent` is `lineside`."""

from agent.cli import main

raise SystemExit(main())
