//! What an operator needs in a test namespace, shared by the operator tests, the Helm tests and
//! `make bench-operator`: the McpTenant CRD, a login role of its own in the test database (a
//! member of `mcpfleet_operator`, never a superuser, as in production) and the admin Secret that
//! `spec.database.adminSecretRef` names, holding that role's URL. Talks to the API server and
//! PostgreSQL.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams};
use mcp_fleet_testkit::TestDb;
use mcp_fleet_testkit::pg::create_operator_login;

use crate::TestNamespace;

/// The admin Secret's name; its key is `url`.
pub const ADMIN_SECRET: &str = "pg-admin";

/// Installs the McpTenant CRD from `crds/` and waits until it is Established.
pub async fn install_crd(ns: &TestNamespace) {
    let crd = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/mcptenants.mcpfleet.io.yaml");
    ns.kubectl(&["apply", "--server-side", "--force-conflicts", "--field-manager=e2e-crd", "-f", crd]).await;
    ns.wait_crds_established(&["mcptenants.mcpfleet.io"]).await;
}

/// A new operator login role in `db`: its URL.
pub async fn operator_url(db: &TestDb) -> String {
    let (role, password) = create_operator_login(&db.admin).await;
    db.url_as(&role, &password)
}

/// Puts `url` into the admin Secret of `ns` (created, or changed in place).
pub async fn put_admin_secret(ns: &TestNamespace, url: &str) {
    let secret = Secret {
        metadata: ObjectMeta { name: Some(ADMIN_SECRET.into()), ..ObjectMeta::default() },
        data: Some(BTreeMap::from([("url".to_owned(), ByteString(url.as_bytes().to_vec()))])),
        ..Secret::default()
    };
    ns.api::<Secret>()
        .patch(ADMIN_SECRET, &PatchParams::apply("e2e").force(), &Patch::Apply(&secret))
        .await
        .expect("apply the admin Secret");
}

/// A new operator login role in `db` with its URL in the admin Secret of `ns`: the URL.
pub async fn admin_login(ns: &TestNamespace, db: &TestDb) -> String {
    let url = operator_url(db).await;
    put_admin_secret(ns, &url).await;
    url
}
