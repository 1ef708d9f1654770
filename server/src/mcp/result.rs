//! Query results in the reference sample's compact JSON shape:
//! `{"c":[columns],"r":[[row values]],"n":count}`, with `"msg"` when there are no rows or the
//! result was cut, and `{"err":..,"q":..,"c":[],"r":[],"n":0}` for errors.
//!
//! Rows arrive one at a time into a [`Collector`], which converts each (in the [`Form`] the
//! projection gave its columns) and stops at the row cap or the byte budget, so no result is
//! held bigger than the budget; one loop ([`Collector::read`]) feeds it from a row stream.
//! Conversion is pure; `read` drives the stream it is given.

use futures::{Stream, TryStreamExt};
use serde_json::{Map, Value, json};
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use crate::db::projection::Form;

/// Shortest cut of a long value, however many columns share the budget.
pub const MIN_VALUE_CHARS: usize = 256;

/// How much one result may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most rows.
    pub rows: usize,
    /// Most bytes of row JSON.
    pub bytes: usize,
}

impl Limits {
    /// The longest value (in characters) of a result with `columns` columns: an equal share of
    /// the byte budget, so one row of full-length values fits in it.
    pub fn value_chars(&self, columns: usize) -> usize {
        (self.bytes / columns.max(1)).clamp(MIN_VALUE_CHARS.min(self.bytes), self.bytes)
    }
}

/// Why a result holds fewer rows than the query produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// More rows existed than the row cap allowed.
    Rows(usize),
    /// The next row would have taken the result past the byte budget.
    Bytes(usize),
}

/// A result ready to send.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Compact {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Set when the result ends before the query's last row.
    pub stopped: Option<Stop>,
    /// How many values were longer than `value_chars` and were cut.
    pub cut_values: usize,
    pub value_chars: usize,
    /// An explanation for the reader (no rows, below threshold...).
    pub msg: Option<String>,
}

impl Compact {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("c".into(), json!(self.columns));
        m.insert("r".into(), Value::Array(self.rows.iter().map(|r| Value::Array(r.clone())).collect()));
        m.insert("n".into(), json!(self.rows.len()));
        let mut notes: Vec<String> = Vec::new();
        match self.stopped {
            Some(Stop::Rows(cap)) => notes.push(format!(
                "showing the first {cap} rows only; aggregate, filter or add LIMIT to see what matters"
            )),
            Some(Stop::Bytes(budget)) => notes.push(format!(
                "showing the first {} rows only: the result reached this server's limit of {} bytes; select fewer columns, aggregate, or filter to see what matters",
                self.rows.len(),
                budget
            )),
            None => {}
        }
        if self.cut_values > 0 {
            notes.push(format!(
                "{} value(s) longer than {} characters were cut and end in …; select a shorter expression (e.g. left(column, 200)) or aggregate",
                self.cut_values, self.value_chars
            ));
        }
        if self.stopped.is_some() || self.cut_values > 0 {
            m.insert("truncated".into(), Value::Bool(true));
        }
        if let Some(msg) = &self.msg {
            notes.insert(0, msg.clone());
        } else if self.rows.is_empty() && notes.is_empty() {
            notes.push("No rows".into());
        }
        if !notes.is_empty() {
            m.insert("msg".into(), json!(notes.join("; ")));
        }
        Value::Object(m)
    }
}

