"""I/O at the edge: PLC sources that turn registers and nodes into samples."""
