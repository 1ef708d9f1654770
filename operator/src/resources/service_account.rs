//! The tenant's ServiceAccount (no API token mounted: the server never calls the API). Pure.

use k8s_openapi::api::core::v1::ServiceAccount;

use crate::validate::Plan;

/// `None` when the spec names an existing service account instead.
pub fn service_account(plan: &Plan) -> Option<ServiceAccount> {
    if plan.spec.server.service_account_name.is_some() {
        return None;
    }
    Some(ServiceAccount {
        metadata: plan.metadata(plan.name.clone(), "server"),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::minimal;

    #[test]
    fn own_account_without_api_token_unless_one_is_named() {
        let mut p = minimal();
        let sa = service_account(&p).unwrap();
        assert_eq!(sa.metadata.name.as_deref(), Some("seattle"));
        assert_eq!(sa.automount_service_account_token, Some(false));
        assert_eq!(sa.metadata.owner_references.unwrap()[0].kind, "McpTenant");
        p.spec.server.service_account_name = Some("shared".into());
        assert!(service_account(&p).is_none());
        assert_eq!(p.service_account_name(), "shared");
    }
}
