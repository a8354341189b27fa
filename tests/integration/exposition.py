"""Samples read from a Prometheus exposition (the text a /metrics scrape answers)."""

from __future__ import annotations

import re


def metric(text: str, name: str, labels: str | None = None) -> float | None:
    """A sample of the exposition ``text``, None when it is absent."""
    selector = re.escape(name) + (rf"\{{{re.escape(labels)}\}}" if labels else "")
    found = re.search(rf"^{selector} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def site_metric(text: str, name: str, site: str) -> float:
    value = metric(text, name, f'site="{site}"')
    assert value is not None, f"{name} missing"
    return value
