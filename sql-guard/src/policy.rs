//! Which tables a query may read, and how a table name written in SQL resolves against that
//! allow-list with PostgreSQL's identifier rules. Pure code, no I/O.

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

use super::rejection::{SqlRejection, clip};

/// The tables a query may read: one schema and an allow-list of tables in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlPolicy {
    schema: String,
    tables: Vec<String>,
}

impl SqlPolicy {
    /// The retail analytics tables of the Zava sample (see `migrations/0001_retail_schema.sql`).
    pub fn retail() -> Self {
        Self::new(
            "retail",
            [
                "stores",
                "customers",
                "categories",
                "product_types",
                "products",
                "inventory",
                "orders",
                "order_items",
                "product_description_embeddings",
            ],
        )
    }

    /// A policy for `schema` with the given tables. Names are PostgreSQL's folded (lower-case)
    /// spelling, as they appear in the catalog.
    pub fn new<'a>(schema: &str, tables: impl IntoIterator<Item = &'a str>) -> Self {
        Self { schema: schema.to_owned(), tables: tables.into_iter().map(str::to_owned).collect() }
    }

    /// The schema unqualified table names resolve to.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The allowed tables, schema-qualified (`retail.orders`), in declaration order.
    pub fn qualified_tables(&self) -> impl Iterator<Item = String> + '_ {
        self.tables.iter().map(|table| self.qualify(table))
    }

    fn qualify(&self, table: &str) -> String {
        format!("{}.{table}", self.schema)
    }

    /// "retail.stores, retail.customers, ..." for rejection messages.
    pub(super) fn allowed_list(&self) -> String {
        self.qualified_tables().collect::<Vec<_>>().join(", ")
    }

    fn allows(&self, table: &str) -> bool {
        self.tables.iter().any(|allowed| allowed == table)
    }

    fn allows_ignoring_case(&self, table: &str) -> bool {
        self.tables.iter().any(|allowed| allowed.eq_ignore_ascii_case(table))
    }

    /// Resolves a table name from a FROM clause that is not a CTE in scope. Returns the
    /// qualified name (`retail.orders`) or why the name is refused.
    ///
    /// `visible_cte` tells whether an unqualified, folded name is a CTE in scope; qualified
    /// names never refer to CTEs.
    pub(super) fn resolve_table(
        &self,
        name: &ObjectName,
        visible_cte: impl Fn(&str) -> bool,
    ) -> Result<Resolved, SqlRejection> {
        let shown = clip(&name.to_string(), 80);
        let parts = identifier_parts(name).ok_or(SqlRejection::Unsupported {
            feature: "a computed table name",
            hint: "write the table name directly, for example retail.orders",
        })?;
        match parts.as_slice() {
            [table] => {
                let folded = fold(table);
                if visible_cte(&folded) {
                    return Ok(Resolved::Cte);
                }
                if self.allows(&folded) {
                    return Ok(Resolved::Table(self.qualify(&folded)));
                }
                if is_system_name(&folded) {
                    return Err(self.system_catalog(shown));
                }
                Err(self.table_not_allowed(shown, table, &folded))
            }
            [schema, table] => {
                let schema_folded = fold(schema);
                let table_folded = fold(table);
                if is_system_name(&schema_folded) {
                    return Err(self.system_catalog(shown));
                }
                if schema_folded != self.schema {
                    let hint =
                        if schema_folded.eq_ignore_ascii_case(&self.schema) { QUOTED_CASE_HINT } else { "" };
                    return Err(SqlRejection::SchemaNotAllowed {
                        name: shown,
                        allowed: self.allowed_list(),
                        hint,
                    });
                }
                if self.allows(&table_folded) {
                    return Ok(Resolved::Table(self.qualify(&table_folded)));
                }
                Err(self.table_not_allowed(shown, table, &table_folded))
            }
            _ => Err(SqlRejection::ThreePartName { name: shown }),
        }
    }

    fn system_catalog(&self, name: String) -> SqlRejection {
        SqlRejection::SystemCatalog { name, allowed: self.allowed_list() }
    }

    fn table_not_allowed(&self, shown: String, table: &Ident, folded: &str) -> SqlRejection {
        let hint = if table.quote_style.is_some() && self.allows_ignoring_case(folded) {
            QUOTED_CASE_HINT
        } else {
            ""
        };
        SqlRejection::TableNotAllowed { name: shown, allowed: self.allowed_list(), hint }
    }
}

