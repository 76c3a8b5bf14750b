"""Errors a user can act on: bad input files or values. Anything else is a bug to report."""

import difflib


class InputError(ValueError):
    """Bad input (an unreadable file, an impossible value); the message names the file or key."""


def did_you_mean(words, allowed) -> str:
    """`` (did you mean 'x'?)`` for the first of ``words`` one small edit from an allowed name, else ''."""
    names = [str(a) for a in allowed]
    for word in [words] if isinstance(words, str) else words:
        close = difflib.get_close_matches(str(word), names, n=1, cutoff=0.7)
        if close:
            return f" (did you mean {close[0]!r}?)"
    return ""
