"""Notifications to a team's chat: a Slack-compatible incoming webhook (``{"text": ...}`` posted
as JSON) told when a batch awaits approval, finishes, or has PAID TWICE. Optional per install.

The URL itself is a secret (whoever has it can post): it is never shown, logged or put in an
error. Posting happens in a thread of its own and never holds up or fails the work it reports."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

TIMEOUT = 5.0  # seconds


@dataclass
class Notifier:
    """Posts to ``url`` (None: notifications off). ``failures`` counts posts that did not arrive."""

    url: str | None = None
    failures: int = 0
    _threads: list[threading.Thread] = field(default_factory=list)

    def tell(self, text: str) -> None:
        if not self.url:
            return
        before = self._threads[-1] if self._threads else None
        thread = threading.Thread(target=self._post, args=(self.url, text, before), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _post(self, url: str, text: str, before: threading.Thread | None) -> None:
        if before is not None:
            before.join(2 * TIMEOUT)  # messages arrive in the order they were told
        body = json.dumps({"text": text}).encode()
        request = urllib.request.Request(  # noqa: S310 - the operator's own https/http webhook URL
            url,
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310 - an operator's URL
                answer.read()
        except (OSError, ValueError):
            self.failures += 1

    def drain(self, timeout: float = TIMEOUT) -> None:
        """Wait for the posts under way (tests, shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]


def check_url(url: str | None, on_error: Callable[[str], Exception]) -> str | None:
    """An http(s) URL, or ``on_error(sentence)`` raised (the URL itself is not repeated)."""
    if url is None or url == "":
        return None
    if not url.startswith(("https://", "http://")):
        raise on_error("the notification webhook must be an http:// or https:// URL")
    return url
