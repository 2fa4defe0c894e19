"""Hand secrets to a running ansible-playbook without writing them anywhere.

ansible-runner writes extravars, envvars and the whole process environment to files
(env/extravars, artifacts/<ident>/command). So a secret such as the Hugging Face token
travels another way: the driver serves it on a Unix socket in a private folder for the
length of one playbook run, and the `cosmos_secret` lookup plugin (lookup_plugins/) asks for
it by name. Only the socket's path reaches the environment."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

# The environment variable that tells the lookup plugin where to ask.
SOCKET_ENV = "COSMOS_SECRET_SOCKET"
_NAME_LIMIT = 256


class SecretChannel:
    """A Unix socket that answers `name\\n` with the JSON-encoded secret (or null)."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self._secrets = dict(secrets)
        # /tmp, not the state dir: socket paths are limited to about 100 characters.
        self._folder = Path(tempfile.mkdtemp(prefix="cosmos-secrets-"))
        self.path = self._folder / "s"
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(self.path))
        self.path.chmod(0o600)
        self._server.listen(8)
        self._thread = threading.Thread(target=self._serve, name="cosmos-secrets", daemon=True)

    def __enter__(self) -> SecretChannel:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop answering and remove the socket's folder."""
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(timeout=2)
        shutil.rmtree(self._folder, ignore_errors=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        try:
            name = conn.makefile("r", encoding="utf-8").readline(_NAME_LIMIT).strip()
            conn.sendall(json.dumps(self._secrets.get(name)).encode() + b"\n")
        except OSError as exc:
            log.debug("secret channel: a request failed: %s", exc)
