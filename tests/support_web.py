"""Small helpers for tests that drive pages with their own clients."""

from __future__ import annotations

import re

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token_of(page: str) -> str:
    """The CSRF token in a page's forms."""
    match = _CSRF.search(page)
    assert match, "no CSRF token on the page"
    return match[1]
