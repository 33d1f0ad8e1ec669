"""The roaming case study (the NetFATE paper, section IV): traffic probes, logins, the move."""
