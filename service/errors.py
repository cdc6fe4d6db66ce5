"""The root of nbrelay's exceptions, so callers (the CLI, the web layer) can catch them broadly."""


class NbrelayError(Exception):
    """A failure nbrelay can explain in one line."""

    exit_code = 1


class UsageProblem(NbrelayError):
    """The caller asked for something malformed (bad argument, bad file, bad configuration)."""

    exit_code = 2
