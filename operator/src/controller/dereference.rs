//! Dereference, the first step of a reconcile: reads what it needs besides the McpTenant itself —
//! the admin database URL (from the referenced Secret or the operator's default), the existing
//! credentials, the other McpTenants and the newest successful backup Job. Does I/O (Kubernetes
//! API, only for a Secret not read before or changed since; the rest comes from watch caches).

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use super::status::Verdict;
use super::{Context, Error};
use crate::crd::McpTenant;
use crate::resources::{COMPONENT_LABEL, Credentials, INSTANCE_LABEL, names, read_credentials};

/// Everything a reconcile reads besides the McpTenant, for `validate` and the later steps.
#[derive(Clone, Debug)]
pub struct Dereferenced {
    /// The admin URL, or why there is none (a condition the user can act on).
    pub admin_url: Result<String, Verdict>,
    /// The credentials in the tenant's Secret, if it exists and holds a password.
    pub stored: Option<Credentials>,
    /// Every McpTenant the controller sees (to find a second claim on one tenant name).
    pub tenants: Vec<Arc<McpTenant>>,
    /// When the newest successful backup Job of this McpTenant finished.
    pub last_backup: Option<Time>,
}

/// Reads everything `t`'s reconcile needs, from the watch caches where they can answer.
pub async fn dereference(ctx: &Context, t: &McpTenant) -> Result<Dereferenced, Error> {
    let ns = t.namespace().unwrap_or_default();
    let name = t.name_any();
    let admin_url = admin_url(ctx, t).await.map_err(Error::read("the admin database Secret"))?;
    let stored = ctx
        .watched
        .own_secret(&ctx.client, &ns, &names::credentials_secret(&name))
        .await
        .map_err(Error::read("the credentials Secret"))?
        .as_deref()
        .and_then(read_credentials);
    Ok(Dereferenced {
        admin_url,
        stored,
        tenants: ctx.tenants.state(),
        last_backup: last_backup(&ctx.jobs, &ns, &name),
    })
}

/// The admin URL, or why there is none (a condition the user can act on).
pub async fn admin_url(ctx: &Context, tenant: &McpTenant) -> Result<Result<String, Verdict>, kube::Error> {
    let ns = tenant.namespace().unwrap_or_default();
    let Some(r) = &tenant.spec.database.admin_secret_ref else {
        return Ok(ctx.defaults.admin_url.clone().ok_or_else(|| {
            Verdict::failed(
                "NoAdminConnection",
                "no admin database connection: set spec.database.adminSecretRef or start the operator with --database-url",
            )
        }));
    };
    let Some(secret) = ctx.watched.secret(&ctx.client, &ns, &r.name).await? else {
        return Ok(Err(Verdict::failed(
            "AdminSecretMissing",
            format!(
                "Secret {ns}/{} (spec.database.adminSecretRef) does not exist; create it with key {:?}",
                r.name, r.key
            ),
        )));
    };
    let value = secret.data.as_ref().and_then(|d| d.get(&r.key)).map(|v| String::from_utf8(v.0.clone()));
    Ok(match value {
        Some(Ok(url)) if !url.trim().is_empty() => Ok(url.trim().to_owned()),
        Some(Ok(_)) | None => Err(Verdict::failed(
            "AdminSecretMissing",
            format!("Secret {ns}/{} has no key {:?} with a PostgreSQL URL", r.name, r.key),
        )),
        Some(Err(_)) => Err(Verdict::failed(
            "AdminSecretMissing",
            format!("key {:?} of Secret {ns}/{} is not UTF-8 text", r.key, r.name),
        )),
    })
}

/// Completion time of the newest successful backup Job of McpTenant `name`.
pub fn last_backup(jobs: &Store<Job>, ns: &str, name: &str) -> Option<Time> {
    jobs.state()
        .iter()
        .filter(|j| j.namespace().as_deref() == Some(ns))
        .filter(|j| j.labels().get(INSTANCE_LABEL).map(String::as_str) == Some(name))
        .filter(|j| j.labels().get(COMPONENT_LABEL).map(String::as_str) == Some("backup"))
        .filter(|j| job_succeeded(j))
        .filter_map(|j| j.status.as_ref().and_then(|s| s.completion_time.clone()))
        .max_by_key(|t| t.0)
}

/// Whether a Job finished successfully (condition Complete=True).
pub fn job_succeeded(job: &Job) -> bool {
    job_condition(job, "Complete")
}

/// Whether a Job failed for good (condition Failed=True).
pub fn job_failed(job: &Job) -> bool {
    job_condition(job, "Failed")
}

fn job_condition(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}
