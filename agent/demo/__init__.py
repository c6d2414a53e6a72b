"""`lineside demo`: the built-in simulated extrusion line, its fault schedule and live view."""
