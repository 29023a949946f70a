"""Scanner drivers: one module per source type and per device protocol.

Each source (``tcp``, ``replay``, ``serial``, ``hidpos``, ``wedge``, ``camera``)
turns its device's bytes into :class:`scanner_agent.kernel.RawScan` frames and
the committed outcome into the device's feedback; :mod:`drivers.registry` is the
table the config checks ``[[source]]`` tables against and the daemon builds
sources from, and :mod:`drivers.profiles` reads the firmware profiles.  Drivers
import nothing of the agent but :mod:`scanner_agent.kernel` (tests/architecture/test_layers.py).
:mod:`drivers.device` is what every hardware source shares (:mod:`drivers.reader`, the one
reader thread per device, and :mod:`drivers.source_profiles`, what a source reads from its profile).
The package holds no names of its own: import the modules.
"""

__all__: list[str] = []
