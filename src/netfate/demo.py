"""`netfate demo`: the roaming case study (netfate.roaming.casestudy)."""

from netfate.roaming.casestudy import run_demo

__all__ = ["run_demo"]
