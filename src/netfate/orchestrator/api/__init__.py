"""The northbound REST API (FastAPI). ETSI SOL003 names where they fit."""
