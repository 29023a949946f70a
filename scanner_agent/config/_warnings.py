"""What a valid config allows but an operator should hear about at every start."""

from __future__ import annotations

from scanner_agent.config._check import insecure_host, service_url
from scanner_agent.config._model import AgentConfig


def config_warnings(cfg: AgentConfig) -> list[str]:
    """What a valid config allows but an operator should hear about at every start."""
    out: list[str] = []
    key, url = service_url(cfg)
    host = insecure_host(url)
    if host is not None:
        out.append(
            f"{key}: plain http:// to {host!r}, allowed by sync.allow_insecure_http: "
            "the token and every scan cross the network unencrypted"
        )
    if not cfg.sync.verify_tls:
        out.append(
            "sync.verify_tls = false: the service's certificate is not checked, so anyone "
            "on the path can pose as it"
        )
    return out
