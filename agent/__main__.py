"""`python -m agent` is `lineside`."""

from agent.cli.main import main

# Guarded: the explainer's worker is a spawned process, which imports the parent's main module.
if __name__ == "__main__":
    raise SystemExit(main())
