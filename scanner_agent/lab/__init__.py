"""Lab code: what stands in for the world around the agent in tests, demos and benchmarks.

* :mod:`.alihealth_emulator`: the 码上放心 TOP gateway (bill upload and status);
* :mod:`.epcis_emulator`: an EPCIS 2.0 repository's capture interface;
* :mod:`.simulate`: a handheld scanner's stream of realistic codes;
* :mod:`.demo`: ``scanner-agent demo``, the whole path on loopback.

The daemon never imports this package: the servers here run on uvicorn and
Starlette, which a production agent does not load
(``tests/test_import_hygiene.py`` checks a running daemon for each
``sync.protocol``).  Nothing is imported here, so importing one lab module
never loads the others.
"""

__all__ = ["alihealth_emulator", "demo", "epcis_emulator", "simulate"]
