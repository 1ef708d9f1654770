//! The apply half of a reconcile, as a pipeline of typed steps: dereference (reads) → validate
//! (pure: a [`Plan`]) → build (pure: the [`Children`](crate::build::Children)) → database →
//! apply → status. Nothing is written before validate passes: an invalid spec stalls (status +
//! Event, wait for a change); transient failures return an error (backoff).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use mcp_fleet_core::tenant::{generate_password, scram_verifier};
use tracing::info;

use super::apply::{Applier, apply_children};
use super::dereference::{Dereferenced, dereference};
use super::status::{
    Observation, Verdict, backup_verdict, desired_status, event, observe_workload, publish, rolled_out,
    rollout_finished_at,
};
use super::{Context, Error};
use crate::build::build;
use crate::crd::McpTenant;
use crate::database::{self, Retired, RoleLimits};
use crate::resources::{Credentials, ROTATE_ANNOTATION, decide_credentials, names};
use crate::validate::{self, AdminUrl, Invalid, InvalidSpec, Plan, Validated};

pub async fn apply_tenant(t: Arc<McpTenant>, ctx: &Context) -> Result<Action, Error> {
    let mut obs = Observation { generation: t.metadata.generation, ..Observation::default() };
    if t.spec.suspend {
        obs.stalled =
            Some(Verdict::failed("Suspended", "spec.suspend is true: nothing is changed until it is false"));
        finish(ctx, &t, &obs).await?;
        return Ok(Action::await_change());
    }

    let found = dereference(ctx, &t).await?;
    obs.tenant = validate::tenant_name(&t).ok().map(|n| n.to_string());
    let Validated { plan, admin_url } = match validate::validate(&t, &ctx.defaults, &found) {
        Ok(validated) => validated,
        Err(Invalid::Spec(e)) => return stall(ctx, &t, obs, e).await,
        Err(Invalid::NoAdminConnection(verdict)) => {
            // The Secret watch brings us back when it appears or changes.
            obs.database = Some(verdict);
            finish(ctx, &t, &obs).await?;
            return Ok(Action::requeue(ctx.resync));
        }
    };
    obs.endpoint = Some(plan.endpoint());
    obs.credentials_secret = Some(names::credentials_secret(&plan.name));

    // Keep the stored password unless none exists or a rotation was asked for.
    let rotate_to = t.annotations().get(ROTATE_ANNOTATION).map(String::as_str);
    let creds =
        decide_credentials(found.stored.as_ref(), rotate_to, &plan.tenant.login_roles(), generate_password);
    let children = build(&plan, &creds);

    if let Some(action) = apply_database(ctx, &t, &plan, &admin_url, &found, &creds, &mut obs).await? {
        return Ok(action);
    }

    // Kubernetes children. A refused child (quota, admission, RBAC, conflict) is said in the
    // status and an Event, then retried with backoff.
    let applier = Applier {
        client: &ctx.client,
        watched: &ctx.watched,
        applied: &ctx.applied,
        namespace: &children.namespace,
        owner_uid: &children.owner_uid,
    };
    let deployment = match apply_children(&applier, &children).await {
        Ok(d) => d,
        Err(e) => {
            obs.workload = Some(Verdict::failed(e.reason(), e.to_string()));
            finish(ctx, &t, &obs).await?;
            return Err(e.into());
        }
    };
    if let Some(stored) = found.stored.as_ref().filter(|stored| **stored != creds) {
        let note = if stored.login == creds.login {
            format!("new password for role {}; pods roll", creds.login)
        } else {
            format!(
                "new password for role {}; pods roll, and role {} stops logging in once no pod uses it",
                creds.login, stored.login
            )
        };
        event(&ctx.recorder, &t, false, "PasswordRotated", note).await;
    }
    observe_workload(&mut obs, &deployment);
    let retire_again = if rolled_out(&deployment) {
        retire_old_login(ctx, &t, &plan, &admin_url, &creds, &deployment, &mut obs).await?
    } else {
        None
    };
    obs.backup = Some(backup_verdict(&plan));
    obs.last_backup = Some(found.last_backup.clone());
    finish(ctx, &t, &obs).await?;
    Ok(Action::requeue(retire_again.unwrap_or(ctx.resync)))
}

