"""The offline Kotani sandbox: a starlette app that behaves like the provider (docs/provider.md)."""

from batch_payouts.sandbox.app import Sandbox
from batch_payouts.sandbox.server import RunningSandbox, answering_in_process, serve_in_thread
from batch_payouts.sandbox.state import Knobs, SandboxClock, SandboxState

__all__ = [
    "Knobs",
    "RunningSandbox",
    "Sandbox",
    "SandboxClock",
    "SandboxState",
    "answering_in_process",
    "serve_in_thread",
]
