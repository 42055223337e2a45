"""Keep credentials out of records, config.json, logs and error lines.

Why: an OpenAI-compatible server may echo the request (with its Authorization header) in an error
body, and a `base_url` may carry `user:password@`. Secrets are scrubbed from the whole text FIRST
and the text is cut to length afterwards: cutting first can leave half a key straddling the cut,
which a plain replace no longer finds. URLs written anywhere go through `redact_url`.

    redact_url("http://bob:hunter2@host:8000/v1")       # 'http://***@host:8000/v1'
    scrub_then_cut("... sk-abc123 ...", ["sk-abc123"], 300)
"""

from __future__ import annotations

import base64
import re
from typing import Iterable, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
# user[:password]@ right after a scheme, anywhere in a text (an error message quoting a URL)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")


def redact_url(url: Optional[str]) -> Optional[str]:
    """`url` with any user:password@ replaced by ***@ (None stays None)."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(lambda m: m.group(1) + MASK + "@", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, parts.fragment))


def split_userinfo(url: str) -> tuple[str, Optional[tuple[str, str]]]:
    """(the URL without user:password@, (user, password) or None)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.netloc.rsplit("@", 1)[1]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username), unquote(parts.password or ""))


def url_secrets(url: Optional[str]) -> list[str]:
    """The user name and password inside a URL (as written, decoded, and as a Basic
    Authorization value), for scrubbing texts that quote them."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    out = [s for s in (parts.password, parts.username) if s and len(s) >= 3]
    if parts.username is not None:  # as an HTTP client sends them: Basic base64(user:password)
        raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        out.append(base64.b64encode(raw).decode())
        out += [unquote(s) for s in (parts.password, parts.username) if s and len(unquote(s)) >= 3]
    return out


def scrub(text: str, secrets: Iterable[Optional[str]]) -> str:
    """Every occurrence of each secret (longest first) and any URL userinfo replaced by ***."""
    for s in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(s, MASK)
    return _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)


def scrub_then_cut(text: str, secrets: Iterable[Optional[str]], limit: int) -> str:
    """scrub(), then at most `limit` characters on one line."""
    return scrub(text, secrets).replace("\r", " ").replace("\n", " ").strip()[:limit]
