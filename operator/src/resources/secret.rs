//! The credentials Secret: the tenant login role's name and generated password. Pure.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::{ROTATED_FOR_ANNOTATION, names};
use crate::validate::Plan;

/// The tenant's database password and the rotation request it was made for.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub password: String,
    /// The value of the McpTenant's rotate annotation when this password was generated.
    pub rotated_for: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("password", &"<redacted>")
            .field("rotated_for", &self.rotated_for)
            .finish()
    }
}

/// Keys of the Secret.
pub const PASSWORD_KEY: &str = "password";
pub const USERNAME_KEY: &str = "username";
pub const DATABASE_URL_KEY: &str = "database-url";

pub fn credentials_secret(plan: &Plan, creds: &Credentials) -> Secret {
    let mut metadata = plan.metadata(names::credentials_secret(&plan.name), "credentials");
    if let Some(value) = &creds.rotated_for {
        metadata.annotations = Some(BTreeMap::from([(ROTATED_FOR_ANNOTATION.to_owned(), value.clone())]));
    }
    let login = plan.tenant.login_role();
    let data = BTreeMap::from([
        (PASSWORD_KEY.to_owned(), ByteString(creds.password.clone().into_bytes())),
        (USERNAME_KEY.to_owned(), ByteString(login.clone().into_bytes())),
        (DATABASE_URL_KEY.to_owned(), ByteString(plan.database.url_for(&login).into_bytes())),
    ]);
    Secret { metadata, type_: Some("Opaque".into()), data: Some(data), ..Secret::default() }
}

/// The credentials to use: the stored ones, unless there are none or the McpTenant asks for a
/// rotation (`rotate_to`, its annotation) they were not made for; then new ones with a password
/// from `generate`.
pub fn decide_credentials(
    stored: Option<&Credentials>,
    rotate_to: Option<&str>,
    generate: impl FnOnce() -> String,
) -> Credentials {
    match stored {
        Some(c) if rotate_to.is_none() || c.rotated_for.as_deref() == rotate_to => c.clone(),
        _ => Credentials { password: generate(), rotated_for: rotate_to.map(str::to_owned) },
    }
}

/// The credentials stored in an existing Secret, if it holds a password.
pub fn read_credentials(secret: &Secret) -> Option<Credentials> {
    let password = secret.data.as_ref()?.get(PASSWORD_KEY)?;
    let password = String::from_utf8(password.0.clone()).ok().filter(|p| !p.is_empty())?;
    let rotated_for =
        secret.metadata.annotations.as_ref().and_then(|a| a.get(ROTATED_FOR_ANNOTATION)).cloned();
    Some(Credentials { password, rotated_for })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::minimal;

    #[test]
    fn holds_username_password_and_url_and_round_trips() {
        let creds = Credentials { password: "pw-123".into(), rotated_for: Some("r1".into()) };
        let s = credentials_secret(&minimal(), &creds);
        assert_eq!(s.metadata.name.as_deref(), Some("seattle-db-credentials"));
        let data = s.data.as_ref().unwrap();
        assert_eq!(data[USERNAME_KEY].0, b"mcpt_seattle_login");
        assert_eq!(data[PASSWORD_KEY].0, b"pw-123");
        assert!(!String::from_utf8_lossy(&data[DATABASE_URL_KEY].0).contains("pw-123"));
        assert_eq!(read_credentials(&s), Some(creds));
        assert!(!format!("{:?}", read_credentials(&s)).contains("pw-123"), "Debug redacts the password");
    }

    #[test]
    fn the_stored_password_stays_until_a_new_rotation_is_asked_for() {
        let stored = Credentials { password: "old".into(), rotated_for: Some("r1".into()) };
        let fresh = || "new".to_owned();
        assert_eq!(decide_credentials(Some(&stored), None, fresh), stored);
        assert_eq!(decide_credentials(Some(&stored), Some("r1"), fresh), stored, "already rotated for r1");
        let rotated = decide_credentials(Some(&stored), Some("r2"), fresh);
        assert_eq!(rotated, Credentials { password: "new".into(), rotated_for: Some("r2".into()) });
        let first = decide_credentials(None, None, fresh);
        assert_eq!(first, Credentials { password: "new".into(), rotated_for: None });
    }
}
