"""Writes applied straight to main, never buffered: reference data (programs, sources, obs
units, locations, routes) and what is driven from main (staging jobs, archive transfers).
Critical writes, which must not wait on the WAN, go through ``buffering/`` instead."""
