"""Every operation of the SDK, declared once: ``Client`` and ``AsyncClient`` both inherit
``Endpoints``; ``methods.py`` says how one declaration becomes a method of each."""

from __future__ import annotations

from ccat_api.client.operations import Operations
from ccat_api.client.reads import Reads
from ccat_api.client.writes import CriticalWrites


class Endpoints(CriticalWrites, Reads, Operations):
    """The operations both clients offer. The builders take no ``self``: they only describe
    a request, and ``@operation`` turns each into a method of the client that reads it."""
