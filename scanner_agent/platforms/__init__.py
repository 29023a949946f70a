"""Real trace platforms beyond Trace API v1: 码上放心 bill upload, GS1 EPCIS 2.0, 医保 export.

Each sub-module is self-contained and imported on demand; nothing here is wired
into the sync loop yet (see ``docs/platforms.md``).
"""
