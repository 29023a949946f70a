"""The PostgreSQL service when its database cannot take a request: a read-only database (a
streaming replica serving look-ups, docs/trace-api.md "Replicas for look-ups") or one that
refuses connections (down, restarting).  The client is told 503 with Retry-After, which the
agent retries as documented, never a bare 500, and the service recovers by itself."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import psycopg

from scanner_agent.traceserver import TraceServerThread, migrate
from tests.support.postgres import PostgresCluster

TOKEN = "test-token-unavailable"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def batch(batch_id: str) -> dict[str, object]:
    return {
        "batch_id": batch_id,
        "device_id": "dock-1",
        "sent_at": "2026-12-07T13:00:00Z",
        "events": [
            {
                "event_id": f"{batch_id}-{n}",
                "code": f"8{n:019d}",
                "scheme": "cn20",
                "action": "receive",
                "bill": batch_id,
                "scanned_at": "2026-12-07T12:59:00Z",
                "source": "manual",
            }
            for n in range(3)
        ],
    }


def send(url: str, batch_id: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/batches",
        json=batch(batch_id),
        headers={**AUTH, "Idempotency-Key": batch_id},
        timeout=30,
    )


def admin(cluster: PostgresCluster, name: str, sql: str) -> None:
    """Run ``sql`` on the cluster, then end the sessions on ``name`` (the server's pool)."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(sql.encode())
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )


def send_until_stored(url: str, batch_id: str) -> None:
    """Send as the agent does after a 503: again.  A pooled connection the database ended is
    found dead only when used, and answers its request 503 once; the pool holds at most 8."""
    statuses = [send(url, batch_id).status_code for _ in range(9)]
    assert 200 in statuses, statuses
    assert set(statuses[: statuses.index(200)]) <= {503}, statuses


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert "error" in response.json()


def test_a_read_only_database_answers_batches_503_and_still_serves_lookups(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    migrate(postgres_url)
    name = urlsplit(postgres_url).path.lstrip("/")
    with TraceServerThread(postgres_url, TOKEN) as trace:
        assert send(trace.url, "before").status_code == 200
        admin(
            postgres_cluster,
            name,
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = on',
        )
        assert_unavailable(send(trace.url, "on-replica"))
        feed = httpx.get(trace.url + "/v1/events", headers=AUTH, timeout=30)
        assert feed.status_code == 200
        assert len(feed.json()["events"]) == 3
        admin(
            postgres_cluster, name, f'ALTER DATABASE "{name}" RESET default_transaction_read_only'
        )
        send_until_stored(trace.url, "on-replica")


def test_a_database_refusing_connections_answers_503_and_the_service_recovers(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    migrate(postgres_url)
    name = urlsplit(postgres_url).path.lstrip("/")
    with TraceServerThread(postgres_url, TOKEN) as trace:
        assert send(trace.url, "before").status_code == 200
        admin(postgres_cluster, name, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        try:
            assert_unavailable(send(trace.url, "while-down"))
            assert_unavailable(httpx.get(trace.url + "/v1/events", headers=AUTH, timeout=30))
            code = httpx.get(trace.url + f"/v1/codes/8{0:019d}", headers=AUTH, timeout=30)
            assert_unavailable(code)
        finally:
            admin(postgres_cluster, name, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        send_until_stored(trace.url, "while-down")
        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
        assert row == (6, 6)
