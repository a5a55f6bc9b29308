"""Only one monitoring cycle at a time: a lease held in the state store.

The lease is one JSON document (``monitoring/lease.json``, next to the state) saved with
compare-and-swap, so exactly one of several cycles starting together creates it:

- acquire: create it if there is none (``If-None-Match: *``); if one is there and has
  expired (its holder crashed), take it over with a write conditional on its version, so of two
  cycles taking over the same expired lease only one wins; if one is there and has not expired,
  refuse with :class:`LeaseHeld` (who holds it, until when).
- release: delete it only if it is still the version this cycle wrote (another cycle may have
  taken it over after it expired).

The TTL must be longer than a cycle including retraining and deployment: a cycle that outlives
it can be overtaken, and then its next state save fails on the state's own compare-and-swap
(``StateConflict``) instead of overwriting the other cycle's work.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Protocol

from monitoring.state import StateConflict

log = logging.getLogger(__name__)

EXIT_LEASE_HELD = 3  # `make monitor` exit status when another cycle holds the lease


class VersionedStore(Protocol):
    """A JSON document with compare-and-swap writes (``monitoring.aws.S3JsonStore``,
    ``LocalJsonStore``)."""

    location: str

    def load(self) -> tuple[dict[str, Any] | None, str | None]: ...

    def save(self, document: Mapping[str, Any], expected: str | None) -> str: ...

    def delete(self, expected: str) -> bool: ...


class LeaseHeld(RuntimeError):
    """Another cycle holds the lease (and it has not expired)."""

    def __init__(self, holder: str, expires_at: str, location: str):
        super().__init__(
            f"another monitoring cycle is running: {holder} holds the lease {location} until "
            f"{expires_at}; not starting a second one (no metrics published, no state written)"
        )
        self.holder, self.expires_at = holder, expires_at


def holder_id() -> str:
    """host:pid:uuid, unique per cycle and telling an operator where it runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


@dataclass
class CycleLease:
    """The lease for one cycle; use as a context manager around the cycle."""

    store: VersionedStore
    ttl: timedelta
    holder: str = ""
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    _version: str | None = field(default=None, init=False, repr=False)  # ours, once held

    def __post_init__(self) -> None:
        if self.ttl <= timedelta(0):
            raise ValueError(f"lease TTL must be positive, got {self.ttl}")
        self.holder = self.holder or holder_id()

    def acquire(self) -> None:
        """Hold the lease or raise :class:`LeaseHeld` (or StateConflict on a lost race)."""
        document, version = self.store.load()
        now = self.clock()
        if document is not None:
            expires = _parse_time(document.get("expires_at"))
            # An unreadable expiry cannot prove the holder is gone: fail closed, refuse.
            if expires is None or expires > now:
                raise LeaseHeld(
                    str(document.get("holder", "an unknown holder")),
                    str(document.get("expires_at")),
                    self.store.location,
                )
            log.warning(
                "lease %s of %s expired at %s (its cycle died?); taking it over",
                self.store.location,
                document.get("holder"),
                document.get("expires_at"),
            )
        lease = {
            "holder": self.holder,
            "acquired_at": now.isoformat(),
            "expires_at": (now + self.ttl).isoformat(),
        }
        try:
            self._version = self.store.save(lease, version)
        except StateConflict as exc:
            # Someone else created or took it over between our read and our write.
            current, _ = self.store.load()
            current = current or {}
            raise LeaseHeld(
                str(current.get("holder", "another cycle")),
                str(current.get("expires_at", "unknown")),
                self.store.location,
            ) from exc

    def release(self) -> None:
        """Give the lease back, unless another cycle took it over after it expired."""
        if self._version is None:
            return
        version, self._version = self._version, None
        try:
            released = self.store.delete(version)
        except Exception:  # the cycle's outcome matters more; the lease still expires
            log.exception(
                "could not release the lease %s; it expires at its TTL (%s)",
                self.store.location,
                self.ttl,
            )
            return
        if not released:
            log.warning(
                "lease %s was no longer ours (it expired and another cycle took it over)",
                self.store.location,
            )

    def __enter__(self) -> "CycleLease":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
