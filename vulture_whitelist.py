"""Names vulture reports as unused that are used, each with the reason. Reviewed by hand.

vulture reads this file as code: each bare name below marks that name as used."""

# ruff: noqa: B018, F821

# Invoke passes its Context as the first argument of every task.
c

# The `cosmos` console script (pyproject.toml [project.scripts]).
main

# Part of the documented error hierarchy that the CLI and callers catch.
NetworkError

# Dataclass fields written to run.json / batches/*.json for users and scripts to read.
container_id
logs
at
schema_version
created_at
# The Slurm job and array task of a run, for people and scripts to find it in squeue, sacct.
slurm_job_id
slurm_array_task_id

# A member of the fixed set of failure reasons (docs/design.md, "A job's life").
INVALID_INPUT

# The store's read side, used by the tests and the status commands.
list_runs

# Record fields read by users and the status views.
thumbnails

# The checkpoint manifest API (cosmos_driver/checkpoints.py): read by the tests and the
# `invoke checkpoints.manifest|verify` tasks of issue 3.
manifest_path
load_manifest
manifest_entries_for_module
entries_from_module

# http.server calls a request handler's do_GET and log_message by name (the lab mirror).
do_GET
log_message

# Invoke tasks are found by name (checkpoints.verify).
verify

# reprlib.Repr reads its limits as attributes (batch_checks.shown).
maxstring
maxother
maxlist
maxdict
maxtuple
maxlevel

# PyYAML's dumper asks ignore_aliases (unsafe_vars: no anchors in extra vars).
ignore_aliases

# The dashboard's templates and JSON read these fields (batch_view, input_view).
makespan_s
elapsed_s
remaining_s
modalities

# Starlette calls a BaseHTTPMiddleware's dispatch (dashboard.app.Guard).
dispatch
