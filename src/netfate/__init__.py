"""NetFATE: network functions at the edge that follow their users."""

__version__ = "0.1.0"
