"""The emulated edge: OVS node switches, hosts in namespaces, one private OVS instance."""
