//! Query results in the reference sample's compact JSON shape:
//! `{"c":[columns],"r":[[row values]],"n":count}`, with `"msg"` when there are no rows or the row
//! cap cut the result, and `{"err":..,"q":..,"c":[],"r":[],"n":0}` for errors. Pure conversion.

use serde_json::{Map, Value, json};
use sqlx::postgres::{PgRow, PgTypeInfo};
use sqlx::{Column, Row, TypeInfo, ValueRef};

/// A result ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Compact {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Set when more rows existed than the cap allowed.
    pub truncated_at: Option<usize>,
    /// An explanation for the reader (no rows, truncated, below threshold...).
    pub msg: Option<String>,
}

impl Compact {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("c".into(), json!(self.columns));
        m.insert("r".into(), Value::Array(self.rows.iter().map(|r| Value::Array(r.clone())).collect()));
        m.insert("n".into(), json!(self.rows.len()));
        if let Some(cap) = self.truncated_at {
            m.insert("truncated".into(), Value::Bool(true));
            m.insert(
                "msg".into(),
                json!(self.msg.clone().unwrap_or_else(|| format!(
                    "showing the first {cap} rows only; aggregate, filter or add LIMIT to see what matters"
                ))),
            );
        } else if let Some(msg) = &self.msg {
            m.insert("msg".into(), json!(msg));
        } else if self.rows.is_empty() {
            m.insert("msg".into(), json!("No rows"));
        }
        Value::Object(m)
    }
}

/// The sample's error shape; `query` is echoed so the model sees what it sent.
pub fn error_json(message: &str, query: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("err".into(), json!(message));
    if let Some(q) = query {
        m.insert("q".into(), json!(q));
    }
    m.insert("c".into(), json!([]));
    m.insert("r".into(), json!([]));
    m.insert("n".into(), json!(0));
    Value::Object(m)
}

/// A column whose type cannot be shown as JSON.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("column {column:?} has type {type_name}, which cannot be returned; cast it, e.g. {column}::text")]
pub struct UnsupportedType {
    pub column: String,
    pub type_name: String,
}

/// Converts rows (at most `cap` of them; pass `cap + 1` rows to detect truncation).
pub fn compact(rows: &[PgRow], cap: usize) -> Result<Compact, UnsupportedType> {
    let columns: Vec<String> =
        rows.first().map(|r| r.columns().iter().map(|c| c.name().to_owned()).collect()).unwrap_or_default();
    let mut out = Vec::with_capacity(rows.len().min(cap));
    for row in rows.iter().take(cap) {
        let mut values = Vec::with_capacity(columns.len());
        for (i, col) in row.columns().iter().enumerate() {
            values.push(value(row, i, col.name(), col.type_info())?);
        }
        out.push(values);
    }
    Ok(Compact { columns, rows: out, truncated_at: (rows.len() > cap).then_some(cap), msg: None })
}

fn value(row: &PgRow, i: usize, name: &str, ty: &PgTypeInfo) -> Result<Value, UnsupportedType> {
    if row.try_get_raw(i).map(|v| v.is_null()).unwrap_or(true) {
        return Ok(Value::Null);
    }
    let unsupported = || UnsupportedType { column: name.to_owned(), type_name: ty.name().to_lowercase() };
    macro_rules! get {
        ($t:ty) => {
            row.try_get::<$t, _>(i).map_err(|_| unsupported())
        };
    }
    let v = match ty.name() {
        "BOOL" => json!(get!(bool)?),
        "INT2" => json!(get!(i16)?),
        "INT4" => json!(get!(i32)?),
        "INT8" => json!(get!(i64)?),
        "FLOAT4" => float(f64::from(get!(f32)?)),
        "FLOAT8" => float(get!(f64)?),
        "NUMERIC" => decimal(get!(rust_decimal::Decimal)?),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" => json!(get!(String)?),
        "DATE" => json!(get!(chrono::NaiveDate)?.to_string()),
        "TIMESTAMP" => json!(get!(chrono::NaiveDateTime)?.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
        "TIMESTAMPTZ" => {
            json!(get!(chrono::DateTime<chrono::Utc>)?.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        "TIME" => json!(get!(chrono::NaiveTime)?.to_string()),
        "UUID" => json!(get!(uuid::Uuid)?.to_string()),
        "JSON" | "JSONB" => get!(Value)?,
        "INTERVAL" => {
            let iv = get!(sqlx::postgres::types::PgInterval)?;
            json!(format!("{} months {} days {} microseconds", iv.months, iv.days, iv.microseconds))
        }
        "VECTOR" => json!(get!(pgvector::Vector)?.to_vec()),
        "BOOL[]" => json!(get!(Vec<bool>)?),
        "INT2[]" => json!(get!(Vec<i16>)?),
        "INT4[]" => json!(get!(Vec<i32>)?),
        "INT8[]" => json!(get!(Vec<i64>)?),
        "FLOAT8[]" => json!(get!(Vec<f64>)?),
        "NUMERIC[]" => Value::Array(get!(Vec<rust_decimal::Decimal>)?.into_iter().map(decimal).collect()),
        "TEXT[]" | "VARCHAR[]" | "NAME[]" => json!(get!(Vec<String>)?),
        "DATE[]" => json!(get!(Vec<chrono::NaiveDate>)?.iter().map(ToString::to_string).collect::<Vec<_>>()),
        _ => return Err(unsupported()),
    };
    Ok(v)
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map(Value::Number).unwrap_or_else(|| json!(f.to_string()))
}

/// NUMERIC as a JSON number: exact up to ~15 significant digits, which covers money sums here.
fn decimal(d: rust_decimal::Decimal) -> Value {
    let text = d.normalize().to_string();
    text.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or(json!(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_reference_sample() {
        let empty = Compact { columns: vec![], rows: vec![], truncated_at: None, msg: None };
        assert_eq!(empty.to_json(), json!({"c": [], "r": [], "n": 0, "msg": "No rows"}));
        let some =
            Compact { columns: vec!["a".into()], rows: vec![vec![json!(1)]], truncated_at: None, msg: None };
        assert_eq!(some.to_json(), json!({"c": ["a"], "r": [[1]], "n": 1}));
        let cut = Compact { truncated_at: Some(1), ..some };
        assert_eq!(cut.to_json()["truncated"], json!(true));
        assert!(cut.to_json()["msg"].as_str().unwrap().contains("first 1 rows"));
        assert_eq!(
            error_json("boom", Some("SELECT 1")),
            json!({"err": "boom", "q": "SELECT 1", "c": [], "r": [], "n": 0})
        );
    }

    #[test]
    fn decimals_become_exact_json_numbers() {
        use std::str::FromStr;
        assert_eq!(decimal(rust_decimal::Decimal::from_str("15342.12").unwrap()), json!(15342.12));
        assert_eq!(decimal(rust_decimal::Decimal::from_str("100.00").unwrap()), json!(100.0));
    }
}
