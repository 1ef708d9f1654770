//! The apply half of a reconcile: validate, make the database match, apply every child with
//! server-side apply, delete the children no longer wanted, then write the status. Invalid specs
//! stall (status + Event, wait for a change); transient failures return an error (backoff).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use mcp_fleet_core::tenant::{generate_password, scram_verifier};
use tracing::info;

use super::apply::{ApplyError, apply, delete_owned};
use super::status::{Observation, Verdict, desired_status, event, publish};
use super::{Context, Error, dereference};
use crate::crd::McpTenant;
use crate::database::{self, RoleLimits};
use crate::resources::{self as build, Credentials, Plan, ROTATE_ANNOTATION, names};
use crate::validate::{self, InvalidSpec};

pub async fn apply_tenant(t: Arc<McpTenant>, ctx: &Context) -> Result<Action, Error> {
    let mut obs = Observation { generation: t.metadata.generation, ..Observation::default() };
    if t.spec.suspend {
        obs.stalled =
            Some(Verdict::failed("Suspended", "spec.suspend is true: nothing is changed until it is false"));
        finish(ctx, &t, &obs).await?;
        return Ok(Action::await_change());
    }
    let tenant = match validate::tenant_name(&t) {
        Ok(n) => n,
        Err(e) => return stall(ctx, &t, obs, e).await,
    };
    obs.tenant = Some(tenant.to_string());
    let others: Vec<Arc<McpTenant>> = ctx.tenants.state();
    if let Some(owner) = validate::tenant_claimed_by(&t, &tenant, others.iter().map(Arc::as_ref)) {
        let other = format!("{}/{}", owner.namespace.unwrap_or_default(), owner.name.unwrap_or_default());
        return stall(ctx, &t, obs, InvalidSpec::TenantClaimed { tenant: tenant.to_string(), other }).await;
    }

    // Dereference: the admin connection.
    let admin_url = match dereference::admin_url(&ctx.client, &t, ctx.defaults.admin_url.as_deref())
        .await
        .map_err(Error::read("the admin database Secret"))?
    {
        Ok(url) => url,
        Err(verdict) => {
            // The Secret watch brings us back when it appears or changes.
            obs.database = Some(verdict);
            finish(ctx, &t, &obs).await?;
            return Ok(Action::requeue(ctx.resync));
        }
    };
    let plan = match validate::plan(&t, &ctx.defaults, &admin_url) {
        Ok(p) => p,
        Err(e) => return stall(ctx, &t, obs, e).await,
    };
    obs.endpoint = Some(plan.endpoint());
    obs.credentials_secret = Some(names::credentials_secret(&plan.name));

    // Credentials: keep the stored password unless none exists or a rotation was asked for.
    let stored = dereference::credentials(&ctx.client, &plan.namespace, &plan.name)
        .await
        .map_err(Error::read("the credentials Secret"))?;
    let rotate_to = t.annotations().get(ROTATE_ANNOTATION).cloned();
    let creds = match &stored {
        Some(c) if rotate_to.is_none() || c.rotated_for == rotate_to => c.clone(),
        _ => Credentials { password: generate_password(), rotated_for: rotate_to },
    };
    let new_password = stored.as_ref() != Some(&creds);

    // Database: roles, limits, password, store mapping.
    let pool = ctx.databases.pool(&admin_url, &plan.database.database)?;
    let verifier = new_password.then(|| scram_verifier(&creds.password));
    let limits = RoleLimits {
        connection_limit: plan.spec.database.connection_limit,
        statement_timeout_ms: plan.spec.database.statement_timeout_ms,
    };
    let stored_password = stored.as_ref().filter(|_| !new_password).map(|c| c.password.as_str());
    match database::apply_tenant(
        &pool,
        &tenant,
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
                info!(tenant = %tenant, "created the tenant's roles");
            }
        }
        Err(e) => {
            obs.database = Some(Verdict::failed(e.reason(), e.to_string()));
            finish(ctx, &t, &obs).await?;
            return if e.needs_user_action() { Ok(Action::requeue(ctx.resync)) } else { Err(e.into()) };
        }
    }

    // Kubernetes children. A refused child (quota, admission, RBAC, conflict) is said in the
    // status and an Event, then retried with backoff.
    let deployment = match apply_children(ctx, &plan, &creds).await {
        Ok(d) => d,
        Err(e) => {
            obs.workload = Some(Verdict::failed(e.reason(), e.to_string()));
            finish(ctx, &t, &obs).await?;
            return Err(e.into());
        }
    };
    if new_password && stored.is_some() {
        event(
            &ctx.recorder,
            &t,
            false,
            "PasswordRotated",
            format!("new password for role {}; pods roll", tenant.login_role()),
        )
        .await;
    }
    observe_workload(&mut obs, &deployment);
    obs.backup = Some(backup_verdict(&plan));
    obs.last_backup = Some(dereference::last_backup(&ctx.jobs, &plan.namespace, &plan.name));
    finish(ctx, &t, &obs).await?;
    Ok(Action::requeue(ctx.resync))
}

