"""The checks of a batch file's fields: types, ranges, text and environment rules, and the
documented limits (docs/batch-file.md#limits). Each check returns a problem or None.

A batch file is untrusted input, so a message never echoes a value at length."""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Callable
from typing import Any

from cosmos_driver import profiles

PRESETS = ("very_low", "low", "medium", "high", "very_high")
# Cosmos's T5 text encoder reads 512 tokens of a prompt and drops the rest.
PROMPT_TOKENS = 512
MAX_PROMPT_CHARS = 20_000
MAX_ENV_VALUE_CHARS = 32 * 1024
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The cosmos_job role sets these for every container (its GPU slot, the NVIDIA runtime's
# devices and the toolkit's own settings); a job that overrode them would run on GPUs it
# was not given. COSMOS_SIM_* (the lab simulator's controls, docs/lab.md) is allowed.
RESERVED_ENV_NAMES = ("CUDA_VISIBLE_DEVICES",)
RESERVED_ENV_PREFIXES = ("NVIDIA_", "COSMOS_")
ALLOWED_ENV_PREFIXES = ("COSMOS_SIM_",)

Check = Callable[[Any], str | None]

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlist = _short.maxdict = _short.maxtuple = 4
_short.maxlevel = 2


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut short."""
    return _short.repr(value)


def number(low: float, high: float, integer: bool = False) -> Check:
    """A number (a whole one if `integer`) from `low` to `high`; booleans are not numbers."""
    kind = "a whole number" if integer else "a number"
    span = f"from {low} to {high}" if integer else f"from {low:g} to {high:g}"

    def check(value: Any) -> str | None:
        wrong_type = isinstance(value, bool) or not isinstance(value, int | float)
        if wrong_type or (integer and not isinstance(value, int)):
            return f"must be {kind} {span}, got {shown(value)}"
        if not low <= value <= high:
            return f"must be {span}, got {shown(value)}"
        return None

    return check


def text(value: Any) -> str | None:
    """Non-empty text without NUL characters."""
    if not isinstance(value, str) or not value.strip():
        return f"must be non-empty text, got {shown(value)}"
    return _no_nul(value)


def prompt(value: Any) -> str | None:
    """A prompt: text, at most MAX_PROMPT_CHARS characters."""
    return text(value) or _not_longer(value, MAX_PROMPT_CHARS)


def negative_prompt(value: Any) -> str | None:
    """Any text; an empty one means "no negative prompt", as upstream takes it."""
    if not isinstance(value, str):
        return f'must be text ("" for none), got {shown(value)}'
    return _no_nul(value) or _not_longer(value, MAX_PROMPT_CHARS)


def _no_nul(value: str) -> str | None:
    return "must not contain NUL characters" if "\x00" in value else None


def _not_longer(value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"is {len(value):,} characters long; the limit is {limit:,}"
    return None


def choice(value: Any) -> str | None:
    return None if value in PRESETS else f"must be one of {', '.join(PRESETS)}, got {shown(value)}"


def mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else f"must be a mapping, got {shown(value)}"


def flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {shown(value)}"


def env(value: Any) -> str | None:
    """The shape of `env:`; env_problems checks each variable."""
    if not isinstance(value, dict):
        return "must be a mapping of variable names to values"
    return None


def profile(value: Any) -> str | None:
    if isinstance(value, str) and value in profiles.NAMES:
        return None
    hint = difflib.get_close_matches(str(value)[:64], profiles.NAMES, n=1)
    fix = f"did you mean '{hint[0]}'?" if hint else f"valid: {', '.join(profiles.NAMES)}"
    return f"unknown model profile {shown(value)}; {fix}"


def env_problems(variables: dict[Any, Any]) -> list[tuple[str, str]]:
    """(variable, problem) for each variable of a job's env that cannot be passed as is."""
    found = []
    for name, value in variables.items():
        problem = env_name_problem(name) or env_value_problem(value)
        if problem:
            found.append((str(name)[:64], problem))
    return found


def env_name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        return (
            f"{shown(name)} is not a variable name: use letters, digits and '_', "
            "not starting with a digit"
        )
    if name.startswith(ALLOWED_ENV_PREFIXES):
        return None
    if name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES):
        return (
            "is set by cosmos-driver for every container (GPU slot, NVIDIA runtime); "
            "a job cannot override it: choose the job's GPUs with `gpus:`"
        )
    return None


def env_value_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return f"must be text or a number, got {shown(value)}"
    value = str(value)
    return _no_nul(value) or _not_longer(value, MAX_ENV_VALUE_CHARS)


def estimated_tokens(text_: str) -> int:
    """About how many T5 tokens a prompt takes: its words and punctuation marks, plus a
    quarter for the words the tokenizer splits (an estimate: the tokenizer is on the host)."""
    pieces = len(re.findall(r"\w+|[^\w\s]", text_))
    return pieces + pieces // 4
