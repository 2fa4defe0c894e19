"""Model profiles: each owns its spec builder, command line, output conventions, guardrail
test and batch-file rules. A job names its profile (default transfer1); `profile_named`
finds it."""

from __future__ import annotations

from cosmos_driver.errors import ValidationError
from cosmos_driver.profiles import transfer1, transfer2_5
from cosmos_driver.profiles.base import ContainerPaths, Profile, RunEnd

__all__ = ["DEFAULT", "NAMES", "ContainerPaths", "Profile", "RunEnd", "profile_named"]

_PROFILES = {
    module.NAME: Profile(
        name=module.NAME,
        build_spec=module.build_spec,
        command=module.command,
        outputs=module.OUTPUTS,
        guardrail_blocked=module.blocked,
        problems=module.problems,
    )
    for module in (transfer1, transfer2_5)
}
NAMES = tuple(_PROFILES)
DEFAULT = transfer1.NAME


def profile_named(name: str) -> Profile:
    """The profile called `name`; an unknown name is an error listing the valid ones."""
    try:
        return _PROFILES[name]
    except KeyError:
        raise ValidationError(
            f"unknown model profile {name!r}; valid: {', '.join(NAMES)}"
        ) from None
