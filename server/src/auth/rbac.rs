//! What a caller's roles grant: the union of its roles' permissions. The roles themselves are
//! configuration, flattened and checked by `mcp_fleet_core::server_config` (so the operator
//! refuses what the server would). Pure.

use std::collections::{BTreeMap, BTreeSet};

use mcp_fleet_core::server_config::{AuthSection, FlatRole, Problem};

use crate::auth::identity::Grants;

/// The configured roles, resolved.
#[derive(Clone, Debug)]
pub struct RoleMap {
    roles: BTreeMap<String, FlatRole>,
    default_role: Option<String>,
}

impl RoleMap {
    /// Resolves the roles of `auth` (or the built-in ones), reporting every problem found.
    pub fn from_config(auth: &AuthSection) -> Result<Self, Vec<Problem>> {
        Ok(Self::new(auth.flat_roles()?, auth.default_role.clone()))
    }

    /// Roles already flattened (and checked).
    pub fn new(roles: BTreeMap<String, FlatRole>, default_role: Option<String>) -> Self {
        Self { roles, default_role }
    }

    /// What a caller holding `names` may do. Unknown names are ignored; with no known role the
    /// default role applies, and without one the caller may call nothing.
    pub fn grants(&self, names: &[String]) -> Grants {
        let mut known: Vec<&String> = names.iter().filter(|n| self.roles.contains_key(*n)).collect();
        if known.is_empty()
            && let Some(d) = &self.default_role
        {
            known.push(d);
        }
        let mut tools: Option<BTreeSet<String>> = Some(BTreeSet::new());
        let mut pii = false;
        let mut row_cap: Option<u32> = None;
        let mut any_uncapped = false;
        for name in &known {
            let r = &self.roles[*name];
            match (&mut tools, &r.tools) {
                (_, None) => tools = None,
                (Some(t), Some(rt)) => t.extend(rt.iter().cloned()),
                (None, Some(_)) => {}
            }
            pii |= r.pii;
            match r.row_cap {
                Some(c) => row_cap = Some(row_cap.map_or(c, |x| x.max(c))),
                None => any_uncapped = true,
            }
        }
        Grants {
            roles: known.into_iter().cloned().collect(),
            tools,
            pii,
            row_cap: if any_uncapped { None } else { row_cap },
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.roles.keys()
    }
}

#[cfg(test)]
mod tests {
    use mcp_fleet_core::server_config::RoleSection;

    use super::*;

    fn map() -> RoleMap {
        RoleMap::from_config(&AuthSection::default()).unwrap()
    }

    #[test]
    fn builtin_roles_inherit_upwards() {
        let m = map();
        let ro = m.grants(&["readonly".into()]);
        assert!(ro.allows("semantic_search_products") && !ro.allows("execute_sales_query") && !ro.pii);
        assert!(!ro.allows("explain_sales_query"));
        assert_eq!(ro.row_cap, Some(100));
        let analyst = m.grants(&["analyst".into()]);
        assert!(
            analyst.allows("execute_sales_query") && analyst.allows("get_current_utc_date") && !analyst.pii
        );
        assert!(analyst.allows("explain_sales_query"), "whoever may run a query may ask what it costs");
        assert_eq!(analyst.row_cap, Some(1000));
        let manager = m.grants(&["manager".into()]);
        assert!(manager.pii && manager.allows("execute_sales_query"));
        let admin = m.grants(&["admin".into()]);
        assert!(admin.tools.is_none() && admin.pii);
    }

    #[test]
    fn unknown_roles_grant_nothing_unless_a_default_exists() {
        let m = map();
        let g = m.grants(&["intern".into()]);
        assert_eq!(g.tools, Some(BTreeSet::new()));
        assert!(g.roles.is_empty());
        let with_default = RoleMap::from_config(&AuthSection {
            default_role: Some("readonly".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(with_default.grants(&["intern".into()]).allows("get_current_utc_date"));
    }

    #[test]
    fn multiple_roles_unite() {
        let m = map();
        let g = m.grants(&["readonly".into(), "manager".into()]);
        assert!(g.pii && g.allows("execute_sales_query"));
        assert_eq!(g.row_cap, Some(1000));
    }

    #[test]
    fn bad_role_configs_are_all_reported() {
        let mut auth = AuthSection::default();
        auth.roles.insert("a".into(), RoleSection { inherits: vec!["b".into()], ..Default::default() });
        auth.roles.insert(
            "b".into(),
            RoleSection {
                inherits: vec!["a".into()],
                tools: vec!["drop_tables".into()],
                ..Default::default()
            },
        );
        auth.roles.insert("c".into(), RoleSection { inherits: vec!["nobody".into()], ..Default::default() });
        auth.default_role = Some("ghost".into());
        let problems = RoleMap::from_config(&auth).unwrap_err().join("\n");
        for needle in
            ["cycle", "unknown tool \"drop_tables\"", "unknown role \"nobody\"", "defaultRole \"ghost\""]
        {
            assert!(problems.contains(needle), "{needle} missing in {problems}");
        }
    }
}
