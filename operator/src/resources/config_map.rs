//! The server configuration (`ServerConfigFile`, the contract in core) rendered into the
//! ConfigMap key `server.yaml`. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use mcp_fleet_core::server_config::{
    AUTH_CA_MOUNT_PATH, AuthMode, AuthSection, DB_PASSWORD_MOUNT_PATH, DatabaseSection, EmbeddingsSection,
    LimitsSection, LoggingSection, SERVER_PORT, ServerConfigFile, TenancyMode, ToolsSection,
};

use super::names;
use crate::validate::Plan;

/// The ConfigMap key holding the rendered file.
pub const CONFIG_KEY: &str = "server.yaml";
/// How long a tenant's server keeps serving after SIGTERM with readiness down, so that the
/// EndpointSlice and the ingress controller stop sending it calls before it stops accepting.
pub const SHUTDOWN_DELAY: &str = "5s";

/// What the tenant's server reads at start-up.
/// `login` is the login role the server connects as (one of the tenant's two, see
/// [`TenantName::login_roles`](mcp_fleet_core::TenantName::login_roles)).
pub fn server_config(plan: &Plan, login: &str) -> ServerConfigFile {
    let spec = &plan.spec;
    let service = plan.service_host();
    let short = format!("{}.{}", plan.name, plan.namespace);
    let mut allowed_hosts = vec![
        plan.name.clone(),
        format!("{}:{SERVER_PORT}", plan.name),
        short.clone(),
        format!("{short}:{SERVER_PORT}"),
        format!("{short}.svc"),
        format!("{short}.svc:{SERVER_PORT}"),
        service.clone(),
        format!("{service}:{SERVER_PORT}"),
    ];
    if let Some(host) = plan.ingress_host() {
        allowed_hosts.push(host.to_owned());
    }
    let auth = &spec.auth;
    ServerConfigFile {
        tenant: Some(plan.tenant.to_string()),
        listen: Some(format!("0.0.0.0:{SERVER_PORT}")),
        public_url: Some(plan.endpoint()),
        allowed_hosts,
        database: DatabaseSection {
            url: Some(plan.database.url_for(login)),
            password_file: Some(DB_PASSWORD_MOUNT_PATH.into()),
            mode: Some(TenancyMode::Dedicated),
            max_connections: spec.database.max_connections_per_replica,
            statement_timeout: Some(format!("{}ms", spec.database.statement_timeout_ms)),
            application_name: Some(format!("mcp-fleet-server/{}", plan.tenant)),
            ..DatabaseSection::default()
        },
        tools: ToolsSection {
            enabled: spec.tools.enabled.clone(),
            row_cap: spec.tools.row_cap,
            max_result_bytes: spec.tools.max_result_bytes,
            max_estimated_cost: spec.tools.max_estimated_cost,
        },
        embeddings: spec
            .tools
            .embeddings
            .as_ref()
            .map(|e| EmbeddingsSection {
                provider: Some(e.provider),
                model_dir: None,
                openai: e.openai.clone(),
            })
            .unwrap_or_default(),
        auth: AuthSection {
            mode: Some(AuthMode::Oidc),
            production: true,
            issuer: auth.issuer.clone(),
            audiences: auth.audiences.clone(),
            jwks_uri: auth.jwks_uri.clone(),
            ca_file: auth.issuer_ca_ref.as_ref().map(|_| AUTH_CA_MOUNT_PATH.into()),
            algorithms: Vec::new(),
            leeway: None,
            claims: auth.claims.clone(),
            roles: auth.roles.clone(),
            default_role: auth.default_role.clone(),
        },
        limits: LimitsSection {
            per_subject: spec.limits.per_subject.clone(),
            shutdown_delay: Some(SHUTDOWN_DELAY.to_owned()),
            ..LimitsSection::default()
        },
        logging: LoggingSection {
            format: Some("json".into()),
            level: Some(spec.server.log_level.clone().unwrap_or_else(|| "info".into())),
            otlp_endpoint: spec.server.otlp_endpoint.clone(),
        },
    }
}

