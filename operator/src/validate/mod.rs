//! Validation, the second step of a reconcile: turns an McpTenant, what dereference found (the
//! admin database URL, the other McpTenants) and the operator's defaults into a [`Plan`] for the
//! builders, or says what must change. Pure, no I/O. The API server already enforces the CEL
//! rules; this re-checks what CEL cannot (cron semantics, time zones, the URL inside a Secret,
//! tenant names claimed twice), and checks the server configuration the spec renders with the
//! server's own `ServerConfigFile::validate`.

mod plan;

use std::str::FromStr as _;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{Resource, ResourceExt};
use mcp_fleet_core::server_config::Problem;
use mcp_fleet_core::{TenantName, TenantNameError};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

pub use self::plan::{DatabaseTarget, Plan};
use crate::controller::Dereferenced;
use crate::controller::status::Verdict;
use crate::crd::McpTenant;
use crate::resources::server_config;

/// Operator-wide settings the plan falls back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    pub server_image: String,
    pub cluster_domain: String,
    /// The operator's own admin URL (`--database-url`), used when a tenant names no Secret.
    pub admin_url: Option<String>,
}

/// A spec the operator cannot act on until someone changes it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidSpec {
    #[error("{0}; set spec.tenant to a valid name")]
    TenantName(#[from] TenantNameError),
    #[error("spec.backup.schedule {schedule:?} is not a valid cron expression: {reason}")]
    Schedule { schedule: String, reason: String },
    #[error("spec.backup.retention.keepWithin {0:?} is not a duration such as 30d")]
    KeepWithin(String),
    #[error("spec.backup.timeZone {0:?} is not an IANA time zone name such as Europe/Berlin")]
    TimeZone(String),
    #[error("spec.ingress.host is required when the ingress is enabled")]
    IngressHost,
    #[error("spec.autoscaling.minReplicas ({min}) must not exceed maxReplicas ({max})")]
    Autoscaling { min: i32, max: i32 },
    #[error("the admin database URL {origin} is not a PostgreSQL URL: {reason}")]
    AdminUrl { origin: String, reason: String },
    #[error("tenant {tenant:?} is already claimed by McpTenant {other}; choose another spec.tenant")]
    TenantClaimed { tenant: String, other: String },
    /// The server configuration the spec renders is one the server would refuse at start-up.
    #[error("the server would refuse the configuration this spec gives it: {}", .0.join("; "))]
    ServerConfig(Vec<Problem>),
}

impl InvalidSpec {
    /// The condition reason (CamelCase) for this problem.
    pub fn reason(&self) -> &'static str {
        match self {
            InvalidSpec::TenantName(_) => "InvalidTenantName",
            InvalidSpec::Schedule { .. } | InvalidSpec::KeepWithin(_) | InvalidSpec::TimeZone(_) => {
                "InvalidBackupSpec"
            }
            InvalidSpec::IngressHost => "InvalidIngress",
            InvalidSpec::Autoscaling { .. } => "InvalidAutoscaling",
            InvalidSpec::AdminUrl { .. } => "InvalidDatabaseConnection",
            InvalidSpec::TenantClaimed { .. } => "TenantNameConflict",
            InvalidSpec::ServerConfig(_) => "InvalidServerConfig",
        }
    }
}

/// Why a reconcile cannot go on with an McpTenant.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// The spec must change: the McpTenant stalls until it does.
    Spec(InvalidSpec),
    /// No admin database connection (no Secret named, or it lacks the URL): `DatabaseReady` says
    /// which, and the Secret watch brings the McpTenant back when it changes.
    NoAdminConnection(Verdict),
}

/// An McpTenant that passed validation: the plan for the builders, and the admin connection for
/// the database step (kept out of the plan, which every builder sees).
#[derive(Debug)]
pub struct Validated {
    pub plan: Plan,
    pub admin_url: AdminUrl,
}

/// The admin database URL; it may hold a password, so `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminUrl(String);

impl AdminUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminUrl(<redacted>)")
    }
}

