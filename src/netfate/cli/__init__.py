"""The `netfate` command line."""
