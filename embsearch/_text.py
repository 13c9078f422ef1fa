"""Text from a user's input made safe to echo in a one-line error message."""

from __future__ import annotations


def printable(text: object, limit: int | None = 200) -> str:
    """``text`` with every character that is not printable (control bytes, newlines, the
    U+FFFD that undecodable bytes became) escaped as ``\\xNN``/``\\uNNNN``, cut to about
    ``limit`` characters (``None``: not cut), saying how much was cut."""
    s = str(text)
    out = "".join(
        ch if ch.isprintable() and ch != "\ufffd" else ch.encode("unicode_escape").decode("ascii")
        for ch in s
    )
    if limit is not None and len(out) > limit:
        return f"{out[:limit]}... ({len(out) - limit} more characters)"
    return out
