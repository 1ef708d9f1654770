//! Fuzz target: an McpTenant as `kubectl apply` hands it to the operator, through the pure part
//! of a reconcile: validate (the spec's own checks and the server's start-up checks on the
//! configuration it would get), then build every child object, serialized as the apply step
//! sends it. Nothing may panic: a panic here is an operator that crash-loops on one tenant's
//! spec, for every tenant. No I/O: what dereference would read is fixed.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mcp_fleet_operator::build::build;
use mcp_fleet_operator::controller::Dereferenced;
use mcp_fleet_operator::crd::McpTenant;
use mcp_fleet_operator::resources::{ROTATE_ANNOTATION, decide_credentials};
use mcp_fleet_operator::validate::{Defaults, Validated, validate};

const ADMIN_URL: &str = "postgres://mcpfleet_op:s3cret@db.retail.svc:5432/zava?sslmode=require";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut t) = serde_saphyr::from_str::<McpTenant>(text) else { return };
    // What the API server sets on every stored object (it refuses a name that is no DNS name).
    let name = t.metadata.name.get_or_insert_with(|| "fuzz".into());
    if name.is_empty()
        || name.len() > 253
        || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return;
    }
    t.metadata.namespace.get_or_insert_with(|| "retail".into());
    t.metadata.uid = Some("0b7c1c7e-0000-4000-8000-000000000001".into());
    t.metadata.generation = Some(1);

    let defaults = Defaults {
        server_image: "mcp-fleet-server:fuzz".into(),
        cluster_domain: "cluster.local".into(),
        admin_url: Some(ADMIN_URL.into()),
    };
    // A second McpTenant with the same spec: the claim check compares the two.
    let mut other = t.clone();
    other.metadata.name = Some("other".into());
    other.metadata.uid = Some("0b7c1c7e-0000-4000-8000-000000000002".into());
    let found = Dereferenced {
        admin_url: Ok(ADMIN_URL.into()),
        stored: None,
        tenants: vec![Arc::new(t.clone()), Arc::new(other)],
        last_backup: None,
    };
    let Ok(Validated { plan, .. }) = validate(&t, &defaults, &found) else { return };
    let rotate_to =
        t.metadata.annotations.as_ref().and_then(|a| a.get(ROTATE_ANNOTATION)).map(String::as_str);
    let creds = decide_credentials(None, rotate_to, &plan.tenant.login_roles(), || "fuzz-password".into());
    let children = build(&plan, &creds);
    let _ = serde_json::to_vec(&children).expect("children serialize");
});
