"""The root of nbrelay's exceptions, so callers (the CLI, the web layer) can catch them broadly."""

# What to do when a dependency does not answer: the same advice from `nbrelay doctor` and from
# every other command.
REDIS_FIX = "start Redis, or correct NBRELAY_REDIS_URL"
LOSANT_FIX = "check LOSANT_API_URL and this host's outbound network"


class NbrelayError(Exception):
    """A failure nbrelay can explain in one line."""

    exit_code = 1


class UsageProblem(NbrelayError):
    """The caller asked for something malformed (bad argument, bad file, bad configuration)."""

    exit_code = 2


class Unreachable(NbrelayError):
    """A service nbrelay depends on did not answer. `what` names it (any password masked),
    `reason` says how it failed, `fix` what to check."""

    def __init__(self, what: str, reason: str, fix: str) -> None:
        super().__init__(f"cannot reach {what} ({reason.rstrip('.')}): {fix}")
