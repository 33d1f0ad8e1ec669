"""The scale-out deployment on one machine (issue #15): `netfate cluster up`."""