/// The file as YAML (stable for equal input, so its hash only changes when the content does).
pub fn render(plan: &Plan, login: &str) -> String {
    serde_saphyr::to_string(&server_config(plan, login)).expect("the server config always serialises")
}

pub fn config_map(plan: &Plan, login: &str) -> ConfigMap {
    ConfigMap {
        metadata: plan.metadata(names::config_map(&plan.name), "server"),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_owned(), render(plan, login))])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::{full, minimal};

    #[test]
    fn minimal_config_serves_the_tenant_in_production_mode() {
        let cm = config_map(&minimal(), "mcpt_seattle_login");
        assert_eq!(cm.metadata.name.as_deref(), Some("seattle-config"));
        let yaml = &cm.data.unwrap()[CONFIG_KEY];
        let cfg: ServerConfigFile = serde_saphyr::from_str(yaml).expect("the server can parse it");
        assert_eq!(cfg.tenant.as_deref(), Some("seattle"));
        assert!(cfg.auth.production, "deployed servers refuse auth mode none");
        assert_eq!(cfg.auth.issuer.as_deref(), Some("https://login.example.com/realms/retail"));
        assert_eq!(cfg.public_url.as_deref(), Some("http://seattle.retail.svc.cluster.local:8080/mcp"));
        assert!(cfg.allowed_hosts.contains(&"seattle.retail.svc.cluster.local:8080".to_owned()));
        assert_eq!(
            cfg.database.url.as_deref(),
            Some("postgres://mcpt_seattle_login@db.retail.svc:5432/zava?sslmode=require")
        );
        assert_eq!(cfg.database.password_file.as_deref(), Some(std::path::Path::new(DB_PASSWORD_MOUNT_PATH)));
        assert!(!yaml.contains("s3cret"), "the admin password never reaches a tenant:\n{yaml}");
    }

    #[test]
    fn full_config_carries_auth_tools_embeddings_and_the_ingress_host() {
        let cfg = server_config(&full(), "mcpt_eastside_login");
        assert_eq!(cfg.public_url.as_deref(), Some("https://eastside.mcp.example.com/mcp"));
        assert!(cfg.allowed_hosts.contains(&"eastside.mcp.example.com".to_owned()));
        assert_eq!(
            cfg.database.url.as_deref(),
            Some("postgres://mcpt_eastside_login@db.retail.svc:5432/zava?sslmode=require")
        );
        assert_eq!(cfg.database.max_connections, Some(8));
        assert_eq!(cfg.auth.claims.tenant.as_deref(), Some("tid"));
        assert_eq!(cfg.auth.roles["manager"].inherits, vec!["analyst".to_owned()]);
        assert_eq!(cfg.auth.default_role.as_deref(), Some("analyst"));
        assert_eq!(cfg.auth.ca_file.as_deref(), Some(std::path::Path::new(AUTH_CA_MOUNT_PATH)));
        assert_eq!(server_config(&minimal(), "mcpt_seattle_login").auth.ca_file, None);
        assert_eq!(cfg.tools.row_cap, Some(1000));
        assert_eq!(cfg.tools.enabled.len(), 5);
        assert_eq!(cfg.tools.max_estimated_cost, Some(1e6));
        assert_eq!(server_config(&minimal(), "mcpt_seattle_login").tools.max_estimated_cost, None);
        assert_eq!(cfg.limits.per_subject.max_concurrent, Some(2));
        assert_eq!(cfg.limits.per_subject.requests_per_minute, Some(60));
        assert_eq!(
            server_config(&minimal(), "mcpt_seattle_login").limits,
            LimitsSection { shutdown_delay: Some("5s".into()), ..LimitsSection::default() },
            "the server's defaults apply, except that a pod waits for its endpoints to go first"
        );
        assert_eq!(cfg.embeddings.openai.unwrap().api_key_env.as_deref(), Some("AZURE_OPENAI_API_KEY"));
        assert_eq!(cfg.logging.level.as_deref(), Some("info,mcp_fleet_server=debug"));
    }

    #[test]
    fn rendering_is_stable() {
        assert_eq!(render(&full(), "l"), render(&full(), "l"));
    }
}
