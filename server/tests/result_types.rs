//! Every PostgreSQL type comes back, through a real MCP client against a real PostgreSQL: values
//! with a natural JSON form as JSON, every other one as PostgreSQL's own text form, and the next
//! call still works after each (a failed statement once left the connection broken for it).

mod support;

use serde_json::{Value, json};
use support::{Client, Opts, call, client, embedded_db, json as parse, server, tenant};

/// Runs `sql` and returns its result, after checking it succeeded and that a plain query
/// still works afterwards on the same server.
async fn run_then_check_next(c: &Client, sql: &str) -> Value {
    let (err, text) = call(c, "execute_sales_query", json!({ "postgresql_query": sql })).await;
    assert!(!err, "{sql:?} failed: {text}");
    let (err, next) = call(
        c,
        "execute_sales_query",
        json!({ "postgresql_query": "SELECT count(*) AS n FROM retail.categories" }),
    )
    .await;
    assert!(!err && parse(&next)["r"] == json!([[9]]), "the call after {sql:?}: {next}");
    parse(&text)
}

#[tokio::test]
async fn select_star_on_every_retail_table_returns_every_column() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1, 2]).await;
    let srv = server(&db, &t, Opts::default()).await;
    let c = client(&srv.url, &[]).await;
    for (table, _) in mcp_fleet_server::mcp::TABLES {
        let v = run_then_check_next(&c, &format!("SELECT * FROM retail.{table} LIMIT 2")).await;
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = 'retail' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&db.admin)
        .await
        .unwrap();
        assert_eq!(v["c"], json!(columns), "{table}");
        assert_eq!(v["n"], json!(2), "{table}: {v}");
    }
    // The issue's first probes: the generated tsvector and pgvector's vector, as their text forms.
    let v = run_then_check_next(&c, "SELECT * FROM retail.products LIMIT 2").await;
    let search = v["c"].as_array().unwrap().iter().position(|c| c == "product_search").unwrap();
    let tsvector = v["r"][0][search].as_str().unwrap();
    assert!(tsvector.contains("':") && tsvector.contains("A"), "{tsvector}");
    let v = run_then_check_next(&c, "SELECT * FROM retail.product_description_embeddings LIMIT 1").await;
    let embedding = v["c"].as_array().unwrap().iter().position(|c| c == "description_embedding").unwrap();
    let text = v["r"][0][embedding].as_str().unwrap();
    assert!(text.starts_with('[') && text.ends_with(']') && text.split(',').count() == 384, "{text}");
}

