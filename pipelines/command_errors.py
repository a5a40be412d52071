"""The failures a `context-lens` command reports in one line, and the exit status of each."""


class CommandError(Exception):
    """A failure the user can act on; printed as one line."""

    exit_code = 1


class Refused(CommandError):
    """A request the command refuses before doing anything (nothing written); exit status 2."""

    exit_code = 2
