"""Errors a user can act on: bad input files or values. Anything else is a bug to report."""


class InputError(ValueError):
    """Bad input (an unreadable file, an impossible value); the message names the file or key."""