#[tokio::test]
async fn every_type_comes_back_as_json_or_as_postgresqls_own_text() {
    let db = embedded_db().await;
    let t = tenant(&db, &[3]).await;
    let srv = server(&db, &t, Opts::default()).await;
    let c = client(&srv.url, &[]).await;
    // (expression, the value a client receives)
    let cases: &[(&str, Value)] = &[
        // natural JSON forms, as before
        ("true", json!(true)),
        ("42::int2", json!(42)),
        ("42::int8", json!(42)),
        ("1.5::float4", json!(1.5)),
        ("'NaN'::float8", json!("NaN")),
        ("12.345::numeric", json!(12.345)),
        ("100.00::numeric", json!(100.0)),
        ("1e40::numeric", json!(1e40)),
        ("'NaN'::numeric", json!("NaN")),
        ("'abc'::varchar(5)", json!("abc")),
        ("'abc'", json!("abc")),
        ("'{\"a\": [1, 2]}'::jsonb", json!({"a": [1, 2]})),
        ("'{\"b\": null}'::json", json!({"b": null})),
        ("'11111111-2222-3333-4444-555555555555'::uuid", json!("11111111-2222-3333-4444-555555555555")),
        ("'2024-01-02'::date", json!("2024-01-02")),
        ("'2024-01-02 03:04:05.5'::timestamp", json!("2024-01-02T03:04:05.500")),
        ("'2024-01-02 03:04:05+00'::timestamptz", json!("2024-01-02T03:04:05Z")),
        ("'12:30'::time", json!("12:30:00")),
        ("ARRAY[1, 2]", json!([1, 2])),
        ("ARRAY[[1, 2], [3, 4]]", json!([[1, 2], [3, 4]])),
        ("ARRAY['a', NULL]", json!(["a", null])),
        ("ARRAY[1.5, 2]::numeric[]", json!([1.5, 2])),
        ("ARRAY['2024-01-02'::date]", json!(["2024-01-02"])),
        ("NULL::int", json!(null)),
        ("NULL::inet", json!(null)),
        // no natural JSON form: PostgreSQL's own text
        ("'1.2.3.4'::inet", json!("1.2.3.4")),
        ("'10.0.0.0/8'::cidr", json!("10.0.0.0/8")),
        ("'08:00:2b:01:02:03'::macaddr", json!("08:00:2b:01:02:03")),
        ("to_tsvector('english', 'the quick brown fox')", json!("'brown':3 'fox':4 'quick':2")),
        ("to_tsquery('english', 'quick & fox')", json!("'quick' & 'fox'")),
        ("'[1,2,3]'::vector", json!("[1,2,3]")),
        ("interval '1 day 2 hours'", json!("1 day 02:00:00")),
        ("12.5::money", json!("$12.50")),
        ("int4range(1, 5)", json!("[1,5)")),
        ("daterange('2024-01-01', '2024-02-01')", json!("[2024-01-01,2024-02-01)")),
        ("B'1010'", json!("1010")),
        ("'101'::varbit", json!("101")),
        ("ROW(1, 'a b')", json!("(1,\"a b\")")),
        ("ARRAY['1.2.3.4'::inet, '::1']", json!("{1.2.3.4,::1}")),
        ("ARRAY[int4range(1, 2)]", json!("{\"[1,2)\"}")),
        ("ARRAY[ROW(1, 2)]", json!("{\"(1,2)\"}")),
        ("'\\x0aff'::bytea", json!("\\x0aff")),
        ("'12:30+02'::timetz", json!("12:30:00+02")),
        ("'(1,2)'::point", json!("(1,2)")),
        ("'<a>b</a>'::xml", json!("<a>b</a>")),
        ("'a'::\"char\"", json!("a")),
        ("'infinity'::date", json!("infinity")),
        ("'-infinity'::timestamp", json!("-infinity")),
        ("'infinity'::timestamptz", json!("infinity")),
    ];
    let mut wrong = vec![];
    for (expr, want) in cases {
        let v = run_then_check_next(&c, &format!("SELECT {expr} AS v")).await;
        assert_eq!(v["c"], json!(["v"]), "{expr}");
        if &v["r"][0][0] != want {
            wrong.push(format!("{expr}: got {}, want {want}", v["r"][0][0]));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // All of them at once, in one row of as many columns.
    let all = cases.iter().enumerate().map(|(i, (e, _))| format!("{e} AS v{i}")).collect::<Vec<_>>();
    let v = run_then_check_next(&c, &format!("SELECT {}", all.join(", "))).await;
    let got = v["r"][0].as_array().unwrap();
    for (i, (expr, want)) in cases.iter().enumerate() {
        assert_eq!(&got[i], want, "{expr} among all the others");
    }
    // Odd result shapes: duplicate names, no columns at all, no rows.
    let v = run_then_check_next(&c, "SELECT 1 AS x, 'two' AS x").await;
    assert_eq!((v["c"].clone(), v["r"].clone()), (json!(["x", "x"]), json!([[1, "two"]])));
    let v = run_then_check_next(&c, "SELECT FROM retail.categories LIMIT 2").await;
    assert_eq!((v["c"].clone(), v["r"].clone()), (json!([]), json!([[], []])));
    let v = run_then_check_next(&c, "SELECT product_search FROM retail.products WHERE false").await;
    assert_eq!(v["c"], json!(["product_search"]));
    assert_eq!(v["msg"], json!("No rows"));
}
