//! How a caller's query leaves PostgreSQL: each result column is rewritten, in PostgreSQL, into a
//! form the server decodes without asking the database what a type is, and cut to a bounded length
//! before it is sent. Numbers, booleans, times and UUIDs travel as themselves; text as text; JSON,
//! and arrays of types JSON can hold, as `to_json` text; every other type (tsvector, vector, inet,
//! interval, money, ranges, bit strings, composites, enums, geometry, arrays of those ...) as its
//! own text form, the one `psql` shows. Pure: SQL text from described columns.

use sqlx::TypeInfo;
use sqlx::postgres::{PgTypeInfo, PgTypeKind};

/// What the server does with a column's value once PostgreSQL has sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Sent as its own type and decoded natively (booleans, integers, floats, UUIDs, dates and
    /// times): fixed size, so never cut.
    Native,
    /// NUMERIC as text, read back as a JSON number (any precision, NaN and infinities included).
    Number,
    /// Text as a JSON string: character types, and the text form of every type without a
    /// natural JSON form.
    Text,
    /// JSON text, parsed back into JSON: `json`/`jsonb`, and arrays of types JSON can hold.
    Json,
}

/// How a column is written in the projected query, and read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub form: Form,
    /// The SQL expression over the renamed column `c<n>`, before the length cut.
    expression: String,
}

/// Types sent as themselves: their binary forms have a fixed size and a JSON form the server
/// writes (see `mcp::result`). The names are sqlx's, which are also valid PostgreSQL type names.
const NATIVE: &[&str] =
    &["BOOL", "INT2", "INT4", "INT8", "FLOAT4", "FLOAT8", "UUID", "DATE", "TIME", "TIMESTAMP", "TIMESTAMPTZ"];
/// Character types, sent as JSON strings.
const CHARACTER: &[&str] = &["TEXT", "VARCHAR", "CHAR", "NAME", "UNKNOWN"];

/// Whether an array of `elem` has a natural JSON form (an array of numbers, strings, booleans...).
fn json_element(elem: &PgTypeInfo) -> bool {
    let name = elem.name();
    NATIVE.contains(&name) || CHARACTER.contains(&name) || ["NUMERIC", "JSON", "JSONB"].contains(&name)
}

/// The form of a column of type `ty`, and its expression over the renamed column `col`.
fn classify(ty: &PgTypeInfo, col: &str) -> (Form, String) {
    let name = ty.name();
    // sqlx names a type it could not resolve "?", and asking its kind would panic.
    if name == "?" {
        return (Form::Text, format!("{col}::text"));
    }
    match ty.kind() {
        // A domain reads as its base type (the cast is a no-op that gives the base type's OID).
        PgTypeKind::Domain(base) if NATIVE.contains(&base.name()) => {
            (Form::Native, format!("{col}::{}", base.name()))
        }
        PgTypeKind::Domain(base) => classify(base, col),
        PgTypeKind::Array(elem) if json_element(elem) => (Form::Json, format!("to_json({col})::text")),
        _ if NATIVE.contains(&name) => (Form::Native, col.to_owned()),
        _ if name == "NUMERIC" => (Form::Number, format!("{col}::text")),
        _ if name == "JSON" || name == "JSONB" => (Form::Json, format!("{col}::text")),
        _ if CHARACTER.contains(&name) => (Form::Text, format!("{col}::text")),
        // inet's cast to text always shows the netmask ("1.2.3.4/32"); its output function, which
        // `format` uses, shows what psql shows ("1.2.3.4").
        _ if name == "INET" => {
            (Form::Text, format!("CASE WHEN {col} IS NOT NULL THEN format('%s', {col}) END"))
        }
        // Only a bounded prefix of a byte string is turned into hex text.
        _ if name == "BYTEA" => (Form::Text, format!("substring({col} FROM 1 FOR {{half}})::text")),
        // Every type has a text form (its output function); casts to text use it.
        _ => (Form::Text, format!("{col}::text")),
    }
}

/// The columns of a described query, each with its form.
pub fn columns<'a>(described: impl IntoIterator<Item = (&'a str, &'a PgTypeInfo)>) -> Vec<Column> {
    described
        .into_iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            let (form, expression) = classify(ty, &format!("c{}", i + 1));
            Column { name: name.to_owned(), form, expression }
        })
        .collect()
}

