"""Errors the platform raises. Each names what is wrong, for the user to read."""


class NetfateError(Exception):
    """Base of every error NetFATE raises on purpose."""


class InvalidInput(NetfateError):
    """Bad input: a malformed descriptor, bundle, topology or request. Nothing was changed."""


class NotFound(NetfateError):
    """An unknown node, LSI, port, NF or bundle."""


class UnknownFlavour(NotFound):
    """No compute driver for a flavour: none is registered, or the node does not host it."""


class Conflict(NetfateError):
    """The name or resource is already in use."""


class MissingCapability(NetfateError):
    """The node lacks a capability the NF depends on."""


class DriverError(NetfateError):
    """A driver operation failed (a command, a kernel call, OVSDB)."""
