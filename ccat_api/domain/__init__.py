"""The critical writes, built: one module per area turns a validated request into a
transaction envelope with pre-generated ids (``observations``, ``raw_data``, ``transfers``),
checking references against the site's replica and buffer; ``context`` is what each builder
is handed, ``references`` the cached reference data it checks against. Computed views over
merged data (``overview``) live here too. Nothing here knows which kind of site it runs at."""
