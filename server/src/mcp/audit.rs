//! The audit trail: every tool call, allowed or denied, becomes a row of `audit.tool_calls`.
//! One writer task writes the records in batches (group commit), and nothing is lost:
//!
//! * Before a call runs, it reserves a slot in a bounded buffer. The slot is filled when the call
//!   ends, so a record always fits, and it is freed only once its record is in the database: a
//!   batch the writer holds (or retries) still counts against the bound.
//! * **An answer leaves only once its record is committed.** The call hands its record to the
//!   writer and waits for the commit of the batch that carries it; the writer takes whatever has
//!   queued while it wrote the previous batch, with no linger. So a server killed at any moment
//!   has answered no call whose record is not in the database.
//! * If the buffer stays full, or a record is not committed in time (the database is down and
//!   the writer is retrying), the call **fails closed**: refused before it runs, or its result
//!   withheld.
//! * The writer retries a failed batch until it succeeds; on shutdown it flushes what is left.
//!
//! Arguments are stored sanitised: SQL text is kept, values of secret-looking keys are masked and
//! long strings are cut. Does database I/O (in the writer task).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mcp_fleet_core::server_config::TenancyMode;
use serde_json::{Map, Value};
use sqlx::postgres::PgArguments;
use sqlx::{PgPool, Postgres};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::outcome::Outcome;
use crate::auth::identity::Caller;
use crate::metrics::Metrics;

/// Records not yet written (queued, in the writer's batch or being retried) before calls start
/// waiting.
pub const BUFFER: usize = 1024;
/// How long a call waits for buffer space before it is refused.
pub const RESERVE_WAIT: Duration = Duration::from_secs(2);
const BATCH: usize = 200;
const MAX_ARG_CHARS: usize = 4096;

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub called_at: DateTime<Utc>,
    pub tenant: String,
    pub group_role: String,
    pub subject: String,
    pub tool: String,
    pub arguments: Value,
    pub rows: Option<i32>,
    pub duration_ms: f64,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub request_id: String,
}

/// The audit trail is not accepting records; the call must not run.
#[derive(Debug, thiserror::Error)]
#[error(
    "the audit trail cannot record this call right now (is the database reachable?), so it was not run; retry shortly"
)]
pub struct AuditUnavailable;

/// The call ran, but its record was not committed: its result is withheld.
#[derive(Debug, thiserror::Error)]
pub enum AuditNotWritten {
    #[error(
        "the audit trail could not record this call in time (is the database reachable?), so its result is withheld; retry shortly"
    )]
    InTime,
    /// The database refused the record itself (for example a shared-mode caller naming a tenant
    /// that has no role): retrying will not help.
    #[error("the audit trail refused this call's record ({0}), so its result is withheld")]
    Refused(String),
}

/// A finished record, the buffer slot it holds until it is written, and who waits for its commit.
struct Queued {
    record: AuditRecord,
    _slot: OwnedSemaphorePermit,
    committed: oneshot::Sender<Result<(), String>>,
}

/// The commit of one record, to wait for before the call's answer leaves.
#[must_use = "an answer must wait for its record's commit"]
pub struct Written {
    committed: Option<oneshot::Receiver<Result<(), String>>>,
    within: Duration,
}

impl Written {
    /// Waits until the record is in the database, at most the audit log's wait.
    pub async fn wait(self) -> Result<(), AuditNotWritten> {
        let Some(committed) = self.committed else { return Err(AuditNotWritten::InTime) };
        match tokio::time::timeout(self.within, committed).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(refused))) => Err(AuditNotWritten::Refused(refused)),
            // Timed out, or the writer gave the record up at shutdown.
            _ => Err(AuditNotWritten::InTime),
        }
    }
}

/// The writer side: the buffer's slots, the channel to the writer and the task draining it.
pub struct AuditLog {
    slots: Arc<Semaphore>,
    tx: Mutex<Option<mpsc::UnboundedSender<Queued>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    wait: Duration,
}

impl AuditLog {
    /// Starts the writer task on the current runtime.
    pub fn start(
        pool: PgPool,
        mode: TenancyMode,
        metrics: Arc<Metrics>,
        capacity: usize,
        wait: Duration,
    ) -> Self {
        // The channel needs no bound of its own: nothing enters it without a slot.
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(pool, mode, metrics, rx));
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            wait,
        }
    }

    /// Reserves room for the record of a call that is about to run.
    pub async fn ticket(
        &self,
        caller: &Caller,
        tool: &str,
        arguments: Option<&Map<String, Value>>,
    ) -> Result<AuditTicket, AuditUnavailable> {
        let tx = self.tx.lock().ok().and_then(|g| g.clone()).ok_or(AuditUnavailable)?;
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| AuditUnavailable)?
            .map_err(|_| AuditUnavailable)?;
        let record = AuditRecord {
            called_at: Utc::now(),
            tenant: caller.tenant.to_string(),
            group_role: caller.tenant.group_role(),
            subject: caller.subject.clone(),
            tool: tool.to_owned(),
            arguments: arguments.map(sanitize).unwrap_or(Value::Object(Map::new())),
            rows: None,
            duration_ms: 0.0,
            outcome: Outcome::Ok,
            error: None,
            request_id: caller.request_id.clone(),
        };
        let pending = Pending { tx, slot, record, started: Instant::now(), within: self.wait };
        Ok(AuditTicket(Arc::new(Mutex::new(Some(pending)))))
    }

    /// Stops accepting records and waits (bounded) for the writer to flush the rest.
    pub async fn shutdown(&self, deadline: Duration) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = writer
            && tokio::time::timeout(deadline, w).await.is_err()
        {
            tracing::error!("the audit writer did not finish flushing within {deadline:?}");
        }
    }
}

