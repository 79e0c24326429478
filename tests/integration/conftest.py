"""The integration tests' stack helpers live in tests/support/stack.py, and the
session's `local_stack` fixture in tests/conftest.py (the CLI's tests share it)."""

from tests.support.stack import PORT, STATE_DIR, HttpResult, LocalStack, running_stack

__all__ = ["PORT", "STATE_DIR", "HttpResult", "LocalStack", "running_stack"]
