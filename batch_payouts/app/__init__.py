"""The application layer: one function per use case, shared by every front end.

Nothing here prints, prompts, reads standard input, exits or installs signal handlers: options
come in as data, progress goes out through callbacks, questions to a person are callables the
front end passes in, and failures are the errors of ``batch_payouts.errors``. A run may be
started from any thread (each call runs its own event loop).
"""