/// The way to the writer, the buffer slot, the record being filled, when the call started and
/// how long its answer may wait for the commit.
struct Pending {
    tx: mpsc::UnboundedSender<Queued>,
    slot: OwnedSemaphorePermit,
    record: AuditRecord,
    started: Instant,
    within: Duration,
}

/// A reserved, not yet written audit record. Completing it twice keeps the first outcome.
#[derive(Clone)]
pub struct AuditTicket(Arc<Mutex<Option<Pending>>>);

impl std::fmt::Debug for AuditTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditTicket")
    }
}

impl AuditTicket {
    /// Fills in the outcome and hands the record to the writer; the answer waits on the
    /// returned [`Written`]. A second completion writes nothing and is not waited for.
    pub fn complete(&self, outcome: Outcome, rows: Option<usize>, error: Option<&str>) -> Written {
        let Some(Pending { tx, slot, mut record, started, within }) =
            self.0.lock().ok().and_then(|mut g| g.take())
        else {
            let (done, committed) = oneshot::channel();
            let _ = done.send(Ok(()));
            return Written { committed: Some(committed), within: Duration::ZERO };
        };
        record.outcome = outcome;
        record.rows = rows.map(|r| i32::try_from(r).unwrap_or(i32::MAX));
        record.error = error.map(|e| truncate(e, 1000));
        record.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (done, committed) = oneshot::channel();
        // Fails only when the writer has gone, after shutdown's deadline: the wait then fails.
        let sent = tx.send(Queued { record, _slot: slot, committed: done }).is_ok();
        Written { committed: sent.then_some(committed), within }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push_str("…(truncated)");
        t
    }
}

fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "api_key", "apikey", "authorization", "credential", "cookie"]
        .iter()
        .any(|s| k.contains(s))
}

/// Tool arguments as stored: secret-looking keys masked, long strings cut (SQL text is kept).
pub fn sanitize(args: &Map<String, Value>) -> Value {
    fn object(o: &Map<String, Value>) -> Value {
        Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), if secret_key(k) { Value::String("***".into()) } else { walk(v) }))
                .collect(),
        )
    }
    fn walk(v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(truncate(s, MAX_ARG_CHARS)),
            Value::Array(a) => Value::Array(a.iter().take(100).map(walk).collect()),
            Value::Object(o) => object(o),
            other => other.clone(),
        }
    }
    object(args)
}

