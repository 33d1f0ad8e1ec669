"""The agent's registration, its pure parts: reading the orchestrator's answer (the desired
state, or a refusal and why) and the backoff between attempts."""

from __future__ import annotations

import random
from collections.abc import Callable

from pydantic import ValidationError

from netfate.bus.messages import Command, Reply
from netfate.errors import NetfateError


class RegistrationRefused(NetfateError):
    """The orchestrator answered the registration with a refusal; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"registration refused: {reason}")
        self.reason = reason


def parse_reply(data: bytes) -> Command:
    """The orchestrator's answer to a registration: a Command (op "apply", with the desired
    state). Raises RegistrationRefused for a refusal (a Reply with ok false), and
    pydantic's ValidationError for anything else."""
    try:
        return Command.model_validate_json(data)
    except ValidationError:
        try:
            refusal = Reply.model_validate_json(data)
        except ValidationError:
            pass
        else:
            if not refusal.ok:
                raise RegistrationRefused(refusal.error or "no reason given") from None
        raise


class Backoff:
    """Seconds to wait before each next attempt: `initial`, then times `factor` each time, at
    most `cap`, each stretched by up to `jitter` (a fraction) so that agents refused
    together do not retry in step. `reset()` after a success."""

    def __init__(self, initial: float = 0.5, factor: float = 2.0, cap: float = 10.0,
                 jitter: float = 0.1, rand: Callable[[], float] = random.random) -> None:
        if initial <= 0 or factor < 1 or cap < initial or not 0 <= jitter < 1:
            raise ValueError("backoff needs 0 < initial <= cap, factor >= 1, 0 <= jitter < 1")
        self.initial, self.factor, self.cap, self.jitter = initial, factor, cap, jitter
        self._rand = rand
        self.attempts = 0

    def next(self) -> float:
        """The delay before the next attempt, in seconds (counts one failed attempt)."""
        base = min(self.cap, self.initial * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return base * (1 + self.jitter * self._rand())

    def reset(self) -> None:
        self.attempts = 0
