"""Files the agent writes for other programs to take, rather than sending them itself.

* :mod:`.nhsa`: a bill as 医保 (NHSA) 3505/3506/3502 records, for a pharmacy's
  insurance client (``scanner-agent bill export --format nhsa``).

Submodules are imported only when asked for: the daemon never loads them.
"""

__all__ = ["nhsa"]