/// The JSON of a row-returning tool's answer (a [`Compact`] result, or [`error_json`] when the
/// call failed): the `outputSchema` those tools declare, which `structuredContent` follows.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
pub struct RowsSchema {
    /// Column names, in order.
    c: Vec<String>,
    /// The rows: one array per row, its values in the order of `c`. Numbers, booleans, strings,
    /// JSON and arrays of those are JSON; values of other types (intervals, ranges, network
    /// addresses, vectors...) are PostgreSQL's text form.
    r: Vec<Vec<Value>>,
    /// How many rows `r` holds.
    n: u64,
    /// Present, and true, when rows or values were left out or cut; `msg` says how to ask better.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    /// A note for the reader: no rows, what was cut and why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    msg: String,
    /// Why the call failed (then `c`, `r` are empty and `n` is 0).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    err: String,
    /// The query that failed, as it was sent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    q: String,
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

/// A column whose type the server cannot show: only possible for a query that was not projected
/// (the fixed queries of the search tools), so a bug rather than a caller's mistake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("column {column:?} has type {type_name}, which this tool cannot return")]
pub struct UnsupportedType {
    pub column: String,
    pub type_name: String,
}

/// Rows converted so far, within the limits.
pub struct Collector {
    limits: Limits,
    /// Column names and forms; taken from the first row when not known in advance.
    columns: Option<(Vec<String>, Vec<Form>)>,
    value_chars: usize,
    rows: Vec<Vec<Value>>,
    bytes: usize,
    cut_values: usize,
    stopped: Option<Stop>,
}

impl Collector {
    /// For a projected query: its described columns and their forms.
    pub fn new(columns: Vec<(String, Form)>, limits: Limits) -> Self {
        let value_chars = limits.value_chars(columns.len());
        let (names, forms) = columns.into_iter().unzip();
        Self { columns: Some((names, forms)), value_chars, ..Self::native(limits) }
    }

    /// For a fixed query whose columns all have native types: names from the first row.
    pub fn native(limits: Limits) -> Self {
        Self {
            limits,
            columns: None,
            value_chars: limits.bytes,
            rows: Vec::new(),
            bytes: 0,
            cut_values: 0,
            stopped: None,
        }
    }

    /// Adds `row`; `false` once the result is full and no further row should be read.
    pub fn push(&mut self, row: &PgRow) -> Result<bool, UnsupportedType> {
        if self.rows.len() >= self.limits.rows {
            self.stopped = Some(Stop::Rows(self.limits.rows));
            return Ok(false);
        }
        let (_, forms) = self.columns.get_or_insert_with(|| {
            let names = row.columns().iter().map(|c| c.name().to_owned()).collect::<Vec<_>>();
            let forms = vec![Form::Native; names.len()];
            (names, forms)
        });
        let mut values = Vec::with_capacity(forms.len());
        let mut cut = 0;
        for (i, form) in forms.iter().enumerate() {
            let (v, was_cut) = value(row, i, *form, self.value_chars)?;
            cut += usize::from(was_cut);
            values.push(v);
        }
        let size = json_size(&values) + 1;
        if !self.rows.is_empty() && self.bytes + size > self.limits.bytes {
            self.stopped = Some(Stop::Bytes(self.limits.bytes));
            return Ok(false);
        }
        self.bytes += size;
        self.cut_values += cut;
        self.rows.push(values);
        Ok(true)
    }

    /// Reads `rows` until they end or the result is full. Rows after that are never converted
    /// (nor, for a projected query, more than one past the row cap produced).
    pub async fn read<E>(
        mut self,
        rows: impl Stream<Item = Result<PgRow, E>>,
    ) -> Result<Result<Compact, UnsupportedType>, E> {
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.try_next().await? {
            match self.push(&row) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(self.finish()))
    }

    pub fn finish(self) -> Compact {
        Compact {
            columns: self.columns.map(|(names, _)| names).unwrap_or_default(),
            rows: self.rows,
            stopped: self.stopped,
            cut_values: self.cut_values,
            value_chars: self.value_chars,
            msg: None,
        }
    }
}

/// The length of `values` as JSON, without writing it anywhere.
fn json_size(values: &[Value]) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing JSON values into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, values);
    count.0
}

/// `s` cut to `max` characters (and marked), and whether it was.
fn cut(mut s: String, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        Some((at, _)) => {
            s.truncate(at);
            s.push('…');
            (s, true)
        }
        None => (s, false),
    }
}

