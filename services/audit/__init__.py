"""The auditor's read-only projection of every Renja: timeline, working-minute durations, hash chain.

Pure core (no I/O): ``workcalendar`` (working minutes on the agency calendar), ``hashchain`` (per-Renja
SHA-256 chain of the events and Ed25519-signed chain heads), ``timeline`` (the SOP step timeline and its
HTML page). The consumer, store and HTTP API build on these.
"""
