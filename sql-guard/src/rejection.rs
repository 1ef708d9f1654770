//! Why a query was refused: one variant per rule, a message that tells the model what to fix,
//! and a short stable label for metrics and the audit trail. Pure code, no I/O.

/// A query refused by [`super::validate`].
///
/// `Display` is written for the model that sent the query: it says what to change and never
/// mentions the server's internals. [`SqlRejection::reason`] is the stable label to count.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SqlRejection {
    #[error("the query is empty: send one PostgreSQL SELECT statement")]
    Empty,

    #[error(
        "the query is {len} bytes long and the limit is {max} bytes: send a shorter query \
         (aggregate with GROUP BY instead of listing many values)"
    )]
    TooLong { len: usize, max: usize },

    #[error("the query contains a NUL character (\\0): remove it")]
    InvalidCharacter,

    #[error("the SQL could not be parsed as PostgreSQL: {message}. Send exactly one SELECT statement")]
    Parse { message: String },

    #[error(
        "the query is nested too deeply to be checked: flatten nested parentheses and \
         subqueries (WITH clauses help)"
    )]
    TooDeep,

    #[error(
        "only one SQL statement is allowed per call: remove the `;` and everything after it, \
         and send each query in its own call"
    )]
    MultipleStatements,

    #[error(
        "only read-only SELECT queries are allowed (WITH ... SELECT, VALUES and \
         UNION/INTERSECT/EXCEPT work too); a {statement} statement is not"
    )]
    NotSelect { statement: String },

    #[error("SELECT ... INTO creates a table and is not allowed: remove the INTO clause")]
    SelectInto,

    #[error(
        "row-locking clauses (FOR UPDATE, FOR SHARE) are not allowed in read-only queries: \
         remove the FOR ... clause"
    )]
    LockingClause,

    #[error(
        "{statement} is not allowed, not even inside WITH: these queries are read-only, use \
         SELECT only"
    )]
    DataModifying { statement: &'static str },

    #[error(
        "system catalogs such as `{name}` cannot be queried; only the tables {allowed} may be \
         queried"
    )]
    SystemCatalog { name: String, allowed: String },

    #[error("`{name}` is outside the allowed schema; only the tables {allowed} may be queried{hint}")]
    SchemaNotAllowed { name: String, allowed: String, hint: &'static str },

    #[error("only the tables {allowed} may be queried; `{name}` is not one of them{hint}")]
    TableNotAllowed { name: String, allowed: String, hint: &'static str },

    #[error(
        "`{name}` names a database: write schema.table (for example retail.orders) or just the \
         table name"
    )]
    ThreePartName { name: String },

    #[error(
        "the function `{name}` is not allowed because it {why}; use ordinary functions on the \
         data (aggregates, date/time, string and math functions)"
    )]
    FunctionNotAllowed { name: String, why: &'static str },

    #[error(
        "`{name}`: functions are called by their plain name (or as pg_catalog.name); remove the \
         schema prefix"
    )]
    FunctionSchemaNotAllowed { name: String },

    #[error("casting to `{name}` is not allowed because {why}")]
    TypeNotAllowed { name: String, why: &'static str },

    #[error("the operator `{operator}` is not supported: {hint}")]
    OperatorNotAllowed { operator: String, hint: &'static str },

    #[error(
        "query parameters such as `{placeholder}` are not supported: write the value into the \
         query as a literal"
    )]
    Placeholder { placeholder: String },

    #[error("{feature} is not supported: {hint}")]
    Unsupported { feature: &'static str, hint: &'static str },

    #[error(
        "the query uses syntax that could not be checked reliably: rewrite it in plainer SQL \
         (standard operators, spaces between operators)"
    )]
    NotReproducible,
}

impl SqlRejection {
    /// A short, stable label for metrics and the audit trail (`"not_select"`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong { .. } => "too_long",
            Self::InvalidCharacter => "invalid_character",
            Self::Parse { .. } => "parse_error",
            Self::TooDeep => "too_deep",
            Self::MultipleStatements => "multiple_statements",
            Self::NotSelect { .. } => "not_select",
            Self::SelectInto => "select_into",
            Self::LockingClause => "locking_clause",
            Self::DataModifying { .. } => "data_modifying",
            Self::SystemCatalog { .. } => "system_catalog",
            Self::SchemaNotAllowed { .. } => "schema_not_allowed",
            Self::TableNotAllowed { .. } => "table_not_allowed",
            Self::ThreePartName { .. } => "three_part_name",
            Self::FunctionNotAllowed { .. } => "function_not_allowed",
            Self::FunctionSchemaNotAllowed { .. } => "function_schema_not_allowed",
            Self::TypeNotAllowed { .. } => "type_not_allowed",
            Self::OperatorNotAllowed { .. } => "operator_not_allowed",
            Self::Placeholder { .. } => "parameter_placeholder",
            Self::Unsupported { .. } => "unsupported_syntax",
            Self::NotReproducible => "not_reproducible",
        }
    }

    /// Every label [`SqlRejection::reason`] can return, e.g. to pre-register metric series.
    pub const REASONS: &'static [&'static str] = &[
        "empty",
        "too_long",
        "invalid_character",
        "parse_error",
        "too_deep",
        "multiple_statements",
        "not_select",
        "select_into",
        "locking_clause",
        "data_modifying",
        "system_catalog",
        "schema_not_allowed",
        "table_not_allowed",
        "three_part_name",
        "function_not_allowed",
        "function_schema_not_allowed",
        "type_not_allowed",
        "operator_not_allowed",
        "parameter_placeholder",
        "unsupported_syntax",
        "not_reproducible",
    ];
}

/// Shortens text quoted back to the model (names, parser messages) so a rejection stays short.
pub(super) fn clip(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max_chars).collect();
    clipped.push('…');
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_short_text_and_marks_cut_text() {
        assert_eq!(clip("orders", 10), "orders");
        assert_eq!(clip("abcdef", 3), "abc…");
        // Cuts on characters, never inside a multi-byte one.
        assert_eq!(clip("ééé", 2), "éé…");
    }
}
