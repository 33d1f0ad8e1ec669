"""Errors the platform raises. Each names what is wrong, for the user to read."""


class NetfateError(Exception):
    """Base of every error NetFATE raises on purpose."""


class InvalidInput(NetfateError):
    """Bad input: a malformed descriptor, bundle, topology or request. Nothing was changed."""


class UnknownName(InvalidInput, KeyError):
    """No policy, resolver rule or plugin of the name asked for (a KeyError too, for callers
    that look names up)."""

    def __str__(self) -> str:  # KeyError's would show the message quoted
        return str(self.args[0]) if self.args else ""


class UnsupportedMediaType(InvalidInput):
    """A request body declared (Content-Type) as something the resource does not take."""


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


class ConfigRefused(InvalidInput, DriverError):
    """An NF's lifecycle script refused its configuration on the node: it exited
    EX_CONFIG (78, sysexits.h), e.g. a VPN whose ``psk_file`` is not on the node. The
    user's or operator's configuration is at fault, not the node: 422, and retrying the
    same configuration cannot help (catalogue README, "Script contract"). A DriverError
    too, so every rollback of a failed create still runs."""


# The HTTP status (RFC 9110) that describes each kind of error to a user: in the API's
# problem bodies, and in an LCM operation's error (ETSI SOL003 ProblemDetails) when an agent
# refused for that reason. Anything else is the platform's failure: 5xx.
HTTP_STATUS: dict[type[NetfateError], int] = {  # the first kind that matches, in order
    UnsupportedMediaType: 415, NotFound: 404, Conflict: 409, InvalidInput: 422,
    MissingCapability: 409}


def http_status(exc: BaseException, default: int = 500) -> int:
    """The HTTP status of ``exc`` by its kind (HTTP_STATUS); ``default`` for any other."""
    return next((v for k, v in HTTP_STATUS.items() if isinstance(exc, k)), default)