/// Checks an McpTenant against what dereference found and builds the plan.
pub fn validate(t: &McpTenant, defaults: &Defaults, deref: &Dereferenced) -> Result<Validated, Invalid> {
    let tenant = tenant_name(t).map_err(Invalid::Spec)?;
    if let Some(owner) = tenant_claimed_by(t, &tenant, deref.tenants.iter().map(Arc::as_ref)) {
        let other = format!("{}/{}", owner.namespace.unwrap_or_default(), owner.name.unwrap_or_default());
        return Err(Invalid::Spec(InvalidSpec::TenantClaimed { tenant: tenant.to_string(), other }));
    }
    let admin_url = deref.admin_url.as_ref().map_err(|v| Invalid::NoAdminConnection(v.clone()))?;
    let plan = plan(t, defaults, admin_url).map_err(Invalid::Spec)?;
    // What the server checks at start-up, checked here, so a spec it would refuse stalls with the
    // problems instead of crash-looping pods.
    let mut problems = server_config(&plan, &plan.tenant.login_role()).validate();
    // The CRD leaves the issuer optional: a tenant without one is reconciled as before (its pods
    // wait for one; the operator's own tests run tenants without servers). What a spec says
    // wrongly stalls.
    problems.retain(|p| p.missing != Some("auth.issuer"));
    if !problems.is_empty() {
        return Err(Invalid::Spec(InvalidSpec::ServerConfig(problems)));
    }
    Ok(Validated { plan, admin_url: AdminUrl(admin_url.clone()) })
}

/// The tenant name in PostgreSQL: `spec.tenant`, else `metadata.name`.
pub fn tenant_name(t: &McpTenant) -> Result<TenantName, InvalidSpec> {
    Ok(TenantName::new(t.spec.tenant.clone().unwrap_or_else(|| t.name_any()))?)
}

/// Checks the spec alone and builds the plan. `admin_url` is the URL the dereference step found.
pub fn plan(t: &McpTenant, defaults: &Defaults, admin_url: &str) -> Result<Plan, InvalidSpec> {
    let tenant = tenant_name(t)?;
    let spec = &t.spec;
    if let Some(backup) = &spec.backup {
        check_schedule(&backup.schedule)?;
        if let Some(within) = &backup.retention.keep_within {
            let with_unit = within.replace('d', "days").replace('w', "weeks");
            humantime::parse_duration(&with_unit).map_err(|_| InvalidSpec::KeepWithin(within.clone()))?;
        }
        if let Some(tz) = &backup.time_zone
            && !is_time_zone_name(tz)
        {
            return Err(InvalidSpec::TimeZone(tz.clone()));
        }
    }
    if let Some(ingress) = &spec.ingress
        && ingress.enabled
        && ingress.host.as_deref().is_none_or(str::is_empty)
    {
        return Err(InvalidSpec::IngressHost);
    }
    if let Some(a) = &spec.autoscaling
        && a.min_replicas > a.max_replicas
    {
        return Err(InvalidSpec::Autoscaling { min: a.min_replicas, max: a.max_replicas });
    }
    let origin = match &spec.database.admin_secret_ref {
        Some(r) => format!("in Secret {}/{} key {}", t.namespace().unwrap_or_default(), r.name, r.key),
        None => "given to the operator (--database-url)".to_owned(),
    };
    let database = database_target(admin_url, spec.database.name.as_deref())
        .map_err(|reason| InvalidSpec::AdminUrl { origin, reason })?;
    Ok(Plan {
        name: t.name_any(),
        namespace: t.namespace().unwrap_or_default(),
        owner: t.controller_owner_ref(&()).expect("an McpTenant read from the API server has a name and uid"),
        tenant,
        spec: spec.clone(),
        image: spec.server.image.clone().unwrap_or_else(|| defaults.server_image.clone()),
        database,
        cluster_domain: defaults.cluster_domain.clone(),
    })
}

/// Cron syntax as the CronJob controller accepts it: 5 fields or a macro such as `@daily`.
pub fn check_schedule(schedule: &str) -> Result<(), InvalidSpec> {
    let err = |reason: String| InvalidSpec::Schedule { schedule: schedule.to_owned(), reason };
    let fields = schedule.split_whitespace().count();
    if !schedule.starts_with('@') && fields != 5 {
        return Err(err(format!("expected 5 fields (minute hour day month weekday), found {fields}")));
    }
    croner::Cron::from_str(schedule).map(|_| ()).map_err(|e| err(e.to_string()))
}

fn is_time_zone_name(tz: &str) -> bool {
    // The CronJob controller checks the name against its tz database; here only the shape.
    !tz.is_empty()
        && tz.len() <= 64
        && tz.split('/').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
        })
}

/// Host, port, database and TLS mode of an admin URL (never its credentials).
pub fn database_target(admin_url: &str, database: Option<&str>) -> Result<DatabaseTarget, String> {
    if !(admin_url.starts_with("postgres://") || admin_url.starts_with("postgresql://")) {
        return Err("it must start with postgres:// or postgresql://".into());
    }
    let opts = PgConnectOptions::from_str(admin_url).map_err(|e| redact(&e.to_string(), admin_url))?;
    let database = database
        .map(str::to_owned)
        .or_else(|| opts.get_database().map(str::to_owned))
        .ok_or("it names no database; add /<database> to the URL or set spec.database.name")?;
    let ssl = match opts.get_ssl_mode() {
        PgSslMode::Disable => Some("disable"),
        PgSslMode::Allow => Some("allow"),
        PgSslMode::Prefer => None,
        PgSslMode::Require => Some("require"),
        PgSslMode::VerifyCa => Some("verify-ca"),
        PgSslMode::VerifyFull => Some("verify-full"),
    };
    Ok(DatabaseTarget {
        host: opts.get_host().to_owned(),
        port: opts.get_port(),
        database,
        params: ssl.map(|m| vec![("sslmode".to_owned(), m.to_owned())]).unwrap_or_default(),
    })
}