/// The query that runs: `body` (one validated SELECT) with its columns renamed by position (so
/// duplicate or odd names cannot clash), each projected to its form and cut to `max_chars + 1`
/// characters by PostgreSQL (one more than is shown, so the server can tell that it was cut), at
/// most `max_rows + 1` rows (likewise).
pub fn select(body: &str, columns: &[Column], max_chars: usize, max_rows: usize) -> String {
    let keep = max_chars + 1;
    let half = max_chars / 2 + 1;
    let list = if columns.is_empty() {
        String::new()
    } else {
        format!("({})", (1..=columns.len()).map(|i| format!("c{i}")).collect::<Vec<_>>().join(", "))
    };
    let projected = columns
        .iter()
        .map(|c| {
            let e = c.expression.replace("{half}", &half.to_string());
            if c.form == Form::Native { e } else { format!("left({e}, {keep})") }
        })
        .collect::<Vec<_>>()
        .join(", ");
    // The newline keeps a trailing `--` comment in `body` from swallowing the closing parenthesis.
    format!("SELECT {projected} FROM (\n{body}\n) AS mcp_fleet_result{list} LIMIT {}", max_rows + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms(types: &[PgTypeInfo]) -> Vec<(Form, String)> {
        columns(types.iter().map(|t| ("x", t))).into_iter().map(|c| (c.form, c.expression)).collect()
    }

    fn ty<T: sqlx::Type<sqlx::Postgres>>() -> PgTypeInfo {
        T::type_info()
    }

    #[test]
    fn each_type_travels_in_the_form_the_issue_names() {
        use sqlx::postgres::types::{PgInterval, PgMoney, PgRange};
        let cases: &[(PgTypeInfo, Form, &str)] = &[
            (ty::<i32>(), Form::Native, "c1"),
            (ty::<chrono::DateTime<chrono::Utc>>(), Form::Native, "c1"),
            (ty::<uuid::Uuid>(), Form::Native, "c1"),
            (ty::<rust_decimal::Decimal>(), Form::Number, "c1::text"),
            (ty::<String>(), Form::Text, "c1::text"),
            (ty::<serde_json::Value>(), Form::Json, "c1::text"),
            (ty::<Vec<i32>>(), Form::Json, "to_json(c1)::text"),
            (ty::<Vec<String>>(), Form::Json, "to_json(c1)::text"),
            (ty::<Vec<rust_decimal::Decimal>>(), Form::Json, "to_json(c1)::text"),
            (ty::<PgInterval>(), Form::Text, "c1::text"),
            (ty::<Vec<PgInterval>>(), Form::Text, "c1::text"),
            (ty::<PgMoney>(), Form::Text, "c1::text"),
            (ty::<PgRange<i32>>(), Form::Text, "c1::text"),
            (PgTypeInfo::with_oid(sqlx::postgres::types::Oid(99_999)), Form::Text, "c1::text"),
            (ty::<Vec<u8>>(), Form::Text, "substring(c1 FROM 1 FOR {half})::text"),
        ];
        for (ty, form, expr) in cases {
            assert_eq!(forms(std::slice::from_ref(ty)), vec![(*form, expr.to_string())], "{ty:?}");
        }
    }

    #[test]
    fn the_query_renames_by_position_cuts_in_postgresql_and_asks_for_one_more_row() {
        let cols = columns([("id", &ty::<i32>()), ("id", &ty::<String>()), ("b", &ty::<Vec<u8>>())]);
        assert_eq!(
            select("SELECT 1 -- note", &cols, 100, 20),
            "SELECT c1, left(c2::text, 101), left(substring(c3 FROM 1 FOR 51)::text, 101) FROM (\nSELECT 1 -- note\n) AS mcp_fleet_result(c1, c2, c3) LIMIT 21"
        );
        // A query with no columns (PostgreSQL allows `SELECT FROM t`) renames nothing.
        assert_eq!(
            select("SELECT FROM t", &[], 100, 5),
            "SELECT  FROM (\nSELECT FROM t\n) AS mcp_fleet_result LIMIT 6"
        );
    }
}
