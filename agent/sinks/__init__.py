"""I/O out: where results go (SCADA server, journal, explainer). The hot loop never waits."""
