"""Errors of any CRM adapter, shaped so the CRM writer (and the DLQ listing) can tell what to do with them.

- CrmRejected: the CRM refused records (HTTP 400 / 409, or the failed part of a 207 multi-status). Sending the
  same data again fails the same way, so the record ends in the DLQ with these reasons.
- CrmRateLimited: a rate limit (`policy`: HubSpot's TEN_SECONDLY_ROLLING or DAILY, or crmsync's own budget)
  left no time to wait within this invocation; retry after `retry_after` seconds.
- CrmUnavailable: 5xx, timeouts or connection errors outlasted the adapter's retries; retry later.
- CrmOutcomeUnknown: a create that must happen exactly once got no clear answer; it is never sent again on its own.
- CrmNotConfigured: the backend cannot be used as configured (missing token, unknown backend).

Messages never carry e-mail addresses (they reach logs and DLQ attributes): see `mask`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
MAX_LISTED = 10


def mask(text: str) -> str:
    """The text with every e-mail address reduced to its first letter and domain (jane@x.com -> j***@x.com)."""
    return EMAIL.sub(r"\1***@\2", text)


class CrmError(Exception):
    """A CRM call failed."""


class CrmNotConfigured(CrmError):
    """The CRM backend cannot be used as configured."""


@dataclass(frozen=True)
class RecordError:
    """Why the CRM refused one record: `key` is the record's id value (external id, e-mail masked)."""

    key: str
    message: str
    status: int | None = None
    category: str = ""

    def __str__(self) -> str:
        head = " ".join(part for part in (str(self.status or ""), self.category) if part)
        return f"{mask(self.key)}: {head + ' ' if head else ''}{mask(self.message)}"


class CrmRejected(CrmError):
    """The CRM refused some records; `errors` says which and why. Whatever else the call held was written."""

    def __init__(self, operation: str, errors: Sequence[RecordError]) -> None:
        self.operation = operation
        self.errors = list(errors)
        listed = "; ".join(str(e) for e in self.errors[:MAX_LISTED])
        more = f"; and {len(self.errors) - MAX_LISTED} more" if len(self.errors) > MAX_LISTED else ""
        super().__init__(f"{operation}: the CRM refused {len(self.errors)} record(s): {listed}{more}")


class CrmRateLimited(CrmError):
    """A rate limit with no time left to wait for it in this invocation."""

    def __init__(self, retry_after: float, policy: str, detail: str = "") -> None:
        self.retry_after = retry_after
        self.policy = policy
        super().__init__(
            f"rate limited ({policy}); retry after {retry_after:.1f} s{': ' + mask(detail) if detail else ''}"
        )


class CrmUnavailable(CrmError):
    """The CRM did not answer usefully (5xx, timeout, connection error) after retries; retry later."""


class CrmOutcomeUnknown(CrmError):
    """A create that must happen exactly once may or may not have happened (no clear answer, or a writer died
    while sending it). It is not sent again, so no duplicate is made; an operator checks the CRM and records the
    id, or forgets the claim, before redriving."""