const QUOTED_CASE_HINT: &str = " (names in double quotes are case-sensitive: write the name in \
                                 lower case or without quotes, e.g. retail.orders)";

/// What a table name in a FROM clause refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Resolved {
    /// An allowed table, schema-qualified.
    Table(String),
    /// A common table expression defined in an enclosing WITH.
    Cte,
}

/// PostgreSQL's spelling of an identifier: unquoted names are folded to lower case (ASCII only,
/// as PostgreSQL does in UTF-8 databases); quoted names are kept exactly.
pub(super) fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_ascii_lowercase() }
}

/// The identifiers of a dotted name, or `None` when a part is not a plain identifier.
pub(super) fn identifier_parts(name: &ObjectName) -> Option<Vec<&Ident>> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(ident),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

/// Schemas and relations that belong to PostgreSQL itself: `pg_catalog`, `information_schema`,
/// `pg_toast`, `pg_temp_*` and every `pg_*` relation reachable through the search path.
fn is_system_name(folded: &str) -> bool {
    folded == "information_schema" || folded.starts_with("pg_")
}

#[cfg(test)]
mod tests {
    use sqlparser::ast::Ident;

    use super::*;

    fn name(parts: &[Ident]) -> ObjectName {
        ObjectName::from(parts.to_vec())
    }

    fn resolve(parts: &[Ident]) -> Result<Resolved, SqlRejection> {
        SqlPolicy::retail().resolve_table(&name(parts), |cte| cte == "recent")
    }

    #[test]
    fn unquoted_names_fold_to_lower_case_and_quoted_names_do_not() {
        assert_eq!(
            resolve(&[Ident::new("RETAIL"), Ident::new("Orders")]),
            Ok(Resolved::Table("retail.orders".into()))
        );
        assert_eq!(
            resolve(&[Ident::with_quote('"', "retail"), Ident::with_quote('"', "orders")]),
            Ok(Resolved::Table("retail.orders".into()))
        );
        let err = resolve(&[Ident::new("retail"), Ident::with_quote('"', "Orders")]).unwrap_err();
        assert_eq!(err.reason(), "table_not_allowed");
        assert!(err.to_string().contains("case-sensitive"), "{err}");
        let err = resolve(&[Ident::with_quote('"', "RETAIL"), Ident::new("orders")]).unwrap_err();
        assert_eq!(err.reason(), "schema_not_allowed");
        assert!(err.to_string().contains("case-sensitive"), "{err}");
    }

    #[test]
    fn only_unqualified_names_can_be_ctes() {
        assert_eq!(resolve(&[Ident::new("RECENT")]), Ok(Resolved::Cte));
        let err = resolve(&[Ident::new("retail"), Ident::new("recent")]).unwrap_err();
        assert_eq!(err.reason(), "table_not_allowed");
    }

    #[test]
    fn system_schemas_and_relations_are_catalogs() {
        for parts in [
            vec![Ident::new("pg_authid")],
            vec![Ident::new("PG_CATALOG"), Ident::new("pg_class")],
            vec![Ident::new("information_schema"), Ident::new("tables")],
            vec![Ident::new("pg_toast"), Ident::new("pg_toast_1255")],
        ] {
            assert_eq!(resolve(&parts).unwrap_err().reason(), "system_catalog");
        }
    }

    #[test]
    fn the_message_lists_the_allowed_tables() {
        let err = resolve(&[Ident::new("tenancy"), Ident::new("tenant_stores")]).unwrap_err();
        assert_eq!(err.reason(), "schema_not_allowed");
        let message = err.to_string();
        assert!(message.contains("`tenancy.tenant_stores`"), "{message}");
        assert!(message.contains("retail.stores, retail.customers, retail.categories"), "{message}");
        assert!(message.contains("retail.product_description_embeddings"), "{message}");
    }

    #[test]
    fn qualified_tables_are_listed_in_declaration_order() {
        let tables: Vec<_> = SqlPolicy::retail().qualified_tables().collect();
        assert_eq!(tables.first().map(String::as_str), Some("retail.stores"));
        assert_eq!(tables.len(), 9);
    }
}
