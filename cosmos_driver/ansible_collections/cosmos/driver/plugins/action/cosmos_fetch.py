"""Fetch one file whose size and SHA-256 the host just reported, checking both here.

ansible.builtin.fetch first runs a stat module on the host to learn the file's checksum:
one more module run (a Python start on the host) between a finished container and its
record, for a tar the collect that wrote it has already described. With privilege
escalation the file may not be readable over SFTP, so that case goes to the builtin fetch."""


# Documented in plugins/modules/cosmos_fetch.py, where ansible-doc looks for action docs.

import hashlib
import os
import tempfile

from ansible.errors import AnsibleActionFail, AnsibleActionSkip
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("src", "dest", "size", "sha256"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [k for k in sorted(self._VALID_ARGS) if args.get(k) in (None, "")]
        if missing:
            raise AnsibleActionFail("cosmos_fetch needs %s" % ", ".join(missing))
        if self._task.check_mode:
            raise AnsibleActionSkip("check mode: nothing is fetched")
        dest = args["dest"]
        if not os.path.isabs(dest):
            dest = self._loader.path_dwim(dest)  # as ansible.builtin.fetch reads a relative dest
        if self._connection.become:
            return self._builtin_fetch(args["src"], dest, task_vars)
        fetched = self._fetch_checked(args["src"], dest, int(args["size"]), str(args["sha256"]))
        result.update(changed=True, dest=dest, **fetched)
        return result

    def _fetch_checked(self, src, dest, size, sha256):
        """Fetch into a temp file beside dest, check size and digest, then rename."""
        folder = os.path.dirname(dest) or "."
        os.makedirs(folder, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=".fetch.", dir=folder)
        os.close(fd)
        try:
            self._connection.fetch_file(src, partial)
            got_size, got_sha256 = file_digest(partial)
            if (got_size, got_sha256) != (size, sha256):
                raise AnsibleActionFail(
                    "fetched %s: %d bytes with sha256 %s, but the host wrote %d bytes with "
                    "sha256 %s; run the phase again" % (src, got_size, got_sha256, size, sha256)
                )
            os.replace(partial, dest)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return dict(size=size, sha256=sha256)

    def _builtin_fetch(self, src, dest, task_vars):
        """ansible.builtin.fetch (remote stat, then slurp if needed) for escalated tasks."""
        task = self._task.copy()
        task.args = dict(src=src, dest=dest, flat=True)
        fetch = self._shared_loader_obj.action_loader.get(
            "ansible.legacy.fetch",
            task=task,
            connection=self._connection,
            play_context=self._play_context,
            loader=self._loader,
            templar=self._templar,
            shared_loader_obj=self._shared_loader_obj,
        )
        return fetch.run(task_vars=task_vars)


def file_digest(path):
    """Size and SHA-256 of a local file, read in 4 MiB blocks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 << 20), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()
