"""The SDN controller: desired state per switch (model) -> flows (pure) -> sync -> os-ken app."""
