"""Pure event rules: turn detector outputs into alarm edges with debounce and hysteresis."""
