//! Rules for the callable parts of a query: function names, cast target types and custom
//! operators. A deny-list with structural rules, matched case-insensitively. Pure code, no I/O.
//!
//! The deny-list covers what can touch the server rather than the data: sleeping, settings,
//! files, other connections, locks, notifications, sequences, large objects, functions that run
//! SQL text, and catalog look-ups. Every `pg*` function is refused except a short allow-list of
//! pure helpers, so new server functions are refused by default.

use sqlparser::ast::{ArrayElemTypeDef, DataType, ObjectName};

use super::policy::{fold, identifier_parts};
use super::rejection::{SqlRejection, clip};

/// `pg*` functions that only compute on their argument: `pg_typeof` names a value's type and
/// `pg_size_pretty` formats a number of bytes. Neither reads the catalog, the server or state.
const PG_ALLOWED: &[&str] = &["pg_typeof", "pg_size_pretty"];

const WAITS: &str = "makes the server wait";
const SETTINGS: &str = "reads or changes server settings";
const SESSION_STATE: &str = "changes session state";
const FILES: &str = "reads server files";
const SERVER_CONTROL: &str = "controls the server or other sessions";
const LOCKS: &str = "takes locks";
const NOTIFIES: &str = "sends notifications";
const SEQUENCES: &str = "reads or advances sequences";
const LARGE_OBJECTS: &str = "accesses large objects stored on the server";
const REMOTE: &str = "connects to other databases";
const RUNS_SQL: &str = "runs SQL given as text, or reads a table named in a string";
const CATALOG: &str = "looks up the system catalogs";
const SERVER_INFO: &str = "reveals server details";
const TRANSACTIONS: &str = "reads or changes transaction state";
const INDEX_MAINTENANCE: &str = "changes index state";
const SYSTEM: &str = "is a PostgreSQL system function";

/// Exact names (folded to lower case) and why each is refused.
const DENIED: &[(&str, &str)] = &[
    ("set_config", SETTINGS),
    ("current_setting", SETTINGS),
    ("setseed", SESSION_STATE),
    ("nextval", SEQUENCES),
    ("setval", SEQUENCES),
    ("currval", SEQUENCES),
    ("lastval", SEQUENCES),
    ("loread", LARGE_OBJECTS),
    ("lowrite", LARGE_OBJECTS),
    ("ts_stat", RUNS_SQL),
    ("ts_rewrite", RUNS_SQL),
    ("connectby", RUNS_SQL),
    ("version", SERVER_INFO),
    ("obj_description", CATALOG),
    ("col_description", CATALOG),
    ("shobj_description", CATALOG),
    ("row_security_active", CATALOG),
    ("currtid", CATALOG),
    ("currtid2", CATALOG),
    ("gin_clean_pending_list", INDEX_MAINTENANCE),
];

/// Name prefixes (folded) and why. Checked in order, so specific `pg_` entries come first.
const DENIED_PREFIXES: &[(&str, &str)] = &[
    ("pg_sleep", WAITS),
    ("pg_read_", FILES),
    ("pg_ls_", FILES),
    ("pg_stat_file", FILES),
    ("pg_file", FILES),
    ("pg_terminate_backend", SERVER_CONTROL),
    ("pg_cancel_backend", SERVER_CONTROL),
    ("pg_reload_conf", SERVER_CONTROL),
    ("pg_rotate_logfile", SERVER_CONTROL),
    ("pg_switch_wal", SERVER_CONTROL),
    ("pg_advisory", LOCKS),
    ("pg_try_advisory", LOCKS),
    ("pg_notify", NOTIFIES),
    ("pg_current_xact", TRANSACTIONS),
    ("pg", SYSTEM),
    ("lo_", LARGE_OBJECTS),
    ("dblink", REMOTE),
    ("txid_", TRANSACTIONS),
    ("query_to_xml", RUNS_SQL),
    ("table_to_xml", RUNS_SQL),
    ("cursor_to_xml", RUNS_SQL),
    ("schema_to_xml", RUNS_SQL),
    ("database_to_xml", RUNS_SQL),
    ("crosstab", RUNS_SQL),
    ("brin_", INDEX_MAINTENANCE),
    ("binary_upgrade_", SYSTEM),
    ("inet_client_", SERVER_INFO),
    ("inet_server_", SERVER_INFO),
    ("to_reg", CATALOG),
];

