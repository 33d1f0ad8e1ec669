"""The papers' use cases as runnable scenarios (netfate scenario NAME)."""
