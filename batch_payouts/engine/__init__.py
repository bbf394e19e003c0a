"""Orchestration: validate, plan, submit, settle, results."""