/// Object-identifier types: casting a string to them looks the name up in the catalogs
/// (`'pg_authid'::regclass`), and as functions they do the same (`regclass('pg_authid')`).
const REG_TYPES: &[&str] = &[
    "regclass",
    "regcollation",
    "regconfig",
    "regdictionary",
    "regnamespace",
    "regoper",
    "regoperator",
    "regproc",
    "regprocedure",
    "regrole",
    "regtype",
];

/// Why a function with this folded name is refused, or `None` when it may be called.
pub(super) fn denied_function(folded: &str) -> Option<&'static str> {
    let name = folded.to_ascii_lowercase();
    let name = name.as_str();
    if PG_ALLOWED.contains(&name) {
        return None;
    }
    if let Some((_, why)) = DENIED.iter().find(|(denied, _)| *denied == name) {
        return Some(why);
    }
    if REG_TYPES.contains(&name) {
        return Some(CATALOG);
    }
    if name.starts_with("has_") && name.ends_with("_privilege") {
        return Some(CATALOG);
    }
    DENIED_PREFIXES.iter().find(|(prefix, _)| name.starts_with(prefix)).map(|(_, why)| *why)
}

/// Checks a called function's name: unqualified, or qualified with `pg_catalog` only, and not
/// on the deny-list. Quoted names are matched case-insensitively too: refusing `"PG_SLEEP"`
/// (which PostgreSQL would not find) costs nothing.
pub(super) fn check_function_name(name: &ObjectName) -> Result<(), SqlRejection> {
    let shown = || clip(&name.to_string(), 80);
    let parts = identifier_parts(name).ok_or(SqlRejection::Unsupported {
        feature: "a computed function name",
        hint: "call the function by its name",
    })?;
    let function = match parts.as_slice() {
        [function] => function,
        [schema, function] if fold(schema).eq_ignore_ascii_case("pg_catalog") => function,
        _ => return Err(SqlRejection::FunctionSchemaNotAllowed { name: shown() }),
    };
    match denied_function(&fold(function)) {
        Some(why) => Err(SqlRejection::FunctionNotAllowed { name: shown(), why }),
        None => Ok(()),
    }
}

/// Checks the target type of a cast or typed literal: no object-identifier types (catalog
/// look-ups), no `pg_*` system or catalog row types, and named types only unqualified or in
/// `pg_catalog`.
pub(super) fn check_data_type(data_type: &DataType) -> Result<(), SqlRejection> {
    let refused = |name: String| SqlRejection::TypeNotAllowed {
        name: clip(&name, 80),
        why: "it looks up system catalog objects; cast to ordinary types such as integer, \
              numeric, text, date, timestamp or vector",
    };
    match data_type {
        DataType::Regclass => Err(refused(data_type.to_string())),
        DataType::Custom(name, _) => {
            let parts = identifier_parts(name).ok_or_else(|| refused(name.to_string()))?;
            let type_name = match parts.as_slice() {
                [type_name] => type_name,
                [schema, type_name] if fold(schema).eq_ignore_ascii_case("pg_catalog") => type_name,
                _ => {
                    return Err(SqlRejection::TypeNotAllowed {
                        name: clip(&name.to_string(), 80),
                        why: "types are named without a schema; remove the schema prefix \
                              (for example ::vector)",
                    });
                }
            };
            let type_name = fold(type_name).to_ascii_lowercase();
            if REG_TYPES.contains(&type_name.as_str()) {
                return Err(refused(name.to_string()));
            }
            if type_name.starts_with("pg_") {
                return Err(SqlRejection::TypeNotAllowed {
                    name: clip(&name.to_string(), 80),
                    why: "it is a system type; cast to ordinary types such as integer, numeric, \
                          text, date, timestamp or vector",
                });
            }
            Ok(())
        }
        DataType::Array(element) => match element {
            ArrayElemTypeDef::None => Ok(()),
            ArrayElemTypeDef::AngleBracket(inner)
            | ArrayElemTypeDef::SquareBracket(inner, _)
            | ArrayElemTypeDef::Parenthesis(inner)
            | ArrayElemTypeDef::ParenthesisNotNull(inner)
            | ArrayElemTypeDef::Qualified(inner, _) => check_data_type(inner),
        },
        _ => Ok(()),
    }
}

/// Operators that sqlparser reads as "custom" and PostgreSQL lexes the same way: pgvector's
/// inner product, Hamming and Jaccard distances, and the network/range containment and
/// adjacency operators. Anything else is refused: PostgreSQL ends an operator at `--` or `/*`
/// (comment starts) and splits trailing `+`/`-`, where sqlparser would keep one token.
const CUSTOM_OPERATORS: &[&str] = &["<#>", "<~>", "<%>", "<<=", ">>=", "&<", "&>", "-|-"];