/// Column `i` of `row` as JSON, read in `form`, and whether it was cut.
fn value(row: &PgRow, i: usize, form: Form, max_chars: usize) -> Result<(Value, bool), UnsupportedType> {
    let raw = row.try_get_raw(i).ok();
    if raw.as_ref().is_none_or(|v| v.is_null()) {
        return Ok((Value::Null, false));
    }
    let column = &row.columns()[i];
    let ty = column.type_info();
    let unsupported =
        || UnsupportedType { column: column.name().to_owned(), type_name: ty.name().to_lowercase() };
    macro_rules! get {
        ($t:ty) => {
            row.try_get::<$t, _>(i).map_err(|_| unsupported())
        };
    }
    let text = |s: String| -> (Value, bool) {
        let (s, was_cut) = cut(s, max_chars);
        (Value::String(s), was_cut)
    };
    Ok(match form {
        Form::Text => text(get!(String)?),
        Form::Number => {
            let s = get!(String)?;
            match s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                // The number as PostgreSQL wrote it, read as JSON reads numbers.
                Some(n) if s.len() <= max_chars => (Value::Number(n), false),
                _ => text(s),
            }
        }
        Form::Json => {
            let s = get!(String)?;
            if s.chars().count() > max_chars {
                text(s)
            } else {
                (serde_json::from_str(&s).unwrap_or(Value::String(s)), false)
            }
        }
        Form::Native => {
            let raw = raw.ok_or_else(unsupported)?;
            match ty.name() {
                "BOOL" => (json!(get!(bool)?), false),
                "INT2" => (json!(get!(i16)?), false),
                "INT4" => (json!(get!(i32)?), false),
                "INT8" => (json!(get!(i64)?), false),
                "FLOAT4" => (float(f64::from(get!(f32)?)), false),
                "FLOAT8" => (float(get!(f64)?), false),
                "NUMERIC" => (decimal(get!(rust_decimal::Decimal)?), false),
                "TEXT" | "VARCHAR" | "CHAR" | "NAME" | "UNKNOWN" => text(get!(String)?),
                "JSON" | "JSONB" => (get!(Value)?, false),
                "UUID" => (json!(get!(uuid::Uuid)?.to_string()), false),
                "TIME" => (json!(get!(chrono::NaiveTime)?.to_string()), false),
                "DATE" | "TIMESTAMP" | "TIMESTAMPTZ" if raw.format() == PgValueFormat::Binary => {
                    let bytes = raw.as_bytes().map_err(|_| unsupported())?;
                    (json!(time::binary(ty.name(), bytes).ok_or_else(unsupported)?), false)
                }
                _ => return Err(unsupported()),
            }
        }
    })
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map(Value::Number).unwrap_or_else(|| json!(f.to_string()))
}

/// NUMERIC as a JSON number: exact up to ~15 significant digits, which covers money sums here.
fn decimal(d: rust_decimal::Decimal) -> Value {
    let text = d.normalize().to_string();
    text.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or(json!(text))
}

/// Dates and timestamps from their binary forms, without the panics of a plain `+` on values
/// chrono cannot hold: `infinity`, `-infinity`, and years past chrono's range.
mod time {
    use chrono::{NaiveDate, SecondsFormat, TimeDelta};

    const DAY_MICROS: i64 = 86_400_000_000;

    fn epoch() -> NaiveDate {
        NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
    }

