"""Operations at the edge of the device: bundles, systemd, USB."""
