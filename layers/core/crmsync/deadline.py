"""A time budget for work that must end before its caller does (an API call has its Lambda's timeout)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Deadline:
    seconds: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def passed(self) -> bool:
        return self.clock() - self.started >= self.seconds

    @classmethod
    def never(cls) -> Deadline:
        return cls(float("inf"))
