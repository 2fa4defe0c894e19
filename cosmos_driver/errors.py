"""The error hierarchy: every failure the driver reports is one of these, with a message
that names what went wrong and how to fix it. The CLI prints one line per error."""

from __future__ import annotations


class CosmosError(Exception):
    """Base of every error the toolkit raises on purpose."""

    exit_code = 1


class ValidationError(CosmosError):
    """Bad input (batch file, option, inventory): found before anything is uploaded or started."""

    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ConfigurationError(CosmosError):
    """The toolkit or its environment is not set up (missing inventory, package, lab)."""


class ExecutionError(CosmosError):
    """A playbook or a remote step failed for a reason other than the network."""


class NetworkError(ExecutionError):
    """A host could not be reached or the SSH connection dropped."""


class StoreError(CosmosError):
    """The run store is unreadable, locked or holds a record of an unknown schema."""


class LabError(CosmosError):
    """The local lab host (sshd, dockerd, simulator image) could not be started or stopped."""


class Interrupted(CosmosError):
    """Ctrl-C during a batch: dispatching stopped, started containers keep running."""

    exit_code = 130

    def __init__(self, batch_id: str) -> None:
        super().__init__(
            f"interrupted: batch {batch_id} stopped dispatching; containers already started "
            "keep running.\nResume: run the same command again (it re-attaches to them). "
            f"Stop them: invoke kill --batch {batch_id}"
        )
        self.batch_id = batch_id
