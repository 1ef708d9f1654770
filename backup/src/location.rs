//! Where backups live: a folder in object storage named by a URL — `az://` or `azure://`
//! (Azure Blob), `s3://`, `gs://` or `file://`. Credentials come only from the environment, in
//! each store's own conventions (`AZURE_STORAGE_ACCOUNT_NAME` + `AZURE_STORAGE_ACCOUNT_KEY` or
//! `AZURE_STORAGE_SAS_KEY`, workload identity; `AWS_*`; `GOOGLE_*`), never from the URL or the
//! command line. Opening does no I/O.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use reqwest::Url;

use super::BackupError;

/// A backup folder: a store and a prefix in it.
#[derive(Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    display: String,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// The environment variables a store of `scheme` reads.
fn env_prefix(scheme: &str) -> Option<&'static str> {
    match scheme {
        "az" | "azure" | "abfs" | "abfss" | "adl" => Some("AZURE_"),
        "s3" | "s3a" => Some("AWS_"),
        "gs" => Some("GOOGLE_"),
        "file" => None,
        _ => None,
    }
}

impl Location {
    /// Opens the folder at `url` with credentials from `env` (normally `std::env::vars()`).
    pub fn open(url: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, BackupError> {
        let bad = |why: String| BackupError::Config(format!("backup location {}: {why}", redact(url)));
        let parsed = Url::parse(url).map_err(|e| bad(format!("not a URL ({e})")))?;
        if !parsed.username().is_empty() || parsed.password().is_some() || parsed.query().is_some() {
            return Err(bad(
                "credentials and query parameters do not belong in the URL; set them in the environment \
                 (e.g. AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_KEY, AWS_ACCESS_KEY_ID)"
                    .into(),
            ));
        }
        let scheme = parsed.scheme().to_owned();
        if !matches!(
            scheme.as_str(),
            "az" | "azure" | "abfs" | "abfss" | "adl" | "s3" | "s3a" | "gs" | "file"
        ) {
            return Err(bad(format!(
                "unsupported scheme {scheme:?}; use az://, azure://, s3://, gs:// or file://"
            )));
        }
        if scheme == "file" && parsed.host_str().is_some_and(|h| !h.is_empty()) {
            return Err(bad("a file URL must be absolute, e.g. file:///var/backups/zava".into()));
        }
        let options: Vec<(String, String)> = match env_prefix(&scheme) {
            Some(prefix) => env.into_iter().filter(|(k, _)| k.starts_with(prefix)).collect(),
            None => Vec::new(),
        };
        // The cloud stores build a reqwest client, which panics without a rustls provider; ring
        // is the project's only one. Installing fails harmlessly when one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (store, prefix) =
            object_store::parse_url_opts(&parsed, options).map_err(|e| bad(e.to_string()))?;
        Ok(Self { store: Arc::from(store), prefix, display: redact(url) })
    }

    /// The object `name` in this folder.
    pub fn object(&self, name: &str) -> Path {
        self.prefix.clone().join(name)
    }

    /// The URL of the object `name`, for messages.
    pub fn object_url(&self, name: &str) -> String {
        format!("{}/{name}", self.display.trim_end_matches('/'))
    }

    pub fn error(&self, what: &str, e: impl std::fmt::Display) -> BackupError {
        BackupError::Store { location: self.display.clone(), message: format!("{what}: {e}") }
    }
}

/// Splits the URL of one backup object into its folder and its name.
pub fn split_object_url(url: &str) -> Option<(String, String)> {
    let (folder, name) = url.trim_end_matches('/').rsplit_once('/')?;
    if folder.ends_with(':') || folder.ends_with(":/") {
        return None;
    }
    Some((folder.to_owned(), name.to_owned()))
}

/// The URL without anything after `?` or `#`, and without user info.
pub fn redact(url: &str) -> String {
    let cut = url.find(['?', '#']).map_or(url, |i| &url[..i]);
    match cut.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => cut.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_urls_are_refused_and_never_echoed() {
        let e = Location::open("az://backups/east?sig=s3cret", []).unwrap_err().to_string();
        assert!(e.contains("do not belong in the URL"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let e = Location::open("s3://key:s3cret@bucket/x", []).unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
        let e = Location::open("ftp://host/x", []).unwrap_err().to_string();
        assert!(e.contains("unsupported scheme"), "{e}");
    }

    #[test]
    fn file_locations_join_names_under_the_prefix() {
        let loc = Location::open("file:///var/backups/zava", []).unwrap();
        assert_eq!(loc.object("a.manifest.json").as_ref(), "var/backups/zava/a.manifest.json");
        assert_eq!(loc.object_url("a.manifest.json"), "file:///var/backups/zava/a.manifest.json");
        assert_eq!(
            split_object_url("az://c/p/east.1.pgdump.zst"),
            Some(("az://c/p".into(), "east.1.pgdump.zst".into()))
        );
        assert_eq!(split_object_url("az://c"), None);
    }

    #[test]
    fn only_the_stores_own_variables_reach_it() {
        let env = vec![
            ("AZURE_STORAGE_ACCOUNT_NAME".to_owned(), "acct".to_owned()),
            ("AZURE_STORAGE_ACCOUNT_KEY".to_owned(), "a2V5".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "not-for-azure".to_owned()),
        ];
        let loc = Location::open("az://backups/east", env).unwrap();
        assert_eq!(loc.prefix.as_ref(), "east");
        assert!(!format!("{:?}", loc).contains("a2V5"));
    }
}
