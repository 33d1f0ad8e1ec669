"""The orchestrator: orchestration engine [NFVO], NF coordinator [VNFM], northbound API, NFVI
database."""
