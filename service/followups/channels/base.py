"""What every notification channel is: something that delivers one alert message, and says
whether a failure is worth another try."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from service.errors import NbrelayError
from service.followups.messages import AlertMessage


class ChannelError(NbrelayError):
    """A delivery failed. `permanent` failures (a revoked Slack URL, a refused login) will fail
    the same way every time, so they are recorded instead of retried; `retry_after` is the wait
    the receiver asked for, in seconds. The message never contains a secret."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(ABC):
    """One configured destination. Subclasses render the message in their own format."""

    kind: ClassVar[str]

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def notify(self, message: AlertMessage) -> None:
        """Deliver `message` once; raise ChannelError on failure."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The channel's settings with every secret left out: safe for logs and the API."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
