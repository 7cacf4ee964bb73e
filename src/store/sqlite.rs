//! The SQLite store: one file, WAL journal, one connection behind a mutex.
//!
//! `synchronous = NORMAL` in WAL mode means a commit survives a crash of
//! the process; only a power cut can lose the last transactions.
//!
//! In that mode the only fsyncs are a checkpoint's. SQLite would run one
//! inside whichever commit crosses the WAL's size threshold, putting
//! milliseconds of disk wait in front of a notification now and then (the
//! alert-latency p99 went from 1.5 ms on tmpfs to 6 ms on disk). So the
//! write connection never checkpoints, and a [`Checkpointer`] thread with
//! its own connection does it, passively, beside the writers.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::check::model::{Alert, AlertType, Check};
use crate::check::SeriesState;
use crate::check::{Changes, NewNotification, Notification, NotificationStatus, Store, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checks (
    id   TEXT PRIMARY KEY,
    name TEXT UNIQUE,
    doc  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS series (
    check_id TEXT NOT NULL,
    series   TEXT NOT NULL,
    doc      TEXT NOT NULL,
    PRIMARY KEY (check_id, series)
);
CREATE TABLE IF NOT EXISTS alerts (
    id        TEXT PRIMARY KEY,
    check_id  TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    doc       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_check ON alerts (check_id, timestamp DESC);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (timestamp DESC);
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    check_id     TEXT NOT NULL,
    doc          TEXT NOT NULL,
    status       TEXT NOT NULL,
    not_before   INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt);
";

/// How often the checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    _checkpointer: Option<Checkpointer>,
}

/// Runs `wal_checkpoint(PASSIVE)` on its own connection every
/// [`CHECKPOINT_EVERY`]; stops when dropped.
#[derive(Debug)]
struct Checkpointer {
    // Dropping the sender wakes and ends the thread.
    _stop: std::sync::mpsc::SyncSender<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let (stop, stopped) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "SQLite checkpoint failed; will retry.");
                    }
                }
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })
            .map_err(StoreError::Io)?;
        Ok(Checkpointer { _stop: stop })
    }
}

/// Creates the database file readable by its owner only (it holds webhook
/// URLs and PagerDuty keys), or takes an existing one down to that. SQLite
/// gives its `-wal` and `-shm` files the database's mode.
fn restrict(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(StoreError::Io)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(StoreError::Io)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        restrict(path)?;
        let mut store = Self::init(Connection::open(path)?)?;
        store.conn().pragma_update(None, "wal_autocheckpoint", 0)?;
        store._checkpointer = Some(Checkpointer::start(path)?);
        Ok(store)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        allow_nameless_checks(&conn)?;
        // A delivery interrupted by a crash may or may not have reached its
        // endpoint: send it again (at least once) rather than never.
        conn.execute(
            "UPDATE outbox SET status = 'pending' WHERE status = 'sending'",
            [],
        )?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            _checkpointer: None,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn status_str(s: NotificationStatus) -> &'static str {
    match s {
        NotificationStatus::Pending => "pending",
        NotificationStatus::Delivered => "delivered",
        NotificationStatus::Failed => "failed",
        NotificationStatus::Superseded => "superseded",
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(Box::new(e))
    }
}

/// Stores made before checks could be nameless required a name; a
/// nameless check (Seyren stores `{}`) is kept with a NULL one, which
/// UNIQUE lets repeat.
fn allow_nameless_checks(conn: &Connection) -> Result<(), StoreError> {
    let name_required: bool = conn.query_row(
        "SELECT \"notnull\" FROM pragma_table_info('checks') WHERE name = 'name'",
        [],
        |r| r.get(0),
    )?;
    if name_required {
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE checks_nameless (id TEXT PRIMARY KEY, name TEXT UNIQUE, doc TEXT NOT NULL);
             INSERT INTO checks_nameless SELECT id, NULLIF(name, ''), doc FROM checks ORDER BY rowid;
             DROP TABLE checks;
             ALTER TABLE checks_nameless RENAME TO checks;
             COMMIT;",
        )?;
    }
    Ok(())
}

fn map_unique(e: rusqlite::Error, name: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::DuplicateName(name.to_string())
        }
        _ => StoreError::from(e),
    }
}

