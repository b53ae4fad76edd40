"""URLs fit for logs, records and screens: a password in the user part shows as ***."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact"]


def redact(url: str) -> str:
    """`url` with the password of its user part masked (`scheme://user:***@host/...`).

    Anything that is not a URL with a user part (a path, a plain name) comes back unchanged;
    a URL that cannot be parsed comes back as a placeholder, never as itself.
    """
    if "://" not in url or "@" not in url:
        return url
    try:
        parts = urlsplit(url)
        user, at, host = parts.netloc.rpartition("@")
    except ValueError:
        return "<unparseable url>"
    if not at:
        return url
    name, colon, _ = user.partition(":")
    netloc = f"{name}{':***' if colon else ''}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
