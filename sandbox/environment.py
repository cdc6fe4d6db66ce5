"""The environment variables a run's processes get: an allow-list, never the sandbox's own.

The sandbox's environment may hold anything its operator set (mail passwords, cloud keys,
webhook URLs, nbrelay's and Losant's tokens). A notebook is untrusted code, so the runner and the
kernel get only the variables named in `defaults.RUN_ENVIRONMENT` (and those starting with one of
`defaults.RUN_ENVIRONMENT_PREFIXES`), plus what the sandbox sets itself. The runner gets the same
list as the kernel: the kernel is its child and may read its parent's environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import sandbox
from sandbox import defaults
from sandbox.workdir import WorkDir

# The folder `sandbox` is imported from, so the runner runs the very code that started it.
CODE_ROOT = str(Path(sandbox.__file__).resolve().parent.parent)


def passed_on(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `environ` on the allow-list."""
    return {
        name: value
        for name, value in environ.items()
        if name in defaults.RUN_ENVIRONMENT or name.startswith(defaults.RUN_ENVIRONMENT_PREFIXES)
    }


def runner_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of `python -m sandbox.runner`."""
    return {**passed_on(environ), "PYTHONPATH": CODE_ROOT}


def kernel_environment(environ: Mapping[str, str], workdir: WorkDir) -> dict[str, str]:
    """The environment of the notebook's kernel: the allow-list, INPUT_DIR and OUTPUT_DIR."""
    return {
        **passed_on(environ),
        "INPUT_DIR": str(workdir.input_dir),
        "OUTPUT_DIR": str(workdir.output_dir),
        # the kernel would otherwise warn on stderr about frozen modules and debugging
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
