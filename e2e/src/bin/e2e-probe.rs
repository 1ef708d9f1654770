//! A small out-of-cluster Kubernetes client that the e2e tests run the way they will run the
//! operator (`KUBECONFIG` pointing at the test control plane), to prove that harness works.
//!
//!   e2e-probe apply-configmap <namespace> <name> [key=value...]  server-side apply; prints the uid
//!   e2e-probe hold-configmap <namespace> <name>  apply it, and on SIGTERM delete it and exit 0
//!   e2e-probe control-plane   start a test control plane, print `run-dir <path>`, wait to be killed

use std::collections::BTreeMap;
use std::error::Error;
use std::io::Write as _;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use mcp_fleet_testkit::kube::{ControlPlane, install_crypto_provider};

const FIELD_MANAGER: &str = "e2e-probe";

type Result<T> = std::result::Result<T, Box<dyn Error>>;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["apply-configmap", namespace, name, data @ ..] => apply_configmap(namespace, name, data).await,
        ["hold-configmap", namespace, name] => hold_configmap(namespace, name).await,
        ["control-plane"] => control_plane(),
        _ => Err("usage: e2e-probe apply-configmap <ns> <name> [k=v...] | hold-configmap <ns> <name> | control-plane".into()),
    };
    if let Err(e) = result {
        eprintln!("e2e-probe: {e}");
        std::process::exit(1);
    }
}

async fn client() -> Result<Client> {
    install_crypto_provider();
    Ok(Client::try_default().await?)
}

async fn apply(api: &Api<ConfigMap>, name: &str, data: BTreeMap<String, String>) -> Result<ConfigMap> {
    let config_map = ConfigMap {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
        data: Some(data),
        ..ConfigMap::default()
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(name, &params, &Patch::Apply(&config_map)).await?)
}

async fn apply_configmap(namespace: &str, name: &str, pairs: &[&str]) -> Result<()> {
    let mut data = BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| format!("expected key=value, got {pair:?}"))?;
        data.insert(key.to_owned(), value.to_owned());
    }
    let api = Api::namespaced(client().await?, namespace);
    let applied = apply(&api, name, data).await?;
    println!("{}", applied.metadata.uid.unwrap_or_default());
    Ok(())
}

async fn hold_configmap(namespace: &str, name: &str) -> Result<()> {
    let api = Api::namespaced(client().await?, namespace);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    apply(&api, name, BTreeMap::from([("holder".to_owned(), std::process::id().to_string())])).await?;
    println!("holding configmap {namespace}/{name}");
    sigterm.recv().await;
    api.delete(name, &DeleteParams::default()).await?;
    println!("released configmap {namespace}/{name}");
    Ok(())
}

fn control_plane() -> Result<()> {
    let plane = ControlPlane::shared();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "run-dir {}", plane.run_dir().display())?;
    stdout.flush()?;
    loop {
        std::thread::park();
    }
}
