//! The manifest written beside each dump, and how backups are named. A backup `ID` is
//! `<subject>.<UTC time>` where the subject is the tenant (or `_full` for a full backup, a name no
//! tenant can have); its objects are `<ID>.pgdump.zst` and `<ID>.manifest.json`. The manifest is
//! written last: a dump without one is an incomplete backup. Pure.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

pub const DUMP_SUFFIX: &str = ".pgdump.zst";
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
/// The subject of full backups; tenant names start with a letter, so none can clash.
pub const FULL_SUBJECT: &str = "_full";
/// Manifest format this build writes and reads.
pub const FORMAT: u32 = 1;
const TIME_FORMAT: &str = "%Y%m%dT%H%M%S%3fZ";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// One tenant's rows, filtered by row-level security as the tenant's own role.
    Tenant,
    /// Every row, the tenancy mapping and the audit trail, as a role that bypasses RLS.
    Full,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub kind: BackupKind,
    /// The tenant (tenant backups only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The stores whose rows the dump holds (tenant backups only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub store_ids: Vec<i32>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub tool: String,
    pub tool_version: String,
    /// The newest applied migration of the source database.
    pub schema_version: i64,
    pub database: String,
    pub role: String,
    pub server_version: String,
    pub pg_dump_version: String,
    /// The schemas whose table data the dump holds.
    pub schemas: Vec<String>,
    pub dump: DumpObject,
    pub tables: Vec<TableStats>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpObject {
    /// Object name, relative to the manifest.
    pub name: String,
    /// `pg_dump --format=custom --compress=0 --data-only`.
    pub format: String,
    pub compression: String,
    pub compression_level: i32,
    /// Size of the uploaded (compressed) object.
    pub bytes: u64,
    /// SHA-256 of the uploaded (compressed) object, hex.
    pub sha256: String,
    /// Size of pg_dump's output before compression.
    pub uncompressed_bytes: u64,
}

/// One table's rows as the dumping role saw them, in the dump's snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableStats {
    pub schema: String,
    pub table: String,
    pub rows: i64,
    /// Sum of `hashtextextended(row::text, 0)` over the rows (order-independent), as text.
    pub fingerprint: String,
}

impl TableStats {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

impl Manifest {
    pub fn total_rows(&self) -> i64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn subject(&self) -> &str {
        self.tenant.as_deref().unwrap_or(FULL_SUBJECT)
    }
}

/// The ID of a backup of `subject` started at `at`.
pub fn backup_id(subject: &str, at: DateTime<Utc>) -> String {
    format!("{subject}.{}", at.format(TIME_FORMAT))
}

/// What an object name in a backup folder is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectName {
    Dump { id: String, subject: String, at: DateTime<Utc> },
    Manifest { id: String, subject: String, at: DateTime<Utc> },
}

impl ObjectName {
    /// Parses `<subject>.<time>.pgdump.zst` or `.manifest.json`; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        let (id, is_dump) = if let Some(id) = name.strip_suffix(DUMP_SUFFIX) {
            (id, true)
        } else {
            (name.strip_suffix(MANIFEST_SUFFIX)?, false)
        };
        let (subject, time) = id.rsplit_once('.')?;
        let at = NaiveDateTime::parse_from_str(time, TIME_FORMAT).ok()?.and_utc();
        let valid_subject = subject == FULL_SUBJECT || mcp_fleet_core::TenantName::new(subject).is_ok();
        if !valid_subject {
            return None;
        }
        let (id, subject) = (id.to_owned(), subject.to_owned());
        Some(if is_dump { Self::Dump { id, subject, at } } else { Self::Manifest { id, subject, at } })
    }

    pub fn id(&self) -> &str {
        match self {
            Self::Dump { id, .. } | Self::Manifest { id, .. } => id,
        }
    }
}

pub fn dump_name(id: &str) -> String {
    format!("{id}{DUMP_SUFFIX}")
}

pub fn manifest_name(id: &str) -> String {
    format!("{id}{MANIFEST_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 7).unwrap() + chrono::Duration::milliseconds(42);
        let id = backup_id("east-side", at);
        assert_eq!(id, "east-side.20261125T030007042Z");
        assert_eq!(
            ObjectName::parse(&dump_name(&id)),
            Some(ObjectName::Dump { id: id.clone(), subject: "east-side".into(), at })
        );
        assert_eq!(
            ObjectName::parse(&manifest_name(&id)),
            Some(ObjectName::Manifest { id: id.clone(), subject: "east-side".into(), at })
        );
        let full = backup_id(FULL_SUBJECT, at);
        assert!(
            matches!(ObjectName::parse(&dump_name(&full)), Some(ObjectName::Dump { subject, .. }) if subject == "_full")
        );
        for stranger in
            ["notes.txt", "east.pgdump.zst", "East.20261125T030007042Z.pgdump.zst", "x.2026.manifest.json"]
        {
            assert_eq!(ObjectName::parse(stranger), None, "{stranger}");
        }
    }
}
