"""The node agent: the VIM of one NFVI node (CPE, PE or DC)."""
