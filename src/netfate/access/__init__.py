"""Each CPE's access services: DHCP and DNS (dnsmasq), and the captive portal that logs
users in through RADIUS and has the orchestrator place their NFs.

- addressing: who gets which address (pure)
- dnsmasq: the DHCP/DNS server in the services namespace
- dhcp_client: busybox udhcpc for the testbed's clients
- portal: the ASGI captive portal, with its outside world injected
- services: the namespace, dnsmasq and portal of one CPE, up and down together
"""
