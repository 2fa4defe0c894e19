"""`invoke …` in a checkout: the same namespace as the installed `cosmos` command."""

from cosmos_driver.tasks import namespace as ns  # noqa: F401  (Invoke looks for `ns`)
