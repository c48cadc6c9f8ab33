"""The one test kit: the people, their tokens, the sample rows and the SOP driver.

Used by the tests of every tier, the benchmarks (``bench/``) and ``renja demo`` (``cli/demo.py``), so a
cycle is driven one way everywhere:

- ``people``: the fictitious people holding the SOP roles (and the auditor), as names/NIPs and ``Actor``\\ s;
- ``tokens``: their bearer tokens from the local development issuer;
- ``rows``: the real Renja 2024 rows of Bapelitbang PPU, split by delivering unit;
- ``driver``: the steps of a cycle as one table, run in-process through the decider (events) or over
  HTTP against the running services; each row's command is built in ``commands``, its request in ``http``;
- ``factories``: single valid events; ``kafkatools``: reading and writing test topics;
  ``servicekit``: a service in-process on its own database; ``metrics``: its ``/metrics`` parsed.

Not a production package: nothing under ``shared/`` or ``services/`` imports it.
"""
