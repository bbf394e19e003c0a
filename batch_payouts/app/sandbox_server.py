"""The offline Kotani sandbox served in the foreground, to try the tool and the API by hand."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from batch_payouts import errors
from batch_payouts.app import options as opts

if TYPE_CHECKING:
    from batch_payouts.sandbox import Knobs


@dataclass(frozen=True)
class SandboxServerOptions:
    """Where to listen, the key it accepts, how webhooks go out, its clock (sandbox seconds per
    real second), its random seed, starting payout balances (major units) and fault knobs."""

    host: str = "127.0.0.1"
    port: int = 8765
    api_key: str = "test-key"
    webhook_secret: str | None = None
    webhook_url: str | None = None
    clock_speed: float = 1.0
    seed: int = 0
    balances: dict[str, Decimal] = field(default_factory=dict)
    knobs: Knobs | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def knobs_from(texts: Iterable[str]) -> Knobs:
    """``NAME=VALUE`` fault knobs (values read as JSON when they are), checked against Knobs."""
    from batch_payouts.sandbox import Knobs

    try:
        return Knobs.model_validate({k: _knob_value(v) for k, v in opts.pairs(texts, "NAME=VALUE").items()})
    except ValueError as exc:
        raise errors.BadValue(str(exc).splitlines()[0] + ": see batch_payouts.sandbox.Knobs", "--knob") from None


def balances_from(texts: Iterable[str]) -> dict[str, Decimal]:
    """``CUR=AMOUNT`` starting balances, currency codes upper-cased."""
    return {k.upper(): opts.amount(v, "--balance") or Decimal(0) for k, v in opts.pairs(texts, "CUR=AMOUNT").items()}


def _knob_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def serve_sandbox(options: SandboxServerOptions, announce: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (blocks); ``announce`` is told the URL once connections are accepted
    (with port 0, the port the system chose)."""
    from batch_payouts.sandbox import SandboxClock, SandboxState
    from batch_payouts.sandbox.server import serve_forever

    state = SandboxState(
        api_key=options.api_key,
        webhook_secret=options.webhook_secret,
        webhook_url=options.webhook_url,
        clock=SandboxClock(speed=options.clock_speed),
        seed_value=options.seed,
        balances=dict(options.balances),
        knobs=options.knobs,
    )
    serve_forever(state, host=options.host, port=options.port, log_level="warning", announce=announce)
