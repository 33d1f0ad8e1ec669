"""RADIUS for the captive portals: FreeRADIUS (the real AAA server, from a private config on
loopback) asks the orchestrator about each login through rlm_rest; the portal is a pyrad
client that insists on Message-Authenticators.

- settings: RadiusSettings (NETFATE_RADIUS_*), secrets kept in the state directory
- server:   FreeRadius, the process and its generated configuration
- backend:  the orchestrator's answers (scrypt check, rate limit, stable Framed-IP)
- client:   RadiusClient / authenticate for the portal
- service:  starting it all with the stack
"""
