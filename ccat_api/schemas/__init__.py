"""The API contract: request and answer bodies, ``<Thing>Create``, ``<Thing>Update``,
``<Thing>Read``, one module per area. The SDK imports these, so a client and the gateway
validate the same way.

Validation that needs no database lives here, so a malformed body is refused with a 422
naming the field before anything is looked up or buffered.
"""
