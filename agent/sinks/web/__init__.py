"""The local status page: a board the agent fills from the detection loop, served read-only."""
