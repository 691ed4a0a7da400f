"""Where feedback lives: SQLite (embedded default) or PostgreSQL (several replicas).

    FANZHA_FEEDBACK_DB=/var/lib/fanzha/feedback.db           # SQLite, WAL mode
    FANZHA_FEEDBACK_DB=postgresql://fanzha@db.internal/fanzha  # PostgreSQL

The store is append-only: a report is one `feedback` row, and undoing it (`DELETE
/feedback/{id}`) stamps `deleted_at` and appends a `feedback_deletes` row. A replica keeps its
campaign index in memory and follows the store by polling both tables for rows after the last
it saw (serving/feedback/campaigns.py), so every replica, on either database, sees the same
sequence of reports and undos.

PostgreSQL hands out ids before commit, so a row can commit after a higher id was already read.
`rows_after` therefore re-reads an overlap of `OVERLAP` ids below the last one seen there; the
caller skips the rows it already applied. SQLite commits one writer at a time, in id order: no
overlap.

Every database error surfaces as `StoreError` (the service answers `/feedback` with 503 and
keeps classifying); a PostgreSQL store connects (and creates its tables) on first use, so a
service starts while its database is down. SQLite connections use WAL and a busy timeout, so
several worker processes can share one file.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

OVERLAP = 256  # ids re-read below the last one seen (late commits on PostgreSQL)
COLUMNS = ("id", "created_at", "text", "label", "source", "sender", "message_id", "note", "campaign", "deleted_at")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id {serial},
    created_at DOUBLE PRECISION NOT NULL,
    text TEXT NOT NULL,
    label TEXT NOT NULL,
    source TEXT NOT NULL,
    sender TEXT,
    message_id TEXT,
    note TEXT,
    campaign TEXT,
    deleted_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS feedback_created_at ON feedback (created_at);
CREATE TABLE IF NOT EXISTS feedback_deletes (
    seq {serial},
    feedback_id BIGINT NOT NULL,
    deleted_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS review_log (
    id {serial},
    created_at DOUBLE PRECISION NOT NULL,
    action TEXT NOT NULL,
    category TEXT,
    label TEXT,
    reason TEXT,
    score DOUBLE PRECISION,
    fraud_score DOUBLE PRECISION,
    sender TEXT,
    text TEXT NOT NULL,
    sha TEXT
);
CREATE INDEX IF NOT EXISTS review_log_created_at ON review_log (created_at);
CREATE TABLE IF NOT EXISTS console_actions (
    id {serial},
    at DOUBLE PRECISION NOT NULL,
    key_name TEXT NOT NULL,
    action TEXT NOT NULL,
    item TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS console_actions_item ON console_actions (item)
"""
REVIEW_COLUMNS = ("id", "created_at", "action", "category", "label", "reason", "score", "fraud_score", "sender",
                  "text", "sha")
ACTION_COLUMNS = ("id", "at", "key_name", "action", "item", "detail")


class StoreError(RuntimeError):
    """The feedback database cannot be reached or refused the operation."""


def is_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def open_store(target: str | Path) -> "FeedbackStore":
    """A store for a SQLite path or a PostgreSQL URL (StoreError when it cannot be opened)."""
    target = str(target)
    if not target.strip():
        raise StoreError("feedback database: empty path or URL")
    return PostgresStore(target) if is_url(target) else SQLiteStore(target)


