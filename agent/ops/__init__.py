"""What tells a supervisor the truth: sd_notify and the heartbeat, journald fields, counters."""
