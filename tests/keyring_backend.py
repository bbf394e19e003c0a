"""A keyring backend for tests: passwords in a JSON file named by ``TEST_KEYRING_FILE``.
Chosen in a child process with ``PYTHON_KEYRING_BACKEND=tests.keyring_backend.FileKeyring``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    @staticmethod
    def _load() -> dict[str, str]:
        path = Path(os.environ["TEST_KEYRING_FILE"])
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        Path(os.environ["TEST_KEYRING_FILE"]).write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError(username)
        Path(os.environ["TEST_KEYRING_FILE"]).write_text(json.dumps(data))
