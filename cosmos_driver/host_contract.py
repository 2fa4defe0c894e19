"""The names the driver and a host agree on, spelled once: the job container's name and
labels, the run folder's spec, log, exit and bundle files. The roles get them as extra
variables (`role_vars`); their defaults match, for a play run by hand."""

from __future__ import annotations

from typing import Any

CONTAINER_PREFIX = "cosmos-"
# Labels every job container carries (roles/cosmos_job/vars/main.yml sets them).
RUN_ID_LABEL = "cosmos.run_id"
BATCH_ID_LABEL = "cosmos.batch_id"
HOST_LABEL = "cosmos.host"
# In runs/<run_id>/, on the host and in the state directory alike.
SPEC_FILE = "spec.json"
# The tar of outputs/ and logs/ that collect writes on the host and fetches.
BUNDLE_NAME = "collected.tar"
# Under logs/: the container's output, and its exit as cosmos_container's collect saves it.
CONTAINER_LOG = "container.log"
EXIT_FILE = "container-exit.json"


def container_name(run_id: str) -> str:
    """The job container of `run_id` (one per run, on whatever host it went to)."""
    return f"{CONTAINER_PREFIX}{run_id}"


def run_id_of(container: dict[str, Any]) -> str | None:
    """The run a container found on a host belongs to: its cosmos.run_id label when the
    finder reports labels, else its name; None for a container that is not a job's."""
    labels = container.get("labels")
    if isinstance(labels, dict) and labels.get(RUN_ID_LABEL):
        return str(labels[RUN_ID_LABEL])
    name = str(container.get("name") or "")
    return name.removeprefix(CONTAINER_PREFIX) if name.startswith(CONTAINER_PREFIX) else None


def labels(run_id: str, batch_id: str, host: str) -> dict[str, str]:
    """The labels of a job container: resume finds a batch's containers on a host by them."""
    return {RUN_ID_LABEL: run_id, BATCH_ID_LABEL: batch_id, HOST_LABEL: host}


def role_vars(run_id: str, batch_id: str, host: str) -> dict[str, Any]:
    """The contract's names as the cosmos_job role's variables, for every phase."""
    return {
        "cosmos_job_container_name": container_name(run_id),
        "cosmos_job_labels": labels(run_id, batch_id, host),
        "cosmos_job_bundle_name": BUNDLE_NAME,
        "cosmos_job_log_name": CONTAINER_LOG,
        "cosmos_job_exit_name": EXIT_FILE,
        "cosmos_job_spec_name": SPEC_FILE,
    }


def find_vars(batch_id: str) -> dict[str, Any]:
    """The variables of the find playbook: the labels that pick a batch's containers; the
    playbook adds the host label with each host's own name."""
    return {
        "cosmos_find_batch_id": batch_id,
        "cosmos_find_labels": {BATCH_ID_LABEL: batch_id},
        "cosmos_find_host_label": HOST_LABEL,
    }
