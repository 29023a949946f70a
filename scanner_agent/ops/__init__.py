"""Operations: what runs the agent as a service and checks the box it runs on.

One public module per job, each imported as itself (the package holds no names):

* :mod:`.preflight`: what ``run`` and ``check-config`` refuse before anything starts;
* :mod:`.serve`: ``run`` as one call: the preflight, the process set up, the daemon run;
* :mod:`.doctor`: ``scanner-agent doctor``, every check of a box, as a report;
* :mod:`.install`: install, upgrade and uninstall as a systemd service, the udev rules;
* :mod:`.roles`: which roles (daemon, TUI, camera, ...) this install can play, and the hint
  that names how to add one;
* :mod:`.logs`: logging set-up, secrets never logged, the journal's fields;
* :mod:`.sdnotify`: systemd's readiness and watchdog notifications;
* :mod:`.metrics` and :mod:`.health`: the optional Prometheus endpoint with ``/health`` and
  ``/ready``, which the daemon serves when ``[metrics] listen`` is set (and only then loads,
  with prometheus-client).

It sits in the agent layer (``tests/architecture/test_layers.py``): above the config,
beside the daemon (which uses :mod:`.logs`, :mod:`.sdnotify` and :mod:`.metrics`), below the CLI, whose
commands print what these modules return; nothing here prints.
"""

__all__: list[str] = []
