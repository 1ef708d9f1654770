//! What a backup folder holds: complete backups (a manifest and the dump it describes, of the
//! size it records), incomplete ones (a dump without a manifest: a run that failed or is still
//! uploading) and broken ones (a manifest whose dump is missing or of another size, or a manifest
//! that does not parse). Only complete backups count for retention and restore. Object-store I/O.

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use object_store::{ObjectMeta, ObjectStoreExt as _};

use super::BackupError;
use super::location::Location;
use super::manifest::{Manifest, ObjectName, dump_name, manifest_name};

/// Manifests are small; anything bigger is not one of ours.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

#[derive(Clone, Debug)]
pub struct Complete {
    pub manifest: Manifest,
}

#[derive(Clone, Debug)]
pub struct Incomplete {
    pub id: String,
    pub subject: String,
    pub started_at: DateTime<Utc>,
    pub bytes: u64,
}

#[derive(Clone, Debug)]
pub struct Broken {
    pub id: String,
    pub subject: String,
    pub problem: String,
}

#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Oldest first.
    pub complete: Vec<Complete>,
    pub incomplete: Vec<Incomplete>,
    pub broken: Vec<Broken>,
}

impl Catalog {
    pub fn complete_of<'a>(&'a self, subject: &'a str) -> impl Iterator<Item = &'a Complete> + 'a {
        self.complete.iter().filter(move |c| c.manifest.subject() == subject)
    }

    pub fn subjects(&self) -> Vec<String> {
        let mut s: Vec<String> = self.complete.iter().map(|c| c.manifest.subject().to_owned()).collect();
        s.sort();
        s.dedup();
        s
    }
}

/// The objects directly in the folder, by name.
pub async fn objects(loc: &Location) -> Result<Vec<(String, ObjectMeta)>, BackupError> {
    let mut out = Vec::new();
    let mut listing = loc.store.list(Some(&loc.prefix));
    while let Some(item) = listing.next().await {
        let meta = match item {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => break,
            Err(e) => return Err(loc.error("listing", e)),
        };
        let Some(rest) = meta.location.prefix_match(&loc.prefix) else { continue };
        let parts: Vec<_> = rest.collect();
        if let [only] = parts.as_slice() {
            out.push((only.as_ref().to_owned(), meta));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Reads and parses one manifest.
pub async fn read_manifest(loc: &Location, id: &str) -> Result<Manifest, BackupError> {
    let path = loc.object(&manifest_name(id));
    let got =
        loc.store.get(&path).await.map_err(|e| loc.error(&format!("reading {}", manifest_name(id)), e))?;
    if got.meta.size > MAX_MANIFEST_BYTES {
        return Err(BackupError::Integrity(format!(
            "{} is {} bytes, too big for a manifest",
            manifest_name(id),
            got.meta.size
        )));
    }
    let bytes = got.bytes().await.map_err(|e| loc.error(&format!("reading {}", manifest_name(id)), e))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| BackupError::Integrity(format!("{} does not parse: {e}", manifest_name(id))))?;
    if manifest.format > super::manifest::FORMAT {
        return Err(BackupError::Refused(format!(
            "{} has manifest format {} but this build reads up to {}; use a newer mcp-fleet-server",
            manifest_name(id),
            manifest.format,
            super::manifest::FORMAT
        )));
    }
    if manifest.id != id || manifest.dump.name != dump_name(id) {
        return Err(BackupError::Integrity(format!(
            "{} describes another backup ({})",
            manifest_name(id),
            manifest.id
        )));
    }
    Ok(manifest)
}

/// Lists the folder and sorts its backups into complete, incomplete and broken.
pub async fn scan(loc: &Location) -> Result<Catalog, BackupError> {
    let objects = objects(loc).await?;
    let dump_size = |id: &str| objects.iter().find(|(n, _)| *n == dump_name(id)).map(|(_, m)| m.size);
    let has_manifest = |id: &str| objects.iter().any(|(n, _)| *n == manifest_name(id));
    let mut cat = Catalog::default();
    for (name, meta) in &objects {
        match ObjectName::parse(name) {
            Some(ObjectName::Manifest { id, subject, .. }) => match read_manifest(loc, &id).await {
                Ok(manifest) => match dump_size(&id) {
                    Some(size) if size == manifest.dump.bytes => cat.complete.push(Complete { manifest }),
                    Some(size) => cat.broken.push(Broken {
                        id,
                        subject,
                        problem: format!("dump is {size} bytes, the manifest says {}", manifest.dump.bytes),
                    }),
                    None => cat.broken.push(Broken { id, subject, problem: "dump is missing".into() }),
                },
                Err(e) => cat.broken.push(Broken { id, subject, problem: e.to_string() }),
            },
            Some(ObjectName::Dump { id, subject, at }) if !has_manifest(&id) => {
                cat.incomplete.push(Incomplete { id, subject, started_at: at, bytes: meta.size });
            }
            _ => {}
        }
    }
    cat.complete.sort_by(|a, b| {
        a.manifest.started_at.cmp(&b.manifest.started_at).then_with(|| a.manifest.id.cmp(&b.manifest.id))
    });
    Ok(cat)
}
