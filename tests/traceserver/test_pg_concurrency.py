"""PostgreSQL ingests running at once: the ``GET /v1/events`` cursor never skips an event, and
the Trace API's identities hold (a batch, an event id, a code for an action and bill: once).

Real PostgreSQL, real threads, each writer with its own :class:`PgTraceStore` (its own
connections, as a worker process has), and a reader paging the feed while they write.  The
hazard: ``seq`` comes from a sequence, so transactions running side by side commit their
rows out of ``seq`` order; a reader that had paged past a later ``seq`` must still be handed
an earlier one that commits afterwards.
"""

from __future__ import annotations

import json
import threading

import psycopg
import pytest

from scanner_agent.traceserver import migrate
from scanner_agent.traceserver._pgstore import PgTraceStore
from tests.support.polling import wait_for

WRITERS = 4
BATCHES = 25
EVENTS = 12


def payload(batch_id: str, ids: list[str], codes: list[str]) -> dict[str, object]:
    return {
        "batch_id": batch_id,
        "device_id": "dock-1",
        "sent_at": "2026-12-07T08:00:00Z",
        "events": [
            {
                "event_id": event_id,
                "code": code,
                "scheme": "cn20",
                "action": "ship",
                "bill": "B-1",
                "scanned_at": "2026-12-07T08:00:00Z",
                "source": "tcp:dock-1",
            }
            for event_id, code in zip(ids, codes, strict=True)
        ],
    }


def simple(batch_id: str, first: int, count: int) -> dict[str, object]:
    """A batch of ``count`` events of its own, ids ``{batch_id}-{n}``, codes from ``first`` on."""
    ids = [f"{batch_id}-{n}" for n in range(count)]
    return payload(batch_id, ids, [f"8{first + n:019d}" for n in range(count)])


def ingest(store: PgTraceStore, body: dict[str, object]) -> tuple[int, bytes]:
    return store.ingest_batch(str(body["batch_id"]), None, body)


class Reader:
    """Pages the feed like a consumer: remembers its cursor and every event id it was given."""

    def __init__(self, store: PgTraceStore, limit: int = 7) -> None:
        self.store = store
        self.limit = limit
        self.cursor = 0
        self.seen: list[str] = []

    def drain(self) -> None:
        while True:
            events, last = self.store.events_after(self.cursor, self.limit)
            if last is None:
                return
            self.seen += [event["event_id"] for event in events]
            self.cursor = last


@pytest.fixture
def database(postgres_url: str) -> str:
    migrate(postgres_url)
    return postgres_url


def wait_for_lock_wait(url: str) -> None:
    """Until some backend of this database waits on a lock (a blocked ingest)."""
    with psycopg.connect(url, autocommit=True) as conn:

        def waiting() -> bool:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            return bool(row and int(str(row[0])) > 0)

        wait_for(waiting, 30, "the ingest to block on a lock")


def test_the_cursor_never_skips_an_event_that_commits_after_a_later_one(database: str) -> None:
    # Batch A is held in flight (its events written, its transaction open: another
    # connection holds the batch row it must insert) while batch B commits.  A reader
    # paging then, and again after A commits, must be given every event of both.
    with (
        PgTraceStore(database) as first,
        PgTraceStore(database) as second,
        PgTraceStore(database) as feed,
        psycopg.connect(database) as blocker,
    ):
        blocker.execute(
            "INSERT INTO batches (batch_id, body_hash, device_id, sent_at, received_at,"
            " event_count, reply) VALUES ('A', '', 'dock-1', '', now(), 0, '')"
        )
        replies: dict[str, tuple[int, bytes]] = {}
        a = threading.Thread(target=lambda: replies.update(A=ingest(first, simple("A", 0, 5))))
        a.start()
        wait_for_lock_wait(database)
        b = threading.Thread(target=lambda: replies.update(B=ingest(second, simple("B", 5, 5))))
        b.start()
        b.join(5)  # a design that serialises every ingest keeps B waiting behind A: fine too
        reader = Reader(feed)
        reader.drain()
        blocker.rollback()
        a.join(30)
        b.join(30)
        assert not a.is_alive()
        assert not b.is_alive()
        reader.drain()
    assert replies["A"][0] == replies["B"][0] == 200
    assert sorted(reader.seen) == sorted(
        [f"A-{n}" for n in range(5)] + [f"B-{n}" for n in range(5)]
    )


def test_a_reader_paging_during_concurrent_ingests_gets_every_event_once(database: str) -> None:
    sent: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS + 1)

    def writer(w: int) -> None:
        try:
            with PgTraceStore(database) as store:
                start.wait(10)
                for n in range(BATCHES):
                    body = simple(f"w{w}-b{n}", (w * BATCHES + n) * EVENTS, EVENTS)
                    status, reply = ingest(store, body)
                    assert status == 200, reply
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    for w in range(WRITERS):
        sent += [f"w{w}-b{n}-{e}" for n in range(BATCHES) for e in range(EVENTS)]
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    with PgTraceStore(database) as feed:
        reader = Reader(feed, limit=5)
        start.wait(10)
        while any(thread.is_alive() for thread in threads):
            reader.drain()
        for thread in threads:
            thread.join()
        reader.drain()
    assert not errors, errors
    assert len(reader.seen) == len(set(reader.seen)), "an event was handed out twice"
    assert sorted(reader.seen) == sorted(sent), "the cursor skipped an event"


def send(
    barrier: threading.Barrier,
    replies: dict[int, tuple[int, bytes]],
    index: int,
    store: PgTraceStore,
    body: dict[str, object],
) -> None:
    """One of several senders released at once by ``barrier``; its reply lands in ``replies``."""
    barrier.wait(10)
    replies[index] = ingest(store, body)


def test_overlapping_batches_at_once_store_each_event_and_code_once(database: str) -> None:
    # Each round: one batch re-sent under another id (an agent re-splitting after a crash)
    # and a third batch from another dock reading the same codes, all at once.
    rounds = 15
    with (
        PgTraceStore(database) as one,
        PgTraceStore(database) as two,
        PgTraceStore(database) as three,
    ):
        for r in range(rounds):
            codes = [f"8{r * 10 + n:019d}" for n in range(10)]
            ids = [f"r{r}-{n}" for n in range(10)]
            bodies = [
                payload(f"r{r}-x", ids, codes),
                payload(f"r{r}-y", ids[::-1], codes[::-1]),
                payload(f"r{r}-z", [f"r{r}-other-{n}" for n in range(10)], codes),
            ]
            barrier = threading.Barrier(3)
            replies: dict[int, tuple[int, bytes]] = {}
            threads = [
                threading.Thread(target=send, args=(barrier, replies, i, store, body))
                for i, (store, body) in enumerate(zip((one, two, three), bodies, strict=True))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert [replies[i][0] for i in range(3)] == [200, 200, 200]
            statuses = [
                {res["event_id"]: res["status"] for res in json.loads(replies[i][1])["results"]}
                for i in range(3)
            ]
            # Whichever of x, y (same ids) and z commits first holds the codes: x and y
            # agree (the second finds the ids held), z says the opposite.
            for n in range(10):
                same = (statuses[0][ids[n]], statuses[1][ids[n]])
                assert same in (("accepted", "accepted"), ("duplicate", "duplicate"))
                other = statuses[2][f"r{r}-other-{n}"]
                assert (other == "accepted") == (same == ("duplicate", "duplicate"))
        with psycopg.connect(database) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT event_id), count(DISTINCT code) FROM events"
            ).fetchone()
        assert row == (rounds * 10, rounds * 10, rounds * 10)
        assert one.count_batches() == rounds * 3