class FeedbackStore:
    """The SQL both databases share; subclasses connect and say how parameters are written."""

    placeholder = "?"
    where: str = ""
    schema: str = ""
    overlap = 0  # SQLite has one writer at a time: ids commit in order, nothing to re-read

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn = None

    # -- connection ----------------------------------------------------------------------
    def _connect(self):  # pragma: no cover - per database
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._transaction([(sql, params)])[0]

    def _transaction(self, statements: list[tuple[str, tuple]]) -> list[list[tuple]]:
        """Run the statements in one transaction; each one's rows (a later statement may use
        `{0}` for the first value of the previous one's first row)."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                    cur = self._conn.cursor()
                    for statement in filter(str.strip, self.schema.split(";")):  # first use: create the tables
                        cur.execute(statement)
                    self._conn.commit()
                cur = self._conn.cursor()
                out: list[list[tuple]] = []
                for sql, params in statements:
                    if out and out[-1] and "{0}" in sql:
                        sql = sql.replace("{0}", str(int(out[-1][0][0])))
                    cur.execute(sql.replace("?", self.placeholder), params)
                    out.append(cur.fetchall() if cur.description else [])
                self._conn.commit()
                return out
            except Exception as e:  # noqa: BLE001 — any driver error: the database is unusable now
                self._drop()
                raise StoreError(f"feedback database {self.where}: {type(e).__name__}: {e}".strip()) from None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.rollback()
                conn.close()
            except Exception:  # noqa: BLE001 — already broken
                pass

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- operations ----------------------------------------------------------------------
    def add(self, text: str, label: str, source: str, sender: str | None = None, message_id: str | None = None,
            note: str | None = None, campaign: str | None = None, created_at: float | None = None) -> dict:
        """Insert one report; `campaign=None` founds a new campaign named after the row (`c<id>`)."""
        now = time.time() if created_at is None else created_at
        statements = [("INSERT INTO feedback (created_at, text, label, source, sender, message_id, note, campaign)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                       (now, text, label, source, sender, message_id, note, campaign))]
        if campaign is None:  # founds its own campaign, in the same transaction
            statements.append(("UPDATE feedback SET campaign = 'c' || id WHERE id = {0} RETURNING id", ()))
        fid = int(self._transaction(statements)[0][0][0])
        campaign = campaign or f"c{fid}"
        return {"id": fid, "created_at": now, "text": text, "label": label, "source": source, "sender": sender,
                "message_id": message_id, "note": note, "campaign": campaign, "deleted_at": None}

    def delete(self, fid: int) -> dict | None:
        """Undo a report: the row (with `deleted_at` set), or None for an unknown id. A row
        deleted before keeps its first `deleted_at` and is returned as it is."""
        now = time.time()
        done, rows = self._transaction([
            ("UPDATE feedback SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING id", (now, fid)),
            ("INSERT INTO feedback_deletes (feedback_id, deleted_at) SELECT id, deleted_at FROM feedback "
             "WHERE id = ? AND deleted_at = ? RETURNING seq", (fid, now)),
            (f"SELECT {', '.join(COLUMNS)} FROM feedback WHERE id = ?", (fid,)),
        ])[::2]
        if not rows:
            return None
        return {**dict(zip(COLUMNS, rows[0])), "just_deleted": bool(done)}

    def rows_after(self, last_id: int, since: float = 0.0, limit: int = 50_000, overlap: int | None = None) -> list[dict]:
        """At most `limit` rows with id > last_id - overlap (default: this database's `overlap`)
        created at or after `since`, oldest first."""
        overlap = self.overlap if overlap is None else overlap
        rows = self._execute(f"SELECT {', '.join(COLUMNS)} FROM feedback WHERE id > ? AND created_at >= ? "
                             "ORDER BY id LIMIT ?", (max(0, last_id - overlap), since, limit))
        return [dict(zip(COLUMNS, r)) for r in rows]

    def deletes_after(self, last_seq: int) -> list[tuple[int, int]]:
        """(seq, feedback id) of undos after `last_seq - overlap`, in order."""
        return [(int(s), int(f)) for s, f in self._execute(
            "SELECT seq, feedback_id FROM feedback_deletes WHERE seq > ? ORDER BY seq", (max(0, last_seq - self.overlap),))]

    def iter_rows(self, since: float = 0.0, include_deleted: bool = False, chunk: int = 10_000) -> Iterator[dict]:
        """Every row created at or after `since`, oldest first (for `fanzha feedback export`)."""
        last = 0
        while True:
            rows = self._execute(f"SELECT {', '.join(COLUMNS)} FROM feedback WHERE id > ? AND created_at >= ? "
                                 "ORDER BY id LIMIT ?", (last, since, chunk))
            for r in rows:
                row = dict(zip(COLUMNS, r))
                if include_deleted or row["deleted_at"] is None:
                    yield row
            if len(rows) < chunk:
                return
            last = int(rows[-1][0])

    def last_id(self) -> int:
        """The highest report id (0 for an empty store)."""
        return int(self._execute("SELECT COALESCE(MAX(id), 0) FROM feedback")[0][0])

    def ping(self) -> None:
        self._execute("SELECT 1")

    # -- the console's review log and action log (serving/console) -----------------------
    def add_reviews(self, rows: list[dict]) -> None:
        """Append flagged / blocked decisions (text already masked) to the review log, in one transaction."""
        sql = (f"INSERT INTO review_log ({', '.join(REVIEW_COLUMNS[1:])}) "
               f"VALUES ({', '.join('?' * (len(REVIEW_COLUMNS) - 1))})")
        if rows:
            self._transaction([(sql, tuple(r.get(c) for c in REVIEW_COLUMNS[1:])) for r in rows])

    def reviews(self, actions: tuple[str, ...] = (), category: str | None = None, reason: str | None = None,
                since: float = 0.0, before_id: int | None = None, ids: tuple[int, ...] = (),
                limit: int = 200) -> list[dict]:
        """Review-log rows, newest first, filtered (reason: a prefix such as `threshold` or `campaign:`)."""
        where, params = ["created_at >= ?"], [since]
        if actions:
            where.append(f"action IN ({', '.join('?' * len(actions))})")
            params += list(actions)
        if category:
            where.append("category = ?")
            params.append(category)
        if reason:  # a prefix, compared as text (no LIKE wildcards to escape)
            where.append("substr(reason, 1, CAST(? AS INTEGER)) = ?")
            params += [len(reason), reason]
        if before_id:
            where.append("id < ?")
            params.append(before_id)
        if ids:
            where.append(f"id IN ({', '.join('?' * len(ids))})")
            params += list(ids)
        rows = self._execute(f"SELECT {', '.join(REVIEW_COLUMNS)} FROM review_log WHERE {' AND '.join(where)} "
                             "ORDER BY id DESC LIMIT ?", (*params, limit))
        return [dict(zip(REVIEW_COLUMNS, r)) for r in rows]

    def add_action(self, key_name: str, action: str, item: str | None, detail: str | None) -> int:
        """Record one analyst action (who, when, what, on which item)."""
        return int(self._execute("INSERT INTO console_actions (at, key_name, action, item, detail) "
                                 "VALUES (?, ?, ?, ?, ?) RETURNING id", (time.time(), key_name, action, item, detail))[0][0])

    def actions(self, items: tuple[str, ...] = (), limit: int = 500) -> list[dict]:
        """Actions, newest first; with `items`, only those on these items."""
        if items:
            rows = self._execute(f"SELECT {', '.join(ACTION_COLUMNS)} FROM console_actions WHERE item IN "
                                 f"({', '.join('?' * len(items))}) ORDER BY id DESC LIMIT ?", (*items, limit))
        else:
            rows = self._execute(f"SELECT {', '.join(ACTION_COLUMNS)} FROM console_actions ORDER BY id DESC LIMIT ?",
                                 (limit,))
        return [dict(zip(ACTION_COLUMNS, r)) for r in rows]


class SQLiteStore(FeedbackStore):
    def __init__(self, path: str):
        super().__init__()
        self.path = Path(path)
        self.where = str(self.path)
        if not self.path.parent.is_dir():
            raise StoreError(f"feedback database {self.path}: folder {self.path.parent} does not exist")
        self.schema = _SCHEMA.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT")
        self.ping()  # a file that cannot be created or is not a database fails now, with the reason

    def _connect(self):
        conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses no committed transaction's consistency
        conn.execute("PRAGMA busy_timeout=10000")  # several workers write the same file
        conn.isolation_level = ""  # implicit transactions again: commit() after each statement
        return conn

    def journal_mode(self) -> str:
        return str(self._execute("PRAGMA journal_mode")[0][0])


class PostgresStore(FeedbackStore):
    placeholder = "%s"
    overlap = OVERLAP

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self.where = _redact(url)
        self.schema = _SCHEMA.format(serial="BIGSERIAL PRIMARY KEY")  # created on the first connection

    def _connect(self):
        import psycopg  # only a PostgreSQL deployment needs the driver loaded

        return psycopg.connect(self.url, connect_timeout=3)


def _redact(url: str) -> str:
    """The URL without its password (for error messages and /info)."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, userinfo = head.partition("//")
    return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"


def describe(store: FeedbackStore) -> dict[str, Any]:
    return {"database": "postgresql" if isinstance(store, PostgresStore) else "sqlite", "where": store.where}
