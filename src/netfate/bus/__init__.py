"""The message bus (NATS): subjects, typed messages, and an embedded server for small setups."""
