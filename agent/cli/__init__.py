"""`lineside ...`: every subcommand of the device-side command line, and nothing else."""