/// Checks an operator sqlparser could not name.
pub(super) fn check_custom_operator(operator: &str) -> Result<(), SqlRejection> {
    if CUSTOM_OPERATORS.contains(&operator) {
        Ok(())
    } else {
        Err(SqlRejection::OperatorNotAllowed {
            operator: clip(operator, 20),
            hint: "use standard operators; for pgvector distances use <=> (cosine), <-> (L2) \
                   or <#> (inner product)",
        })
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::ast::Ident;

    use super::*;

    #[test]
    fn named_dangerous_functions_are_denied_with_a_reason() {
        for (name, why) in [
            ("pg_sleep", WAITS),
            ("pg_sleep_for", WAITS),
            ("set_config", SETTINGS),
            ("current_setting", SETTINGS),
            ("pg_read_file", FILES),
            ("pg_read_binary_file", FILES),
            ("pg_ls_dir", FILES),
            ("pg_stat_file", FILES),
            ("dblink_exec", REMOTE),
            ("lo_import", LARGE_OBJECTS),
            ("lo_export", LARGE_OBJECTS),
            ("pg_terminate_backend", SERVER_CONTROL),
            ("pg_cancel_backend", SERVER_CONTROL),
            ("pg_reload_conf", SERVER_CONTROL),
            ("pg_switch_wal", SERVER_CONTROL),
            ("pg_advisory_lock", LOCKS),
            ("pg_try_advisory_xact_lock", LOCKS),
            ("pg_notify", NOTIFIES),
            ("nextval", SEQUENCES),
            ("query_to_xml_and_xmlschema", RUNS_SQL),
            ("table_to_xmlschema", RUNS_SQL),
            ("cursor_to_xml", RUNS_SQL),
            ("schema_to_xml", RUNS_SQL),
            ("database_to_xml", RUNS_SQL),
            ("txid_current", TRANSACTIONS),
            ("txid_current_snapshot", TRANSACTIONS),
            ("has_table_privilege", CATALOG),
            ("to_regclass", CATALOG),
            ("regclass", CATALOG),
            ("pg_get_userbyid", SYSTEM),
            ("pgp_sym_decrypt", SYSTEM),
            ("pgstattuple", SYSTEM),
        ] {
            assert_eq!(denied_function(name), Some(why), "{name}");
        }
    }

    #[test]
    fn matching_ignores_case() {
        assert_eq!(denied_function("PG_SLEEP"), Some(WAITS));
        assert_eq!(denied_function("Set_Config"), Some(SETTINGS));
    }

    #[test]
    fn analytics_functions_and_the_pg_allow_list_pass() {
        for name in [
            "count",
            "sum",
            "avg",
            "date_trunc",
            "date_part",
            "to_char",
            "round",
            "coalesce",
            "string_agg",
            "percentile_cont",
            "generate_series",
            "now",
            "current_date",
            "lower",
            "ts_rank",
            "to_tsvector",
            "plainto_tsquery",
            "cosine_distance",
            "pg_typeof",
            "pg_size_pretty",
            "lower_inc",
            "inet_merge",
        ] {
            assert_eq!(denied_function(name), None, "{name}");
        }
    }

    #[test]
    fn only_pg_catalog_may_qualify_a_function() {
        let call = |parts: &[&str]| {
            let idents: Vec<Ident> = parts.iter().map(|part| Ident::new(*part)).collect();
            check_function_name(&ObjectName::from(idents))
        };
        assert_eq!(call(&["now"]), Ok(()));
        assert_eq!(call(&["PG_CATALOG", "now"]), Ok(()));
        assert_eq!(call(&["pg_catalog", "pg_sleep"]).unwrap_err().reason(), "function_not_allowed");
        for parts in [&["public", "cosine_distance"][..], &["retail", "f"], &["db", "pg_catalog", "now"]] {
            assert_eq!(call(parts).unwrap_err().reason(), "function_schema_not_allowed", "{parts:?}");
        }
    }

    #[test]
    fn custom_operators_are_allow_listed() {
        assert_eq!(check_custom_operator("<#>"), Ok(()));
        for operator in ["<--", "</*", "-+", "@@@@", "<+>"] {
            assert_eq!(
                check_custom_operator(operator).unwrap_err().reason(),
                "operator_not_allowed",
                "{operator}"
            );
        }
    }
}
