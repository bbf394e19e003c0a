"""The web console: server-rendered pages (Jinja2, autoescaped) over the application layer.

``build_app`` makes the starlette application a server (``batch-payouts serve``) or a test
client runs. Route handlers read a form, call one use case of ``batch_payouts.app`` and render
what it returns; every rule (roles, the two-person rule, the typed total, stages) lives there.
"""

from __future__ import annotations

from batch_payouts.console.routes import build_app

__all__ = ["build_app"]