    /// `DATE`, `TIMESTAMP` or `TIMESTAMPTZ` (`type_name`) as the server writes it.
    pub fn binary(type_name: &str, bytes: &[u8]) -> Option<String> {
        if type_name == "DATE" {
            let days = i32::from_be_bytes(bytes.try_into().ok()?);
            return Some(match days {
                i32::MAX => "infinity".into(),
                i32::MIN => "-infinity".into(),
                d => epoch()
                    .checked_add_signed(TimeDelta::days(i64::from(d)))
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| civil(i64::from(d))),
            });
        }
        let micros = i64::from_be_bytes(bytes.try_into().ok()?);
        let zone = if type_name == "TIMESTAMPTZ" { "Z" } else { "" };
        Some(match micros {
            i64::MAX => "infinity".into(),
            i64::MIN => "-infinity".into(),
            us => match epoch().and_hms_opt(0, 0, 0)?.checked_add_signed(TimeDelta::microseconds(us)) {
                Some(t) if zone.is_empty() => t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
                Some(t) => t.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true),
                None => {
                    let (days, rest) = (us.div_euclid(DAY_MICROS), us.rem_euclid(DAY_MICROS));
                    let secs = rest / 1_000_000;
                    format!(
                        "{}T{:02}:{:02}:{:02}.{:06}{zone}",
                        civil(days),
                        secs / 3600,
                        secs / 60 % 60,
                        secs % 60,
                        rest % 1_000_000
                    )
                }
            },
        })
    }

    /// Days since 2000-01-01 as a proleptic Gregorian `YYYY-MM-DD`, for any year (H. Hinnant's
    /// `civil_from_days`).
    fn civil(days: i64) -> String {
        let z = days + 10_957 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y}-{m:02}-{d:02}")
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn dates_and_timestamps_never_panic_and_read_as_before() {
            let date = |d: i32| binary("DATE", &d.to_be_bytes()).unwrap();
            let ts = |t: &str, us: i64| binary(t, &us.to_be_bytes()).unwrap();
            assert_eq!(date(0), "2000-01-01");
            assert_eq!(date(i32::MAX), "infinity");
            assert_eq!(date(i32::MIN), "-infinity");
            assert_eq!(date(-1), "1999-12-31");
            // PostgreSQL's latest date, 5874897-12-31, is beyond chrono's range.
            assert_eq!(date(2_145_031_948), "5874897-12-31");
            assert_eq!(civil(-10_957), "1970-01-01");
            assert_eq!(ts("TIMESTAMP", 1_500_000), "2000-01-01T00:00:01.500");
            assert_eq!(ts("TIMESTAMPTZ", 0), "2000-01-01T00:00:00Z");
            assert_eq!(ts("TIMESTAMPTZ", i64::MAX), "infinity");
            assert_eq!(ts("TIMESTAMP", i64::MIN), "-infinity");
            assert_eq!(binary("DATE", &[1, 2]), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_reference_sample() {
        let empty = Compact::default();
        assert_eq!(empty.to_json(), json!({"c": [], "r": [], "n": 0, "msg": "No rows"}));
        let some = Compact { columns: vec!["a".into()], rows: vec![vec![json!(1)]], ..Default::default() };
        assert_eq!(some.to_json(), json!({"c": ["a"], "r": [[1]], "n": 1}));
        let cut = Compact { stopped: Some(Stop::Rows(1)), ..some.clone() };
        assert_eq!(cut.to_json()["truncated"], json!(true));
        assert!(cut.to_json()["msg"].as_str().unwrap().contains("first 1 rows"));
        let full = Compact { stopped: Some(Stop::Bytes(1000)), cut_values: 2, value_chars: 500, ..some };
        let msg = full.to_json()["msg"].as_str().unwrap().to_owned();
        assert!(msg.contains("limit of 1000 bytes") && msg.contains("select fewer columns"), "{msg}");
        assert!(msg.contains("2 value(s) longer than 500 characters were cut"), "{msg}");
        assert_eq!(
            error_json("boom", Some("SELECT 1")),
            json!({"err": "boom", "q": "SELECT 1", "c": [], "r": [], "n": 0})
        );
    }

    #[test]
    fn the_output_schema_names_every_key_and_requires_only_those_always_present() {
        let schema = serde_json::Value::Object(
            rmcp::handler::server::common::schema_for_output::<RowsSchema>().as_ref().clone(),
        );
        assert_eq!(schema["required"], json!(["c", "r", "n"]));
        let full = Compact {
            rows: vec![vec![json!(1)]],
            stopped: Some(Stop::Rows(1)),
            cut_values: 1,
            msg: Some("m".into()),
            ..Default::default()
        };
        for shape in [full.to_json(), error_json("e", Some("q"))] {
            for key in shape.as_object().unwrap().keys() {
                assert!(schema["properties"].get(key).is_some(), "{key} is not in the schema");
            }
        }
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary_and_marked() {
        assert_eq!(cut("héllo".into(), 2), ("hé…".into(), true));
        assert_eq!(cut("héllo".into(), 5), ("héllo".into(), false));
        let limits = Limits { rows: 10, bytes: 1 << 20 };
        assert_eq!(limits.value_chars(4), 1 << 18);
        assert_eq!(limits.value_chars(100_000), MIN_VALUE_CHARS);
        assert_eq!(Limits { rows: 1, bytes: 100 }.value_chars(1), 100);
    }

    #[test]
    fn decimals_become_exact_json_numbers() {
        use std::str::FromStr;
        assert_eq!(decimal(rust_decimal::Decimal::from_str("15342.12").unwrap()), json!(15342.12));
        assert_eq!(decimal(rust_decimal::Decimal::from_str("100.00").unwrap()), json!(100.0));
        assert_eq!(json_size(&[json!("a"), json!(1)]), r#"["a",1]"#.len());
    }
}
