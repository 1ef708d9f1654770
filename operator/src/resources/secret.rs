//! The credentials Secret: the tenant login role's name and generated password. Pure.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::{ROTATED_FOR_ANNOTATION, names};
use crate::validate::Plan;

/// The tenant's database login: which of its two login roles the servers use, its password, and
/// the rotation request it was made for.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// One of [`TenantName::login_roles`](mcp_fleet_core::TenantName::login_roles).
    pub login: String,
    pub password: String,
    /// The value of the McpTenant's rotate annotation when this password was generated.
    pub rotated_for: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("login", &self.login)
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
    let login = &creds.login;
    let data = BTreeMap::from([
        (PASSWORD_KEY.to_owned(), ByteString(creds.password.clone().into_bytes())),
        (USERNAME_KEY.to_owned(), ByteString(login.clone().into_bytes())),
        (DATABASE_URL_KEY.to_owned(), ByteString(plan.database.url_for(login).into_bytes())),
    ]);
    Secret { metadata, type_: Some("Opaque".into()), data: Some(data), ..Secret::default() }
}

/// The credentials to use: the stored ones, unless there are none or the McpTenant asks for a
/// rotation (`rotate_to`, its annotation) they were not made for; then new ones with a password
/// from `generate`. A rotation moves to the tenant's other login role (`logins`), so that pods
/// still running with the stored password keep logging in until they are replaced; a first
/// password goes to the first role. A stored login that is not one of `logins` (the Secret was
/// edited) is taken back to the first role.
pub fn decide_credentials(
    stored: Option<&Credentials>,
    rotate_to: Option<&str>,
    logins: &[String; 2],
    generate: impl FnOnce() -> String,
) -> Credentials {
    let [first, second] = logins;
    match stored {
        Some(c) if rotate_to.is_none() || c.rotated_for.as_deref() == rotate_to => Credentials {
            login: if logins.contains(&c.login) { c.login.clone() } else { first.clone() },
            ..c.clone()
        },
        Some(c) => Credentials {
            login: if c.login == *first { second.clone() } else { first.clone() },
            password: generate(),
            rotated_for: rotate_to.map(str::to_owned),
        },
        None => Credentials {
            login: first.clone(),
            password: generate(),
            rotated_for: rotate_to.map(str::to_owned),
        },
    }
}

/// The credentials stored in an existing Secret, if it holds a password.
pub fn read_credentials(secret: &Secret) -> Option<Credentials> {
    let password = secret.data.as_ref()?.get(PASSWORD_KEY)?;
    let password = String::from_utf8(password.0.clone()).ok().filter(|p| !p.is_empty())?;
    let login = data_text(secret, USERNAME_KEY).unwrap_or_default();
    let rotated_for =
        secret.metadata.annotations.as_ref().and_then(|a| a.get(ROTATED_FOR_ANNOTATION)).cloned();
    Some(Credentials { login, password, rotated_for })
}

fn data_text(secret: &Secret, key: &str) -> Option<String> {
    String::from_utf8(secret.data.as_ref()?.get(key)?.0.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::minimal;

    fn logins() -> [String; 2] {
        minimal().tenant.login_roles()
    }

    fn creds(login: &str, password: &str, rotated_for: Option<&str>) -> Credentials {
        Credentials {
            login: login.into(),
            password: password.into(),
            rotated_for: rotated_for.map(Into::into),
        }
    }

    #[test]
    fn holds_username_password_and_url_and_round_trips() {
        let creds = creds("mcpt_seattle_login_b", "pw-123", Some("r1"));
        let s = credentials_secret(&minimal(), &creds);
        assert_eq!(s.metadata.name.as_deref(), Some("seattle-db-credentials"));
        let data = s.data.as_ref().unwrap();
        assert_eq!(data[USERNAME_KEY].0, b"mcpt_seattle_login_b");
        assert_eq!(data[PASSWORD_KEY].0, b"pw-123");
        let url = String::from_utf8_lossy(&data[DATABASE_URL_KEY].0).into_owned();
        assert!(url.starts_with("postgres://mcpt_seattle_login_b@") && !url.contains("pw-123"), "{url}");
        assert_eq!(read_credentials(&s), Some(creds));
        assert!(!format!("{:?}", read_credentials(&s)).contains("pw-123"), "Debug redacts the password");
    }

    #[test]
    fn the_stored_password_stays_until_a_new_rotation_is_asked_for() {
        let [a, _] = logins();
        let stored = creds(&a, "old", Some("r1"));
        let fresh = || "new".to_owned();
        assert_eq!(decide_credentials(Some(&stored), None, &logins(), fresh), stored);
        assert_eq!(
            decide_credentials(Some(&stored), Some("r1"), &logins(), fresh),
            stored,
            "already rotated for r1"
        );
        let first = decide_credentials(None, None, &logins(), fresh);
        assert_eq!(first, creds(&a, "new", None));
    }

    #[test]
    fn a_rotation_moves_to_the_other_login_role_and_back() {
        let [a, b] = logins();
        let fresh = || "new".to_owned();
        let rotated = decide_credentials(Some(&creds(&a, "old", None)), Some("r2"), &logins(), fresh);
        assert_eq!(rotated, creds(&b, "new", Some("r2")), "the old pods keep role {a} and its password");
        let back = decide_credentials(Some(&rotated), Some("r3"), &logins(), || "newer".to_owned());
        assert_eq!(back, creds(&a, "newer", Some("r3")));
    }

    #[test]
    fn an_edited_username_is_taken_back_to_the_tenants_own_role() {
        let [a, _] = logins();
        let edited = creds("postgres", "pw", None);
        assert_eq!(
            decide_credentials(Some(&edited), None, &logins(), || unreachable!()),
            creds(&a, "pw", None)
        );
    }
}