/// Once every pod runs with `creds`, retires the tenant's other login role, so a rotated-away
/// password stops working. `Some(delay)` when sessions of that role are still open (a pod of
/// the old rollout still shutting down): ask again after `delay`.
async fn retire_old_login(
    ctx: &Context,
    t: &McpTenant,
    plan: &Plan,
    admin_url: &AdminUrl,
    creds: &Credentials,
    deployment: &k8s_openapi::api::apps::v1::Deployment,
    obs: &mut Observation,
) -> Result<Option<std::time::Duration>, Error> {
    let pool = ctx.databases.pool(admin_url.as_str(), &plan.database.database)?;
    // Sessions that outlive the rollout by longer than any pod's shutdown are not the pods': someone
    // else holds the old password, and must not keep it alive.
    let force = rollout_finished_at(deployment).is_some_and(|at| {
        k8s_openapi::jiff::Timestamp::now().duration_since(at)
            > RETIRE_FORCE_AFTER.try_into().unwrap_or_default()
    });
    match database::retire_other_login(&pool, &plan.tenant, &creds.login, force).await {
        Ok(Retired::Already) => Ok(None),
        Ok(Retired::Busy) => Ok(Some(RETIRE_RETRY)),
        Ok(Retired::Now) => {
            let old = plan.tenant.other_login(&creds.login);
            let note = format!("every pod logs in as {}; role {old} no longer logs in", creds.login);
            event(&ctx.recorder, t, false, "OldLoginRetired", note).await;
            Ok(None)
        }
        Err(e) => {
            obs.database = Some(Verdict::failed(e.reason(), e.to_string()));
            finish(ctx, t, obs).await?;
            Err(e.into())
        }
    }
}

/// How soon to look again when the old login role still has sessions.
const RETIRE_RETRY: std::time::Duration = std::time::Duration::from_secs(5);
/// How long after the rollout finished the old login role's sessions are ended rather than
/// waited for: longer than a pod's termination grace period (45 s).
const RETIRE_FORCE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Makes the database match: roles, limits, password, store mapping. `Some(action)` when the
/// reconcile stops here (the database refused the spec and waits for a change).
async fn apply_database(
    ctx: &Context,
    t: &McpTenant,
    plan: &Plan,
    admin_url: &AdminUrl,
    found: &Dereferenced,
    creds: &Credentials,
    obs: &mut Observation,
) -> Result<Option<Action>, Error> {
    let new_password = found.stored.as_ref() != Some(creds);
    let pool = ctx.databases.pool(admin_url.as_str(), &plan.database.database)?;
    let verifier = new_password.then(|| scram_verifier(&creds.password));
    let limits = RoleLimits {
        connection_limit: plan.spec.database.connection_limit,
        statement_timeout_ms: plan.spec.database.statement_timeout_ms,
    };
    let stored_password = found.stored.as_ref().filter(|_| !new_password).map(|c| c.password.as_str());
    match database::apply_tenant(
        &pool,
        &plan.tenant,
        &creds.login,
        &plan.spec.stores,
        verifier.as_deref(),
        stored_password,
        limits,
    )
    .await
    {
        Ok(applied) => {
            obs.database = Some(Verdict::ok(
                "RolesApplied",
                format!(
                    "roles {} and {} own stores {:?}",
                    applied.group_role, applied.login_role, applied.store_ids
                ),
            ));
            obs.store_ids = Some(applied.store_ids);
            if applied.created {
                info!(tenant = %plan.tenant, "created the tenant's roles");
            }
            Ok(None)
        }
        Err(e) => {
            obs.database = Some(Verdict::failed(e.reason(), e.to_string()));
            finish(ctx, t, obs).await?;
            if e.needs_user_action() { Ok(Some(Action::requeue(ctx.resync))) } else { Err(e.into()) }
        }
    }
}

/// An invalid spec: say why in the status and wait for the spec to change.
async fn stall(ctx: &Context, t: &McpTenant, mut obs: Observation, e: InvalidSpec) -> Result<Action, Error> {
    obs.stalled = Some(Verdict::failed(e.reason(), e.to_string()));
    finish(ctx, t, &obs).await?;
    Ok(Action::await_change())
}

/// Writes the status if it changed (with Events) and updates the tenants gauge.
async fn finish(ctx: &Context, t: &McpTenant, obs: &Observation) -> Result<(), Error> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let next = desired_status(t.status.as_ref(), obs, &now);
    ctx.metrics.set_conditions(
        &super::key(t),
        Some(next.conditions.iter().map(|c| (c.type_.clone(), c.status.clone())).collect()),
    );
    if publish(&ctx.client, &ctx.recorder, t, &next).await.map_err(Error::Status)? {
        info!(ready = next.is_true(crate::crd::condition::READY), "status updated");
    }
    Ok(())
}