impl Store for SqliteStore {
    fn scan_checks(&self, each: &mut dyn FnMut(Check)) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT doc FROM checks ORDER BY rowid")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let doc = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            each(serde_json::from_str(doc)?);
        }
        Ok(())
    }

    fn get_check(&self, id: &str) -> Result<Option<Check>, StoreError> {
        let doc: Option<String> = self
            .conn()
            .query_row("SELECT doc FROM checks WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        doc.map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(Into::into)
    }

    fn put_check(&self, check: &Check) -> Result<(), StoreError> {
        let doc = serde_json::to_string(check)?;
        self.conn()
            .execute(
                "INSERT INTO checks (id, name, doc) VALUES (?1, NULLIF(?2, ''), ?3)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc",
                params![check.id, check.name, doc],
            )
            .map_err(|e| map_unique(e, &check.name))?;
        Ok(())
    }

    fn put_checks(&self, checks: &[&Check]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO checks (id, name, doc) VALUES (?1, NULLIF(?2, ''), ?3)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc",
            )?;
            for c in checks {
                put.execute(params![c.id, c.name, serde_json::to_string(c)?])
                    .map_err(|e| map_unique(e, &c.name))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn delete_check(&self, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute("DELETE FROM checks WHERE id = ?1", [id])?;
        tx.execute("DELETE FROM series WHERE check_id = ?1", [id])?;
        tx.execute("DELETE FROM alerts WHERE check_id = ?1", [id])?;
        tx.execute(
            "DELETE FROM outbox WHERE check_id = ?1 AND status = 'pending'",
            [id],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn load_series(&self) -> Result<Vec<(String, String, SeriesState)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT check_id, series, doc FROM series")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(c, s, d)| Ok((c, s, serde_json::from_str(&d)?)))
            .collect()
    }

    fn commit(&self, batch: &Changes) -> Result<Vec<Notification>, StoreError> {
        let now = crate::unix_now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut created = Vec::with_capacity(batch.notifications.len());
        {
            let mut put_series = tx.prepare_cached(
                "INSERT INTO series (check_id, series, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT(check_id, series) DO UPDATE SET doc = excluded.doc",
            )?;
            for (check, series, state) in &batch.series {
                put_series.execute(params![check, series, serde_json::to_string(state)?])?;
            }
            let mut forget =
                tx.prepare_cached("DELETE FROM series WHERE check_id = ?1 AND series = ?2")?;
            for (check, series) in &batch.forget_series {
                forget.execute(params![check, series])?;
            }
            let mut put_alert = tx.prepare_cached(
                "INSERT INTO alerts (id, check_id, timestamp, doc) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for a in &batch.alerts {
                put_alert.execute(params![
                    a.id,
                    a.check_id,
                    a.timestamp,
                    serde_json::to_string(a)?
                ])?;
            }
            for (id, state, last_check) in &batch.check_states {
                let doc: Option<String> = tx
                    .query_row("SELECT doc FROM checks WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?;
                if let Some(doc) = doc {
                    let mut check: Check = serde_json::from_str(&doc)?;
                    check.state = *state;
                    check.last_check = Some(*last_check);
                    tx.execute(
                        "UPDATE checks SET doc = ?2 WHERE id = ?1",
                        params![id, serde_json::to_string(&check)?],
                    )?;
                }
            }
            let mut put_note = tx.prepare_cached(
                "INSERT INTO outbox (check_id, doc, status, not_before, next_attempt, created, updated)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?5)",
            )?;
            for n in &batch.notifications {
                // Claimed in the same transaction, so the first delivery
                // needs no second commit of its own.
                let due = n.not_before_ms <= now;
                put_note.execute(params![
                    n.check.id,
                    serde_json::to_string(n)?,
                    if due { "sending" } else { "pending" },
                    n.not_before_ms,
                    now
                ])?;
                if due {
                    created.push(Notification {
                        id: tx.last_insert_rowid(),
                        body: n.clone(),
                        attempts: 0,
                        created_ms: now,
                    });
                }
            }
        }
        tx.commit()?;
        Ok(created)
    }

    fn alerts(
        &self,
        check_id: Option<&str>,
        start: usize,
        items: usize,
    ) -> Result<(Vec<Alert>, usize), StoreError> {
        let conn = self.conn();
        let limit = if items == 0 { -1 } else { items as i64 };
        let (docs, total) = match check_id {
            Some(id) => {
                let total: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM alerts WHERE check_id = ?1",
                    [id],
                    |r| r.get(0),
                )?;
                let mut stmt = conn.prepare_cached(
                    "SELECT doc FROM alerts WHERE check_id = ?1 ORDER BY timestamp DESC, rowid DESC LIMIT ?2 OFFSET ?3",
                )?;
                let docs = stmt
                    .query_map(params![id, limit, start as i64], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                (docs, total)
            }
            None => {
                let total: i64 = conn.query_row("SELECT COUNT(*) FROM alerts", [], |r| r.get(0))?;
                let mut stmt = conn.prepare_cached(
                    "SELECT doc FROM alerts ORDER BY timestamp DESC, rowid DESC LIMIT ?1 OFFSET ?2",
                )?;
                let docs = stmt
                    .query_map(params![limit, start as i64], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                (docs, total)
            }
        };
        let alerts = docs
            .iter()
            .map(|d| serde_json::from_str(d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((alerts, total as usize))
    }

    fn delete_alerts(&self, check_id: &str, before_ms: Option<i64>) -> Result<usize, StoreError> {
        let n = match before_ms {
            Some(t) => self.conn().execute(
                "DELETE FROM alerts WHERE check_id = ?1 AND timestamp < ?2",
                params![check_id, t],
            )?,
            None => self
                .conn()
                .execute("DELETE FROM alerts WHERE check_id = ?1", [check_id])?,
        };
        Ok(n)
    }

    fn due_notifications(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, doc, attempts, created FROM outbox
             WHERE status = 'pending' AND next_attempt <= ?1 AND not_before <= ?1
             ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![now_ms, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, doc, attempts, created_ms)| {
                let body: NewNotification = serde_json::from_str(&doc)?;
                Ok(Notification {
                    id,
                    body,
                    attempts,
                    created_ms,
                })
            })
            .collect()
    }

    fn claim_notification(&self, id: i64) -> Result<bool, StoreError> {
        let now = crate::unix_now_ms();
        let n = self.conn().execute(
            "UPDATE outbox SET status = 'sending', updated = ?2 WHERE id = ?1 AND status = 'pending'",
            params![id, now],
        )?;
        Ok(n == 1)
    }

    fn release_notification(&self, id: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outbox SET status = 'pending' WHERE id = ?1 AND status = 'sending'",
            [id],
        )?;
        Ok(())
    }

    fn defer_notification(&self, id: i64, until_ms: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outbox SET status = 'pending', next_attempt = ?2, updated = ?3 WHERE id = ?1",
            params![id, until_ms, crate::unix_now_ms()],
        )?;
        Ok(())
    }

    fn finish_notification(
        &self,
        id: i64,
        status: NotificationStatus,
        error: Option<&str>,
        retry_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let now = crate::unix_now_ms();
        let conn = self.conn();
        match retry_at_ms {
            Some(at) => conn.execute(
                "UPDATE outbox SET status = 'pending', attempts = attempts + 1, last_error = ?2, next_attempt = ?3, updated = ?4 WHERE id = ?1",
                params![id, error, at, now],
            )?,
            None => conn.execute(
                "UPDATE outbox SET status = ?2, attempts = attempts + 1, last_error = ?3, updated = ?4 WHERE id = ?1",
                params![id, status_str(status), error, now],
            )?,
        };
        Ok(())
    }

    fn series_state(&self, check_id: &str, series: &str) -> Result<Option<AlertType>, StoreError> {
        let doc: Option<String> = self
            .conn()
            .query_row(
                "SELECT doc FROM series WHERE check_id = ?1 AND series = ?2",
                [check_id, series],
                |r| r.get(0),
            )
            .optional()?;
        Ok(doc
            .map(|d| serde_json::from_str::<SeriesState>(&d))
            .transpose()?
            .map(|s| s.state))
    }

    fn notification_counts(&self) -> Result<Vec<(NotificationStatus, usize)>, StoreError> {
        let conn = self.conn();
        let mut out = Vec::new();
        for s in [
            NotificationStatus::Pending,
            NotificationStatus::Delivered,
            NotificationStatus::Failed,
            NotificationStatus::Superseded,
        ] {
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM outbox WHERE status = ?1",
                [status_str(s)],
                |r| r.get(0),
            )?;
            out.push((s, n as usize));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::model::Subscription;
    use crate::check::NotificationKind;

    fn check(id: &str, name: &str) -> Check {
        let mut c: Check = serde_json::from_value(serde_json::json!({"name": name, "target": "a.*", "warn": 1, "error": 2, "enabled": true, "live": true})).unwrap();
        c.id = id.into();
        c
    }

    fn alert(id: &str, check: &str, ts: i64) -> Alert {
        Alert {
            id: id.into(),
            check_id: check.into(),
            value: Some(3.0),
            target: "a.b".into(),
            warn: None,
            error: None,
            from_type: AlertType::Ok,
            to_type: AlertType::Error,
            timestamp: ts,
            detected_timestamp: None,
        }
    }

    #[test]
    fn checks_round_trip_and_names_are_unique() {
        let s = SqliteStore::in_memory().unwrap();
        s.put_check(&check("1", "one")).unwrap();
        s.put_check(&check("2", "two")).unwrap();
        assert!(matches!(
            s.put_check(&check("3", "one")),
            Err(StoreError::DuplicateName(_))
        ));
        let mut c = check("1", "uno");
        c.description = Some("renamed".into());
        s.put_check(&c).unwrap();
        assert_eq!(s.get_check("1").unwrap().unwrap().name, "uno");
        assert_eq!(s.load_checks().unwrap().len(), 2);
        assert!(s.delete_check("2").unwrap());
        assert!(!s.delete_check("2").unwrap());
    }

    #[test]
    fn nameless_checks_repeat_and_old_stores_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // A store as written before names could be empty.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE checks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);",
            )
            .unwrap();
            let doc = serde_json::to_string(&check("1", "one")).unwrap();
            conn.execute("INSERT INTO checks VALUES ('1', 'one', ?1)", [doc.as_str()])
                .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.get_check("1").unwrap().unwrap().name, "one", "kept");
        s.put_check(&check("2", "")).unwrap();
        s.put_check(&check("3", "")).unwrap();
        assert!(matches!(
            s.put_check(&check("4", "one")),
            Err(StoreError::DuplicateName(_))
        ));
        assert_eq!(s.load_checks().unwrap().len(), 3);
        drop(s);
        // Opening again finds nothing left to migrate.
        assert_eq!(
            SqliteStore::open(&path)
                .unwrap()
                .load_checks()
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn commit_is_atomic_and_paging_is_newest_first() {
        let s = SqliteStore::in_memory().unwrap();
        s.put_check(&check("c", "c")).unwrap();
        let sub: Subscription = serde_json::from_value(
            serde_json::json!({"type": "HTTP", "target": "http://x", "enabled": true}),
        )
        .unwrap();
        let batch = Changes {
            series: vec![("c".into(), "a.b".into(), SeriesState::new())],
            alerts: (0..5).map(|i| alert(&format!("a{i}"), "c", i)).collect(),
            check_states: vec![("c".into(), AlertType::Error, 99)],
            notifications: vec![NewNotification {
                kind: NotificationKind::Change,
                check: check("c", "c"),
                subscription: sub,
                alerts: vec![alert("a4", "c", 4)],
                not_before_ms: 0,
            }],
            ..Changes::default()
        };
        let created = s.commit(&batch).unwrap();
        assert_eq!(created.len(), 1, "due now, so handed over claimed");
        assert!(s.due_notifications(i64::MAX, 10).unwrap().is_empty());
        assert!(!s.claim_notification(created[0].id).unwrap());
        s.release_notification(created[0].id).unwrap();
        let (page, total) = s.alerts(Some("c"), 1, 2).unwrap();
        assert_eq!(total, 5);
        assert_eq!(
            page.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["a3", "a2"]
        );
        assert_eq!(s.get_check("c").unwrap().unwrap().state, AlertType::Error);
        assert_eq!(s.load_series().unwrap().len(), 1);
        let due = s.due_notifications(1, 10).unwrap();
        assert_eq!(due.len(), 1);
        s.finish_notification(
            due[0].id,
            NotificationStatus::Pending,
            Some("refused"),
            Some(1000),
        )
        .unwrap();
        assert!(
            s.due_notifications(999, 10).unwrap().is_empty(),
            "retry waits"
        );
        assert_eq!(s.due_notifications(1000, 10).unwrap()[0].attempts, 1);
        s.finish_notification(due[0].id, NotificationStatus::Delivered, None, None)
            .unwrap();
        assert!(s.due_notifications(i64::MAX, 10).unwrap().is_empty());
        assert_eq!(s.delete_alerts("c", Some(2)).unwrap(), 2);
        assert_eq!(s.alerts(None, 0, 0).unwrap().1, 3);
    }

    #[test]
    fn a_delivery_interrupted_by_a_crash_is_retried_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let id = {
            let s = SqliteStore::open(&path).unwrap();
            s.put_check(&check("c", "c")).unwrap();
            let sub: Subscription = serde_json::from_value(
                serde_json::json!({"type": "HTTP", "target": "http://x", "enabled": true}),
            )
            .unwrap();
            let n = NewNotification {
                kind: NotificationKind::Change,
                check: check("c", "c"),
                subscription: sub,
                alerts: vec![],
                not_before_ms: 0,
            };
            let id = s
                .commit(&Changes {
                    notifications: vec![n],
                    ..Changes::default()
                })
                .unwrap()[0]
                .id;
            assert!(
                s.due_notifications(i64::MAX, 10).unwrap().is_empty(),
                "claimed"
            );
            id
        };
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.due_notifications(i64::MAX, 10).unwrap()[0].id, id);
    }

    /// The store holds webhook URLs and PagerDuty keys: owner-only, the
    /// WAL and shared-memory files too, and an old world-readable file is
    /// tightened when opened.
    #[test]
    fn the_database_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cw.db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = SqliteStore::open(&path).unwrap();
        store.put_check(&check("c1", "one")).unwrap();
        for name in ["cw.db", "cw.db-wal", "cw.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
        }
    }

    #[test]
    fn survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.put_check(&check("c", "c")).unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.load_checks().unwrap()[0].id, "c");
    }
}
