"""A simulated extrusion line: a process model with injectable faults behind a Modbus TCP PLC."""
