//! Roles and what they grant. Roles inherit from each other (`readonly` < `analyst` < `manager` <
//! `admin` by default; configurable); a caller's grants are the union of its roles'. Pure.

use std::collections::{BTreeMap, BTreeSet};

use mcp_fleet_core::server_config::{AuthSection, RoleSection};

use crate::auth::identity::Grants;
use crate::mcp::TOOL_NAMES;

/// A role with its inheritance already flattened.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Resolved {
    /// `None`: every tool.
    tools: Option<BTreeSet<String>>,
    pii: bool,
    row_cap: Option<u32>,
}

/// The configured roles, resolved.
#[derive(Clone, Debug)]
pub struct RoleMap {
    roles: BTreeMap<String, Resolved>,
    default_role: Option<String>,
}

/// The built-in hierarchy used when the configuration names no roles.
pub fn builtin_roles() -> BTreeMap<String, RoleSection> {
    let read_tools = [
        "get_current_utc_date",
        "get_multiple_table_schemas",
        "semantic_search_products",
        "full_text_search_products",
        "hybrid_search_products",
    ];
    let mut m = BTreeMap::new();
    m.insert(
        "readonly".to_owned(),
        RoleSection {
            tools: read_tools.iter().map(|s| (*s).to_owned()).collect(),
            row_cap: Some(100),
            ..Default::default()
        },
    );
    m.insert(
        "analyst".to_owned(),
        RoleSection {
            inherits: vec!["readonly".into()],
            tools: vec!["execute_sales_query".into()],
            row_cap: Some(1000),
            ..Default::default()
        },
    );
    m.insert(
        "manager".to_owned(),
        RoleSection { inherits: vec!["analyst".into()], pii: true, ..Default::default() },
    );
    m.insert(
        "admin".to_owned(),
        RoleSection { inherits: vec!["manager".into()], tools: vec!["*".into()], ..Default::default() },
    );
    m
}

impl RoleMap {
    /// Resolves the roles of `auth` (or the built-in ones), reporting every problem found.
    pub fn from_config(auth: &AuthSection) -> Result<Self, Vec<String>> {
        let sections = if auth.roles.is_empty() { builtin_roles() } else { auth.roles.clone() };
        let mut problems = Vec::new();
        for (name, role) in &sections {
            for parent in &role.inherits {
                if !sections.contains_key(parent) {
                    problems.push(format!("auth.roles.{name} inherits unknown role {parent:?}"));
                }
            }
            for tool in &role.tools {
                if tool != "*" && !TOOL_NAMES.contains(&tool.as_str()) {
                    problems.push(format!(
                        "auth.roles.{name} grants unknown tool {tool:?}; known tools: {}",
                        TOOL_NAMES.join(", ")
                    ));
                }
            }
            if role.row_cap == Some(0) {
                problems.push(format!("auth.roles.{name}.rowCap must be at least 1"));
            }
        }
        if let Some(d) = &auth.default_role
            && !sections.contains_key(d)
        {
            problems.push(format!(
                "auth.defaultRole {d:?} is not one of the roles ({})",
                sections.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let mut roles = BTreeMap::new();
        for name in sections.keys() {
            match resolve(name, &sections, &mut Vec::new()) {
                Ok(r) => {
                    roles.insert(name.clone(), r);
                }
                Err(cycle) => problems.push(format!("auth.roles inherit in a cycle: {}", cycle.join(" -> "))),
            }
        }
        if !problems.is_empty() {
            problems.sort();
            problems.dedup();
            return Err(problems);
        }
        Ok(Self { roles, default_role: auth.default_role.clone() })
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

fn resolve(
    name: &str,
    all: &BTreeMap<String, RoleSection>,
    path: &mut Vec<String>,
) -> Result<Resolved, Vec<String>> {
    if path.iter().any(|p| p == name) {
        let mut cycle = path.clone();
        cycle.push(name.to_owned());
        return Err(cycle);
    }
    let Some(role) = all.get(name) else {
        // Reported separately as an unknown parent.
        return Ok(Resolved { tools: Some(BTreeSet::new()), pii: false, row_cap: None });
    };
    path.push(name.to_owned());
    let mut tools: Option<BTreeSet<String>> =
        if role.tools.iter().any(|t| t == "*") { None } else { Some(role.tools.iter().cloned().collect()) };
    let mut pii = role.pii;
    let mut cap = role.row_cap;
    for parent in &role.inherits {
        let p = resolve(parent, all, path)?;
        match (&mut tools, p.tools) {
            (Some(t), Some(pt)) => t.extend(pt),
            (Some(_), None) => tools = None,
            (None, _) => {}
        }
        pii |= p.pii;
        // A child's own cap wins; otherwise it keeps its parent's.
        if cap.is_none() {
            cap = p.row_cap;
        }
    }
    path.pop();
    Ok(Resolved { tools, pii, row_cap: cap })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> RoleMap {
        RoleMap::from_config(&AuthSection::default()).unwrap()
    }

    #[test]
    fn builtin_roles_inherit_upwards() {
        let m = map();
        let ro = m.grants(&["readonly".into()]);
        assert!(ro.allows("semantic_search_products") && !ro.allows("execute_sales_query") && !ro.pii);
        assert_eq!(ro.row_cap, Some(100));
        let analyst = m.grants(&["analyst".into()]);
        assert!(
            analyst.allows("execute_sales_query") && analyst.allows("get_current_utc_date") && !analyst.pii
        );
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