/// Applies every wanted child and deletes the unwanted ones; returns the applied Deployment.
async fn apply_children(ctx: &Context, plan: &Plan, creds: &Credentials) -> Result<Deployment, ApplyError> {
    let c = &ctx.client;
    let uid = plan.owner.uid.as_str();
    let ns = plan.namespace.as_str();
    match build::service_account(plan) {
        Some(sa) => drop(apply(c, &sa).await?),
        None => drop(delete_owned::<ServiceAccount>(c, ns, &plan.name, uid).await?),
    }
    apply(c, &build::credentials_secret(plan, creds)).await?;
    let config = build::config_map(plan);
    apply(c, &config).await?;
    apply(c, &build::service(plan)).await?;
    let hash = build::pod_template_hash(&build::render_server_config(plan), &creds.password);
    let deployment = apply(c, &build::deployment(plan, &hash)).await?;
    match build::horizontal_pod_autoscaler(plan) {
        Some(h) => drop(apply(c, &h).await?),
        None => drop(delete_owned::<HorizontalPodAutoscaler>(c, ns, &plan.name, uid).await?),
    }
    apply(c, &build::pod_disruption_budget(plan)).await?;
    match build::network_policy(plan) {
        Some(n) => drop(apply(c, &n).await?),
        None => drop(delete_owned::<NetworkPolicy>(c, ns, &plan.name, uid).await?),
    }
    match build::ingress(plan) {
        Some(i) => drop(apply(c, &i).await?),
        None => drop(delete_owned::<Ingress>(c, ns, &plan.name, uid).await?),
    }
    match build::backup_cron_job(plan) {
        Some(j) => drop(apply(c, &j).await?),
        None => drop(delete_owned::<CronJob>(c, ns, &names::backup_cron_job(&plan.name), uid).await?),
    }
    Ok(deployment)
}

fn observe_workload(obs: &mut Observation, d: &Deployment) {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let seen = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    obs.replicas = Some(Some(desired));
    obs.ready_replicas = Some(Some(ready));
    obs.workload = Some(if desired == 0 {
        Verdict::ok("ScaledToZero", "the Deployment has 0 replicas")
    } else if !seen {
        Verdict::failed("Progressing", "the Deployment controller has not seen the latest spec yet")
    } else if available >= desired && updated >= desired {
        Verdict::ok("Available", format!("{available} of {desired} replicas available"))
    } else {
        Verdict::failed(
            "Progressing",
            format!(
                "{available} of {desired} replicas available, {updated} updated; see `kubectl describe deployment {}`",
                d.name_any()
            ),
        )
    });
}

fn backup_verdict(plan: &Plan) -> Verdict {
    match &plan.spec.backup {
        None => Verdict::failed("NotConfigured", "spec.backup is not set"),
        Some(b) if b.suspend => Verdict::failed("Suspended", "spec.backup.suspend is true"),
        Some(b) => Verdict::ok(
            "Scheduled",
            format!(
                "CronJob {} runs {:?}{} to {}",
                names::backup_cron_job(&plan.name),
                b.schedule,
                b.time_zone.as_ref().map(|z| format!(" ({z})")).unwrap_or_default(),
                b.destination
            ),
        ),
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
