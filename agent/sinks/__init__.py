"""I/O at the edge: where results go (SCADA server, journal). The hot loop never waits on them."""
