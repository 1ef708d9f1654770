//! Roles and what they grant, flattened: a role inherits everything its parents may do
//! (`readonly` < `analyst` < `manager` < `admin` by default). Unknown parents or tools, cycles
//! and a default role that does not exist are problems. Pure.

use std::collections::{BTreeMap, BTreeSet};

use super::check::Problem;
use super::{AuthSection, RoleSection};
use crate::tools::{self, ALL_TOOLS, ToolName};

/// A role with its inheritance already flattened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatRole {
    /// `None`: every tool.
    pub tools: Option<BTreeSet<String>>,
    pub pii: bool,
    pub row_cap: Option<u32>,
}

/// The built-in hierarchy used when the configuration names no roles.
pub fn builtin_roles() -> BTreeMap<String, RoleSection> {
    let read_tools = [
        ToolName::GetCurrentUtcDate,
        ToolName::GetMultipleTableSchemas,
        ToolName::SemanticSearchProducts,
        ToolName::FullTextSearchProducts,
        ToolName::HybridSearchProducts,
    ];
    let mut m = BTreeMap::new();
    m.insert(
        "readonly".to_owned(),
        RoleSection {
            tools: read_tools.iter().map(|t| t.as_str().to_owned()).collect(),
            row_cap: Some(100),
            ..Default::default()
        },
    );
    m.insert(
        "analyst".to_owned(),
        RoleSection {
            inherits: vec!["readonly".into()],
            tools: vec![
                ToolName::ExecuteSalesQuery.as_str().into(),
                ToolName::ExplainSalesQuery.as_str().into(),
            ],
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
        RoleSection { inherits: vec!["manager".into()], tools: vec![ALL_TOOLS.into()], ..Default::default() },
    );
    m
}

impl AuthSection {
    /// The configured roles (or the built-in ones), flattened, or every problem with them.
    pub fn flat_roles(&self) -> Result<BTreeMap<String, FlatRole>, Vec<Problem>> {
        let sections = if self.roles.is_empty() { builtin_roles() } else { self.roles.clone() };
        let mut problems = Vec::new();
        for (name, role) in &sections {
            for parent in &role.inherits {
                if !sections.contains_key(parent) {
                    problems.push(format!("auth.roles.{name} inherits unknown role {parent:?}"));
                }
            }
            for tool in &role.tools {
                if tool != ALL_TOOLS && ToolName::parse(tool).is_none() {
                    problems.push(format!(
                        "auth.roles.{name} grants unknown tool {tool:?}; known tools: {}",
                        tools::names().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            if role.row_cap == Some(0) {
                problems.push(format!("auth.roles.{name}.rowCap must be at least 1"));
            }
        }
        if let Some(d) = &self.default_role
            && !sections.contains_key(d)
        {
            problems.push(format!(
                "auth.defaultRole {d:?} is not one of the roles ({})",
                sections.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let mut roles = BTreeMap::new();
        for name in sections.keys() {
            match flatten(name, &sections, &mut Vec::new()) {
                Ok(r) => {
                    roles.insert(name.clone(), r);
                }
                Err(cycle) => problems.push(format!("auth.roles inherit in a cycle: {}", cycle.join(" -> "))),
            }
        }
        if !problems.is_empty() {
            problems.sort();
            problems.dedup();
            return Err(problems.into_iter().map(Problem::from).collect());
        }
        Ok(roles)
    }
}

/// `name` with its parents' grants folded in, or the cycle it is part of.
fn flatten(
    name: &str,
    all: &BTreeMap<String, RoleSection>,
    path: &mut Vec<String>,
) -> Result<FlatRole, Vec<String>> {
    if path.iter().any(|p| p == name) {
        let mut cycle = path.clone();
        cycle.push(name.to_owned());
        return Err(cycle);
    }
    let Some(role) = all.get(name) else {
        // Reported separately as an unknown parent.
        return Ok(FlatRole { tools: Some(BTreeSet::new()), pii: false, row_cap: None });
    };
    path.push(name.to_owned());
    let mut tools: Option<BTreeSet<String>> = if role.tools.iter().any(|t| t == ALL_TOOLS) {
        None
    } else {
        Some(role.tools.iter().cloned().collect())
    };
    let mut pii = role.pii;
    let mut cap = role.row_cap;
    for parent in &role.inherits {
        let p = flatten(parent, all, path)?;
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
    Ok(FlatRole { tools, pii, row_cap: cap })
}