/// Removes the URL (which may hold a password) from an error message.
fn redact(message: &str, url: &str) -> String {
    message.replace(url, "<url>")
}

/// The McpTenant (other than `me`) that claimed `tenant` first, if any: among objects with the
/// same tenant name, the oldest (then the smallest uid) owns it. Only live objects count.
pub fn tenant_claimed_by<'a>(
    me: &McpTenant,
    tenant: &TenantName,
    others: impl IntoIterator<Item = &'a McpTenant>,
) -> Option<ObjectReference> {
    let key = |t: &McpTenant| (t.metadata.creation_timestamp.clone().map(|c| c.0), t.uid());
    let mine = key(me);
    others
        .into_iter()
        .filter(|o| o.uid() != me.uid() && o.metadata.deletion_timestamp.is_none())
        .filter(|o| tenant_name(o).is_ok_and(|n| &n == tenant))
        .filter(|o| key(o) < mine)
        .min_by_key(|o| key(o))
        .map(|o| o.object_ref(&()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::{MINIMAL, defaults, tenant};

    fn plan_of(t: &McpTenant) -> Result<Plan, InvalidSpec> {
        plan(t, &defaults(), defaults().admin_url.as_deref().unwrap())
    }

    #[test]
    fn tenant_defaults_to_the_object_name_and_is_validated() {
        let mut t = tenant(MINIMAL);
        assert_eq!(plan_of(&t).unwrap().tenant.as_str(), "seattle");
        t.spec.tenant = Some("Not_Valid".into());
        let err = plan_of(&t).unwrap_err();
        assert_eq!(err.reason(), "InvalidTenantName");
        assert!(err.to_string().contains("lowercase"), "{err}");
    }

    #[test]
    fn cron_is_checked_beyond_its_shape() {
        assert!(check_schedule("0 3 * * *").is_ok());
        assert!(check_schedule("*/15 * * * 1-5").is_ok());
        assert!(check_schedule("@daily").is_ok());
        for bad in ["0 3 * *", "61 3 * * *", "0 25 * * *", "0 3 * * * *", "@sometimes"] {
            let err = check_schedule(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn backup_retention_and_time_zone_are_checked() {
        let mut t = tenant(crate::resources::fixtures::FULL);
        assert!(plan_of(&t).is_ok());
        t.spec.backup.as_mut().unwrap().retention.keep_within = Some("30x".into());
        assert_eq!(plan_of(&t).unwrap_err(), InvalidSpec::KeepWithin("30x".into()));
        t.spec.backup.as_mut().unwrap().retention.keep_within = Some("2w".into());
        t.spec.backup.as_mut().unwrap().time_zone = Some("Europe/Ber lin".into());
        assert_eq!(plan_of(&t).unwrap_err().reason(), "InvalidBackupSpec");
    }

    #[test]
    fn ingress_without_host_and_inverted_autoscaling_are_refused() {
        let mut t = tenant(crate::resources::fixtures::FULL);
        t.spec.ingress.as_mut().unwrap().host = None;
        assert_eq!(plan_of(&t).unwrap_err(), InvalidSpec::IngressHost);
        t.spec.ingress.as_mut().unwrap().enabled = false;
        assert!(plan_of(&t).is_ok(), "a disabled ingress needs no host");
        let a = t.spec.autoscaling.as_mut().unwrap();
        (a.min_replicas, a.max_replicas) = (6, 3);
        assert_eq!(plan_of(&t).unwrap_err().reason(), "InvalidAutoscaling");
    }

    #[test]
    fn admin_url_errors_never_echo_the_password() {
        let t = tenant(MINIMAL);
        for url in [
            "mysql://root:hunter2@db/zava",
            "postgres://op:hunter2@db:notaport/zava",
            "postgres://op:hunter2@db",
        ] {
            let err = plan(&t, &defaults(), url).unwrap_err();
            assert_eq!(err.reason(), "InvalidDatabaseConnection", "{url}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn database_name_overrides_the_url_and_tls_mode_is_kept() {
        let d = database_target("postgres://op:pw@10.0.0.5:6432/zava?sslmode=verify-full", Some("other"))
            .unwrap();
        assert_eq!(d.url_for("x"), "postgres://x@10.0.0.5:6432/other?sslmode=verify-full");
    }

    fn found(admin_url: Result<String, Verdict>, tenants: Vec<Arc<McpTenant>>) -> Dereferenced {
        Dereferenced { admin_url, stored: None, tenants, last_backup: None }
    }

    #[test]
    fn validate_checks_the_name_the_claim_and_the_admin_connection_in_turn() {
        let t = tenant(MINIMAL);
        let url = || Ok(defaults().admin_url.unwrap());
        assert_eq!(validate(&t, &defaults(), &found(url(), vec![])).unwrap().plan, plan_of(&t).unwrap());

        let missing = Verdict::failed("AdminSecretMissing", "Secret retail/pg does not exist");
        let err = validate(&t, &defaults(), &found(Err(missing.clone()), vec![])).unwrap_err();
        assert_eq!(err, Invalid::NoAdminConnection(missing.clone()));

        let mut older = tenant(MINIMAL);
        older.metadata.uid = Some("older".into());
        older.metadata.namespace = Some("other".into());
        let mut me = t.clone();
        me.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap(),
        ));
        older.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap(),
        ));
        // A claimed name stalls even without an admin connection: the spec must change first.
        let err = validate(&me, &defaults(), &found(Err(missing), vec![Arc::new(older)])).unwrap_err();
        assert!(matches!(err, Invalid::Spec(InvalidSpec::TenantClaimed { .. })), "{err:?}");

        let mut bad = t.clone();
        bad.spec.tenant = Some("Not_Valid".into());
        let err = validate(&bad, &defaults(), &found(url(), vec![])).unwrap_err();
        assert!(matches!(err, Invalid::Spec(InvalidSpec::TenantName(_))), "{err:?}");
    }

    #[test]
    fn a_spec_the_server_would_refuse_stalls_with_the_servers_words() {
        let url = || Ok(defaults().admin_url.unwrap());
        let mut t = tenant(crate::resources::fixtures::FULL);
        t.spec.tools.enabled.push("drop_tables".into());
        let roles = &mut t.spec.auth.roles;
        roles.get_mut("analyst").unwrap().inherits = vec!["manager".into()];
        t.spec.server.log_level = Some("info,mcp_fleet_server=loud".into());
        let Err(Invalid::Spec(err)) = validate(&t, &defaults(), &found(url(), vec![])) else {
            panic!("the spec was accepted")
        };
        assert_eq!(err.reason(), "InvalidServerConfig");
        let message = err.to_string();
        for needle in [
            "tools.enabled names unknown tool \"drop_tables\"",
            "auth.roles inherit in a cycle: analyst -> manager -> analyst",
            "logging.level",
        ] {
            assert!(message.contains(needle), "{needle:?} missing in {message}");
        }
    }

    #[test]
    fn a_log_level_that_once_panicked_the_parser_is_an_invalid_spec() {
        // tracing-subscriber slices inside `é` after the space; the reconcile would have panicked.
        let url = || Ok(defaults().admin_url.unwrap());
        let mut t = tenant(MINIMAL);
        t.spec.server.log_level = Some("info, [é]{}".into());
        let Err(Invalid::Spec(err)) = validate(&t, &defaults(), &found(url(), vec![])) else {
            panic!("the spec was accepted")
        };
        assert!(
            err.to_string().contains(r#"logging.level "info, [é]{}" is not a valid log filter"#),
            "{err}"
        );
        t.spec.server.log_level = Some("info, [é]".into());
        assert!(validate(&t, &defaults(), &found(url(), vec![])).is_ok());
    }

    #[test]
    fn a_spec_without_an_issuer_is_still_reconciled() {
        let mut t = tenant(MINIMAL);
        t.spec.auth.issuer = None;
        assert!(validate(&t, &defaults(), &found(Ok(defaults().admin_url.unwrap()), vec![])).is_ok());
    }

    #[test]
    fn the_oldest_mcp_tenant_owns_a_tenant_name() {
        let mut a = tenant(MINIMAL);
        let mut b = tenant(MINIMAL);
        a.metadata.uid = Some("a".into());
        b.metadata.uid = Some("b".into());
        b.metadata.namespace = Some("other".into());
        let t0 = k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap();
        let t1 = k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap();
        a.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0));
        b.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t1));
        let name = tenant_name(&a).unwrap();
        let all = [a.clone(), b.clone()];
        assert_eq!(tenant_claimed_by(&a, &name, &all), None, "the older one keeps it");
        let claimed = tenant_claimed_by(&b, &name, &all).expect("the younger one is refused");
        assert_eq!(claimed.namespace.as_deref(), Some("retail"));
    }
}
