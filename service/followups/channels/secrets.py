"""Secret settings of channels: kept as `SecretStr` so they never show in a repr, registered
for log redaction as soon as they are read, and written in the pipeline file either literally or
as `${VARIABLE}`, read from the environment, so the file itself can be committed without them."""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, SecretStr, ValidationInfo

from service import logs

ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def expand_environment(value: Any, info: ValidationInfo) -> Any:
    """Replace a whole-value `${NAME}` by the variable NAME of the environment.

    The environment is the validation context's `environ` when given (tests, the validator
    command), else the process environment.
    """
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str):
        return value
    match = ENV_REFERENCE.match(value.strip())
    if not match:
        return value
    environ = (info.context or {}).get("environ", os.environ)
    variable = match.group(1)
    if not environ.get(variable):
        raise ValueError(f"environment variable {variable} is not set")
    return environ[variable]


def redact_from_logs(value: SecretStr) -> SecretStr:
    """Keep the secret out of every log line this process writes from now on."""
    logs.add_secrets([value.get_secret_value()])
    return value


Secret = Annotated[SecretStr, BeforeValidator(expand_environment), AfterValidator(redact_from_logs)]
