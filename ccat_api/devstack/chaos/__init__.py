"""A seeded fault campaign against a whole secondary site: concurrent clients write the
observation life cycle through real gateways while a schedule drawn from one seed kills and
cuts the site's processes and links; a checker then compares the clients' history with what
main and the site hold (``python -m ccat_api.devstack.chaos``, ``make chaos``).

Modules, in the order a campaign uses them: ``history`` (what the clients did and were told),
``faults`` (the schedule and its injectors), ``workload`` (the clients), ``observe`` (what main
and the site hold afterwards), ``checker`` (the verdict, pure), ``campaign`` (all of it on a
stack), ``summary`` (the table).
"""
