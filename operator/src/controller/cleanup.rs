//! The cleanup half of a reconcile (finalizer): applies `deletionPolicy` to the tenant's roles —
//! Retain keeps them, Delete drops them, Snapshot runs a final backup Job and drops them once it
//! succeeded. Kubernetes garbage-collects the children. Does I/O.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::apply::apply;
use super::status::event;
use super::{Context, Error, dereference};
use crate::crd::{DeletionPolicy, McpTenant};
use crate::database;
use crate::resources::{names, snapshot_job};
use crate::validate;

pub async fn cleanup(t: Arc<McpTenant>, ctx: &Context) -> Result<Action, Error> {
    ctx.metrics.set_conditions(&super::key(&t), None);
    // Kubernetes collects the children: nothing of them to remember.
    ctx.applied.forget_owner(&t.uid().unwrap_or_default());
    let Ok(tenant) = validate::tenant_name(&t) else {
        return Ok(Action::await_change()); // never valid, so never created
    };
    let others = ctx.tenants.state();
    if let Some(owner) = validate::tenant_claimed_by(&t, &tenant, others.iter().map(Arc::as_ref)) {
        let note = format!(
            "roles of tenant {tenant} kept: they belong to McpTenant {}/{}",
            owner.namespace.unwrap_or_default(),
            owner.name.unwrap_or_default()
        );
        event(&ctx.recorder, &t, false, "RolesKept", note).await;
        return Ok(Action::await_change());
    }
    let policy = t.spec.deletion_policy;
    if policy == DeletionPolicy::Retain {
        let note = format!(
            "deletionPolicy Retain: roles {}, {} and the store mapping stay in PostgreSQL",
            tenant.group_role(),
            tenant.login_roles().join(", ")
        );
        event(&ctx.recorder, &t, false, "RolesRetained", note).await;
        return Ok(Action::await_change());
    }
    let admin_url = match dereference::admin_url(ctx, &t)
        .await
        .map_err(Error::read("the admin database Secret"))?
    {
        Ok(url) => url,
        Err(v) => {
            // Never block a namespace deletion forever on a Secret deleted with it.
            let note = format!(
                "{}; roles of tenant {tenant} were NOT dropped: run SELECT tenancy.drop_tenant('{tenant}') as the operator role",
                v.message
            );
            event(&ctx.recorder, &t, true, "RolesNotDropped", note).await;
            return Ok(Action::await_change());
        }
    };
    let plan = validate::plan(&t, &ctx.defaults, &admin_url).ok();
    if policy == DeletionPolicy::Snapshot
        && let Some(job) = plan.as_ref().and_then(snapshot_job)
    {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &t.namespace().unwrap_or_default());
        let name = names::snapshot_job(&t.name_any());
        match api.get_opt(&name).await.map_err(Error::read("the final backup Job"))? {
            None => {
                apply(&ctx.client, &job).await?;
                event(
                    &ctx.recorder,
                    &t,
                    false,
                    "FinalBackupStarted",
                    format!("Job {name} takes a final backup"),
                )
                .await;
                // An error keeps the finalizer (an Ok would let the McpTenant go now).
                return Err(waiting(&name, 5));
            }
            Some(j) if dereference::job_failed(&j) => {
                let note = format!(
                    "Job {name} failed; the roles stay until it succeeds. Delete the Job to retry, or set deletionPolicy to Delete or Retain"
                );
                event(&ctx.recorder, &t, true, "FinalBackupFailed", note).await;
                return Err(waiting(&name, 300));
            }
            Some(j) if !dereference::job_succeeded(&j) => return Err(waiting(&name, 5)),
            Some(_) => {}
        }
    }
    let database = match &plan {
        Some(p) => p.database.database.clone(),
        None => validate::database_target(&admin_url, t.spec.database.name.as_deref())
            .map(|d| d.database)
            .unwrap_or_default(),
    };
    let pool = ctx.databases.pool(&admin_url, &database)?;
    let dropped = database::drop_tenant(&pool, &tenant).await?;
    let note = if dropped {
        format!(
            "deletionPolicy {policy:?}: dropped roles {}, {}",
            tenant.group_role(),
            tenant.login_roles().join(", ")
        )
    } else {
        format!("deletionPolicy {policy:?}: tenant {tenant} had no roles left to drop")
    };
    event(&ctx.recorder, &t, false, "RolesDropped", note).await;
    Ok(Action::await_change())
}

fn waiting(job: &str, secs: u64) -> Error {
    Error::Waiting {
        what: format!("final backup Job {job} has not succeeded"),
        after: Duration::from_secs(secs),
    }
}
