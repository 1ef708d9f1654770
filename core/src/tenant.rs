//! Tenant names, the PostgreSQL roles derived from them, and SCRAM-SHA-256 password verifiers
//! (so a plaintext tenant password never has to reach PostgreSQL). Pure functions, no I/O.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use sha2::{Digest, Sha256};

/// Longest tenant name; keeps `mcpt_<name>_login` inside PostgreSQL's 63-byte identifiers.
pub const MAX_TENANT_NAME_LEN: usize = 40;

/// A validated tenant name: 1 to 40 lowercase letters, digits or dashes, starting with a letter
/// and not ending with a dash (a DNS label, so it also works as a Kubernetes name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct TenantName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TenantNameError {
    #[error("a tenant name cannot be empty")]
    Empty,
    #[error("tenant name {0:?} is longer than {MAX_TENANT_NAME_LEN} characters")]
    TooLong(String),
    #[error(
        "tenant name {0:?} must use only lowercase letters, digits and dashes, start with a letter and not end with a dash"
    )]
    Invalid(String),
}

impl TenantName {
    pub fn new(name: impl Into<String>) -> Result<Self, TenantNameError> {
        let name = name.into();
        let bytes = name.as_bytes();
        match bytes {
            [] => Err(TenantNameError::Empty),
            _ if bytes.len() > MAX_TENANT_NAME_LEN => Err(TenantNameError::TooLong(name)),
            [first, .., last] if !first.is_ascii_lowercase() || *last == b'-' => {
                Err(TenantNameError::Invalid(name))
            }
            [first] if !first.is_ascii_lowercase() => Err(TenantNameError::Invalid(name)),
            _ if !bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-') => {
                Err(TenantNameError::Invalid(name))
            }
            _ => Ok(Self(name)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The NOLOGIN role that carries the tenant's identity in row-level security policies.
    pub fn group_role(&self) -> String {
        format!("mcpt_{}", self.0)
    }

    /// The LOGIN role a dedicated server connects as: the first of [`Self::login_roles`].
    pub fn login_role(&self) -> String {
        format!("mcpt_{}_login", self.0)
    }

    /// The tenant's two LOGIN roles. A password rotation moves the servers to the one not in use
    /// and then retires the other, so a pod of the old rollout is never refused (migration 0007).
    pub fn login_roles(&self) -> [String; 2] {
        [self.login_role(), format!("mcpt_{}_login_b", self.0)]
    }

    /// The one of [`Self::login_roles`] that is not `login`.
    pub fn other_login(&self, login: &str) -> String {
        let [first, second] = self.login_roles();
        if login == first { second } else { first }
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TenantName {
    type Err = TenantNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> serde::Deserialize<'de> for TenantName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

/// Iterations PostgreSQL itself uses for SCRAM-SHA-256 (`scram_iterations` default).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// A random password of 32 URL-safe characters (about 190 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..32).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password`, with a random salt.
pub fn scram_verifier(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    scram_verifier_with(password, &salt, SCRAM_ITERATIONS)
}

/// The verifier for a given salt and iteration count (RFC 5802/7677, as PostgreSQL stores it:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`).
pub fn scram_verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac_sha256(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac_sha256(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    )
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels_and_derives_roles() {
        let t = TenantName::new("east-side2").unwrap();
        assert_eq!(t.group_role(), "mcpt_east-side2");
        assert_eq!(t.login_role(), "mcpt_east-side2_login");
        assert!(TenantName::new("a").is_ok());
        assert!(TenantName::new("a".repeat(40)).is_ok());
    }

    #[test]
    fn rejects_bad_names_with_the_reason() {
        assert_eq!(TenantName::new(""), Err(TenantNameError::Empty));
        assert!(matches!(TenantName::new("a".repeat(41)), Err(TenantNameError::TooLong(_))));
        for bad in ["1abc", "Abc", "ab-", "a_b", "a b", "a;drop", "-a", "é"] {
            assert!(
                matches!(TenantName::new(bad), Err(TenantNameError::Invalid(_))),
                "{bad:?} should be invalid"
            );
        }
        let err = TenantName::new("Seattle").unwrap_err().to_string();
        assert!(err.contains("lowercase"), "{err}");
    }

    #[test]
    fn serde_validates() {
        let ok: TenantName = serde_json::from_str("\"seattle\"").unwrap();
        assert_eq!(ok.as_str(), "seattle");
        assert!(serde_json::from_str::<TenantName>("\"Bad Name\"").is_err());
    }

    #[test]
    fn scram_verifier_has_postgres_layout_and_random_salt() {
        // That PostgreSQL accepts these verifiers for login is proven against a real server in
        // the server crate's tenancy tests; here only the layout and salting.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = scram_verifier_with("pencil", &salt, 4096);
        assert!(v.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"), "{v}");
        assert_eq!(v, scram_verifier_with("pencil", &salt, 4096), "deterministic for a fixed salt");
        assert_ne!(scram_verifier("pencil"), scram_verifier("pencil"), "salted at random");
    }

    #[test]
    fn generated_passwords_differ_and_are_url_safe() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
