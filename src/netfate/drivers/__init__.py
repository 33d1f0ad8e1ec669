"""Drivers: the only code with side effects on the kernel, OVS and processes."""
