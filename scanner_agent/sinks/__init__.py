"""The sync loop's sinks, one package per ``sync.protocol``, each of the same shape.

* :mod:`.alihealth`: 码上放心 bill upload over the TOP gateway (``alihealth``);
* :mod:`.epcis`: GS1 EPCIS 2.0 capture (``epcis``).

The Trace API v1 sink (``trace-api``, the default) is :mod:`scanner_agent.sync`'s
own client.  A sink package is imported only when its protocol is chosen, so
a Trace API agent never loads the platform code.  See ``docs/platforms.md``.
"""

__all__ = ["alihealth", "epcis"]
