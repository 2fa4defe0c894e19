"""Model profiles: each owns its spec builder, command line, output conventions, guardrail
test and batch-file rules. A job names its profile (default transfer1); `profile_named`
finds it."""

from __future__ import annotations

from cosmos_driver.errors import ValidationError
from cosmos_driver.profiles import transfer1, transfer2_5, upsampler
from cosmos_driver.profiles.base import ContainerPaths, Profile, RunEnd

__all__ = [
    "DEFAULT",
    "NAMES",
    "UPSAMPLER",
    "ContainerPaths",
    "Profile",
    "RunEnd",
    "profile_named",
]

_PROFILES = {
    module.NAME: Profile(
        name=module.NAME,
        build_spec=module.build_spec,
        command=module.command,
        outputs=module.OUTPUTS,
        guardrail_blocked=module.blocked,
        problems=module.problems,
        build_upscale_spec=getattr(module, "build_upscale_spec", None),
        final_prompt=getattr(module, "final_prompt", None),
    )
    for module in (transfer1, transfer2_5, upsampler)
}
# The profiles a batch file may name; the upsampler is `invoke enhance`'s job kind only.
NAMES = (transfer1.NAME, transfer2_5.NAME)
UPSAMPLER = upsampler.NAME
DEFAULT = transfer1.NAME


def profile_named(name: str) -> Profile:
    """The profile called `name`; an unknown name is an error listing the valid ones."""
    try:
        return _PROFILES[name]
    except KeyError:
        raise ValidationError(
            f"unknown model profile {name!r}; valid: {', '.join(NAMES)}"
        ) from None
