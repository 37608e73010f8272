"""Passive outlier ejection of one pool member, as Envoy's outlier detection does it
(level 0: pure, times passed in).

In rotation, a member is taken out by `after` consecutive connect failures or
accept-then-close answers, or by `server_errors` consecutive 5xx answers (only while
another member can serve: a lone upstream's 5xx are the client's answer, not a reason
for 503). Out, it stays out for its back-off (`base` seconds, doubling per repeat up
to `max_doublings`; forgotten after `forgive` seconds back in rotation), and comes
back on the first good probe after that. While no other member serves, the first good
probe brings it back at once: holding the only upstream out would only turn answers
into 503s.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Why a member was taken out (a metric label: a closed set)."""

    CONNECT = "connect"  # refused, unreachable, DNS
    SERVER_ERRORS = "server_errors"  # a burst of 5xx
    CLOSED = "closed"  # accepted, then closed or reset before any answer


class Event(StrEnum):
    ANSWERED = "answered"  # any answer below 500
    SERVER_ERROR = "server_error"  # a 5xx answer
    CONNECT = "connect"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class EjectionPolicy:
    after: int = 3
    server_errors: int = 5  # 0: never for 5xx
    base: float = 5.0
    max_doublings: int = 4
    forgive: float = 60.0

    def __post_init__(self) -> None:
        if self.after < 1 or self.server_errors < 0 or self.max_doublings < 0:
            raise ValueError("after >= 1, server_errors >= 0, max_doublings >= 0")
        if not self.base > 0 or self.forgive < 0:
            raise ValueError("base must be positive, forgive >= 0")


class Ejection:
    """In rotation or out; what the next probe may change."""

    __slots__ = (
        "_connect",
        "_errors",
        "_policy",
        "_readmitted",
        "ejections",
        "reason",
        "until",
        "up",
    )

    def __init__(self, policy: EjectionPolicy) -> None:
        self._policy = policy
        self._connect = 0  # consecutive connect failures / accept-then-close
        self._errors = 0  # consecutive 5xx
        self._readmitted: float | None = None
        self.ejections = 0  # the repeat count the back-off doubles with
        self.up = True
        self.until: float | None = None  # out: earliest readmission
        self.reason: Reason | None = None  # out: why

    def record(self, event: Event, now: float, *, others_up: bool) -> Reason | None:
        """One request's outcome; the reason when it took the member out. Outcomes of
        requests still finishing while the member is out change nothing."""
        if not self.up:
            return None
        policy = self._policy
        if event is Event.ANSWERED:
            self._connect = self._errors = 0
            return None
        if event is Event.SERVER_ERROR:
            self._connect = 0
            self._errors += 1
            if policy.server_errors and self._errors >= policy.server_errors and others_up:
                return self._eject(Reason.SERVER_ERRORS, now)
            return None
        self._connect += 1
        if self._connect >= policy.after:
            return self._eject(Reason.CONNECT if event is Event.CONNECT else Reason.CLOSED, now)
        return None

    def probed(self, ok: bool, now: float, *, others_up: bool) -> bool:
        """A /health probe's result while out; True when it brought the member back."""
        if self.up or not ok:
            return False
        if others_up and self.until is not None and now < self.until:
            return False
        self.up = True
        self.until = self.reason = None
        self._connect = self._errors = 0
        self._readmitted = now
        return True

    def remaining(self, now: float) -> float | None:
        """Seconds of back-off left while out (0 once only a probe is missing)."""
        if self.up or self.until is None:
            return None
        return max(0.0, self.until - now)

    def _eject(self, reason: Reason, now: float) -> Reason:
        policy = self._policy
        if self._readmitted is not None and now - self._readmitted >= policy.forgive:
            self.ejections = 0
        self.ejections += 1
        doublings = min(self.ejections - 1, policy.max_doublings)
        self.up = False
        self.until = now + policy.base * 2**doublings
        self.reason = reason
        return reason


__all__ = ["Ejection", "EjectionPolicy", "Event", "Reason"]