async fn write_loop(
    pool: PgPool,
    mode: TenancyMode,
    metrics: Arc<Metrics>,
    mut rx: mpsc::UnboundedReceiver<Queued>,
) {
    // Each record keeps its buffer slot until the batch is written (or given up on). Group
    // commit: a batch is what queued while the previous one was written, so a lone call waits
    // for one INSERT, and many calls share one.
    let mut batch: Vec<Queued> = Vec::with_capacity(BATCH);
    loop {
        match rx.recv().await {
            Some(r) => batch.push(r),
            None => return,
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let closed = rx.is_closed();
        let mut attempt = 0u32;
        loop {
            match write_batch(&pool, mode, batch.iter().map(|q| &q.record)).await {
                Ok(()) => {
                    metrics.audit_records.with_label_values(&["written"]).inc_by(batch.len() as u64);
                    for q in batch.drain(..) {
                        let _ = q.committed.send(Ok(()));
                    }
                    break;
                }
                Err(e) => {
                    // The database answered (not the connection): write tenant by tenant, so that
                    // one tenant's refused records do not hold the others back; records that can
                    // never be written are given up, the rest retried below.
                    if matches!(e, sqlx::Error::Database(_)) && !connection_error(&e) {
                        batch = write_each_tenant(&pool, mode, &metrics, std::mem::take(&mut batch)).await;
                        if batch.is_empty() {
                            break;
                        }
                    }
                    attempt += 1;
                    metrics.errors.with_label_values(&["audit_write"]).inc();
                    tracing::warn!(error = %e, pending = batch.len(), attempt, "writing the audit trail failed; retrying");
                    // While serving, retry for as long as it takes (calls fail closed meanwhile);
                    // at shutdown, give up after a few attempts and say how much was lost.
                    if (closed || rx.is_closed()) && attempt >= 5 {
                        // Dropping the batch tells its waiters the records were not written.
                        metrics.audit_records.with_label_values(&["lost"]).inc_by(batch.len() as u64);
                        tracing::error!(
                            lost = batch.len(),
                            "shutting down with audit records the database would not take"
                        );
                        return;
                    }
                    tokio::time::sleep(
                        (Duration::from_millis(100) * 2u32.saturating_pow(attempt))
                            .min(Duration::from_secs(5)),
                    )
                    .await;
                }
            }
        }
        if closed && rx.is_empty() {
            return;
        }
    }
}

/// Whether the database answered `e` with a SQLSTATE of one of `classes` (its first two characters).
fn sqlstate_class_in(e: &sqlx::Error, classes: &[&str]) -> bool {
    matches!(e, sqlx::Error::Database(d)
        if classes.iter().any(|class| d.code().unwrap_or_default().starts_with(class)))
}

/// SQLSTATE classes of a connection or server in trouble (08, 40, 53, 57, 58): the statement
/// itself was fine.
fn connection_error(e: &sqlx::Error) -> bool {
    sqlstate_class_in(e, &["08", "40", "53", "57", "58"])
}

/// Whether the records themselves can never be written (classes 22 and 23: bad data, or a role
/// name that does not exist, as for a shared-mode caller naming an unknown tenant). A privilege
/// the server lacks (42501) is not among them: an administrator can grant it, and the records
/// wait, failing calls closed meanwhile.
fn unwritable(e: &sqlx::Error) -> bool {
    sqlstate_class_in(e, &["22", "23"])
}

/// Writes `batch` one tenant (one role) at a time. Records that can never be written are given
/// up, counted as lost and logged, and their callers told why; returns the records to retry.
async fn write_each_tenant(
    pool: &PgPool,
    mode: TenancyMode,
    metrics: &Metrics,
    batch: Vec<Queued>,
) -> Vec<Queued> {
    let mut groups: std::collections::BTreeMap<String, Vec<Queued>> = Default::default();
    for q in batch {
        groups.entry(q.record.group_role.clone()).or_default().push(q);
    }
    let mut retry = Vec::new();
    for (role, group) in groups {
        match write_batch(pool, mode, group.iter().map(|q| &q.record)).await {
            Ok(()) => {
                metrics.audit_records.with_label_values(&["written"]).inc_by(group.len() as u64);
                for q in group {
                    let _ = q.committed.send(Ok(()));
                }
            }
            Err(e) if unwritable(&e) => {
                let why = match &e {
                    sqlx::Error::Database(d) => d.message().to_owned(),
                    other => other.to_string(),
                };
                metrics.audit_records.with_label_values(&["lost"]).inc_by(group.len() as u64);
                tracing::error!(role, records = group.len(), error = %why, "the database refused these audit records; their calls' results are withheld");
                for q in group {
                    let _ = q.committed.send(Err(why.clone()));
                }
            }
            Err(_) => retry.extend(group),
        }
    }
    retry
}

async fn write_batch<'a>(
    pool: &PgPool,
    mode: TenancyMode,
    batch: impl Iterator<Item = &'a AuditRecord>,
) -> Result<(), sqlx::Error> {
    // A dedicated server's login role belongs to its one tenant: the batch is one statement, its
    // own transaction, one round trip.
    if mode != TenancyMode::Shared {
        return insert(&batch.collect::<Vec<_>>()).execute(pool).await.map(drop);
    }
    // In shared mode each tenant's rows are written under that tenant's role (the policy checks it).
    let mut groups: std::collections::BTreeMap<&str, Vec<&AuditRecord>> = Default::default();
    for r in batch {
        groups.entry(r.group_role.as_str()).or_default().push(r);
    }
    let mut tx = pool.begin().await?;
    for (role, rows) in groups {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE \"{role}\""))).execute(&mut *tx).await?;
        insert(&rows).execute(&mut *tx).await?;
        sqlx::query("RESET ROLE").execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// One INSERT of all of `rows`, as arrays.
fn insert(rows: &[&AuditRecord]) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    sqlx::query(
        "INSERT INTO audit.tool_calls (called_at, tenant, subject, tool, arguments, rows_returned, duration_ms, outcome, error, request_id)
         SELECT c, t, s, tl, a::jsonb, n, d, o, e, r
         FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::float8[], $8::text[], $9::text[], $10::text[])
              AS x(c, t, s, tl, a, n, d, o, e, r)",
    )
    .bind(rows.iter().map(|r| r.called_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tenant.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.subject.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tool.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.arguments.to_string()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.rows).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.error.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.request_id.clone()).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_keep_sql_and_lose_secrets() {
        let args = json!({"postgresql_query": "SELECT 1", "api_key": "sk-123", "nested": {"Password": "x"}, "long": "y".repeat(5000)});
        let s = sanitize(args.as_object().unwrap());
        assert_eq!(s["postgresql_query"], json!("SELECT 1"));
        assert_eq!(s["api_key"], json!("***"));
        assert_eq!(s["nested"]["Password"], json!("***"));
        assert!(s["long"].as_str().unwrap().ends_with("…(truncated)"));
    }
}
