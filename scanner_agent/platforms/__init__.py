"""Real trace platforms beyond Trace API v1: 码上放心 bill upload, GS1 EPCIS 2.0, 医保 export.

Two are sinks of the sync loop, chosen by ``sync.protocol`` and built by the
daemon (``Daemon._build_sink``): ``alihealth`` (:mod:`.alihealth`, closed bills
uploaded over the TOP gateway) and ``epcis`` (:mod:`.epcis_sink` over
:mod:`.epcis_capture`, scans and cartons captured as EPCIS events).  The 医保
(NHSA) export (:mod:`.nhsa`) is a command, ``scanner-agent bill export``, not a
sink: a pharmacy's insurance client takes the file.  Each platform comes with a
loopback emulator for the tests and labs.  Sub-modules are imported only when
chosen, so a Trace API agent never loads them.  See ``docs/platforms.md``.
"""
