//! The MCP tools through a real rmcp client over HTTP, against a real PostgreSQL with the sample
//! data and the real local embedding model. Good and bad inputs for every tool.

mod support;

use serde_json::{Value, json};
use support::{Opts, call, call_raw, client, embedded_db, json as parse, server, tenant};

#[tokio::test]
async fn lists_exactly_the_tools_and_their_schemas_match_the_golden_file() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    let srv = server(&db, &t, Opts::default()).await;
    let c = client(&srv.url, &[]).await;
    let tools = c.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    let mut expected: Vec<&str> = mcp_fleet_core::tools::names().collect();
    expected.sort();
    assert_eq!(names, expected);

    // The public contract: names, titles, descriptions, hints and schemas, in a golden file.
    let snapshot: Vec<Value> = {
        let mut v: Vec<Value> = tools
            .iter()
            .map(|t| {
                json!({"name": t.name, "title": t.title, "description": t.description, "inputSchema": t.input_schema,
                       "outputSchema": t.output_schema, "annotations": t.annotations})
            })
            .collect();
        v.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        v
    };
    let golden_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tools.json");
    let rendered = serde_json::to_string_pretty(&snapshot).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_path.parent().unwrap()).unwrap();
        std::fs::write(&golden_path, &rendered).unwrap();
    }
    let golden = std::fs::read_to_string(&golden_path)
        .expect("tests/golden/tools.json (regenerate with UPDATE_GOLDEN=1)");
    assert_eq!(
        rendered, golden,
        "the tool contract changed; if intended, regenerate with UPDATE_GOLDEN=1 cargo test"
    );

    // Every tool says it only reads, changes nothing and stays inside the tenant's database.
    for t in &tools {
        let hints = serde_json::to_value(t.annotations.as_ref().expect("annotations")).unwrap();
        assert_eq!(hints["readOnlyHint"], json!(true), "{}", t.name);
        assert_eq!(hints["destructiveHint"], json!(false), "{}", t.name);
        assert_eq!(hints["idempotentHint"], json!(true), "{}", t.name);
        assert_eq!(hints["openWorldHint"], json!(false), "{}", t.name);
        assert!(hints["title"].is_string() && t.title.is_some(), "{}", t.name);
    }
    // Row results are structured too, with the same JSON as the text the sample's clients read.
    let result = support::call_raw(
        &c,
        "execute_sales_query",
        json!({ "postgresql_query": "SELECT count(*) AS n FROM retail.stores" }),
    )
    .await
    .unwrap();
    let (_, text) = support::text_of(&result);
    assert_eq!(result.structured_content, Some(parse(&text)));
    assert_eq!(parse(&text)["r"], json!([[1]]));

    // Every argument is bounded in the schema itself.
    let semantic = tools.iter().find(|t| t.name == "semantic_search_products").unwrap();
    let props = &semantic.input_schema["properties"];
    assert_eq!(props["max_rows"]["maximum"], json!(100));
    assert_eq!(props["similarity_threshold"]["minimum"], json!(20));
}

#[tokio::test]
async fn a_sales_query_sees_only_the_tenants_stores_and_matches_ground_truth() {
    let db = embedded_db().await;
    let east = tenant(&db, &[2, 6]).await;
    let srv = server(&db, &east, Opts::default()).await;
    let c = client(&srv.url, &[]).await;
    let sql = "SELECT s.store_name, round(sum(oi.total_amount), 2) AS revenue
               FROM retail.order_items oi JOIN retail.stores s ON s.store_id = oi.store_id
               GROUP BY s.store_name ORDER BY s.store_name";
    let (err, text) = call(&c, "execute_sales_query", json!({ "postgresql_query": sql })).await;
    assert!(!err, "{text}");
    let v = parse(&text);
    assert_eq!(v["c"], json!(["store_name", "revenue"]));
    let got: Vec<(String, f64)> = v["r"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_f64().unwrap()))
        .collect();
    let truth: Vec<(String, f64)> = sqlx::query_as(
        "SELECT s.store_name, round(sum(oi.total_amount), 2)::float8 FROM retail.order_items oi
         JOIN retail.stores s ON s.store_id = oi.store_id WHERE s.store_id IN (2, 6) GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&db.admin)
    .await
    .unwrap();
    assert_eq!(got, truth);

    // Even an explicit attempt at other stores comes back empty: RLS, not the query, decides.
    let (err, text) = call(
        &c,
        "execute_sales_query",
        json!({ "postgresql_query": "SELECT count(*) AS n FROM retail.orders WHERE store_id = 1" }),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(parse(&text)["r"], json!([[0]]));
}

#[tokio::test]
async fn two_tenants_see_disjoint_orders() {
    let db = embedded_db().await;
    let a = tenant(&db, &[1]).await;
    let b = tenant(&db, &[3, 4]).await;
    let (sa, sb) = (server(&db, &a, Opts::default()).await, server(&db, &b, Opts::default()).await);
    let (ca, cb) = (client(&sa.url, &[]).await, client(&sb.url, &[]).await);
    let q = json!({ "postgresql_query": "SELECT array_agg(order_id ORDER BY order_id) AS ids, array_agg(DISTINCT store_id) AS stores FROM retail.orders" });
    let va = parse(&call(&ca, "execute_sales_query", q.clone()).await.1);
    let vb = parse(&call(&cb, "execute_sales_query", q).await.1);
    assert_eq!(va["r"][0][1], json!([1]));
    assert_eq!(vb["r"][0][1], json!([3, 4]));
    let ids_a: std::collections::HashSet<i64> =
        va["r"][0][0].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert!(vb["r"][0][0].as_array().unwrap().iter().all(|v| !ids_a.contains(&v.as_i64().unwrap())));
}

#[tokio::test]
async fn bad_queries_get_clear_errors_and_the_next_good_call_works() {
    let db = embedded_db().await;
    let t = tenant(&db, &[5]).await;
    let srv = server(&db, &t, Opts::default()).await;
    let c = client(&srv.url, &[]).await;
    let cases: &[(&str, &str)] = &[
        ("DELETE FROM retail.orders", "only"),
        ("SELECT 1; DROP TABLE retail.orders", "one SQL statement"),
        ("COMMIT; SELECT 1", "one SQL statement"),
        ("SELECT pg_sleep(10)", "pg_sleep"),
        ("SELECT set_config('role', 'postgres', false)", "set_config"),
        ("SELECT * FROM retail.no_such_table", "no_such_table"),
        ("SELECT * FROM pg_catalog.pg_authid", "pg_authid"),
        ("SELECT * FROM tenancy.tenant_stores", "tenant_stores"),
        ("SELECT * FROM audit.tool_calls", "tool_calls"),
        ("WITH x AS (DELETE FROM retail.orders RETURNING *) SELECT * FROM x", ""),
        ("SELECT * INTO new_table FROM retail.orders", ""),
        ("SELECT * FROM retail.orders FOR UPDATE", ""),
        ("SELEC * FROM retail.orders", ""),
        ("SELECT no_such_column FROM retail.orders", "no_such_column"),
        ("", ""),
    ];
    for (sql, needle) in cases {
        let (err, text) = call(&c, "execute_sales_query", json!({ "postgresql_query": sql })).await;
        assert!(err, "{sql:?} should be refused, got {text}");
        let v = parse(&text);
        let msg = v["err"].as_str().unwrap_or_else(|| panic!("error shape for {sql:?}: {text}"));
        assert!(msg.to_lowercase().contains(&needle.to_lowercase()), "{sql:?}: {msg}");
        assert!(!msg.contains("sqlx") && !msg.contains("panicked"), "internals leaked: {msg}");
        assert_eq!(v["n"], json!(0));
        // The server keeps serving.
        let (err, text) = call(
            &c,
            "execute_sales_query",
            json!({ "postgresql_query": "SELECT count(*) AS n FROM retail.stores" }),
        )
        .await;
        assert!(!err && parse(&text)["r"] == json!([[1]]), "after {sql:?}: {text}");
    }
    // Wrong argument types and missing arguments are tool errors the model can read.
    for args in [json!({ "postgresql_query": 42 }), json!({}), json!({ "query": "SELECT 1" })] {
        let result = call_raw(&c, "execute_sales_query", args.clone()).await;
        match result {
            Ok(r) => assert!(r.is_error == Some(true), "{args}: {r:?}"),
            Err(e) => assert!(e.to_string().contains("postgresql_query"), "{args}: {e}"),
        }
    }
    // An oversized query is refused before parsing.
    let huge = format!("SELECT 1 {}", "-- padding\n".repeat(3000));
    let (err, text) = call(&c, "execute_sales_query", json!({ "postgresql_query": huge })).await;
    assert!(err, "{text}");
}

#[tokio::test]
async fn the_row_cap_truncates_and_says_so_and_timeouts_explain_themselves() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    let srv = server(
        &db,
        &t,
        Opts { row_cap: Some(7), statement_timeout: Some("300ms".into()), ..Default::default() },
    )
    .await;
    let c = client(&srv.url, &[]).await;
    let (err, text) = call(
        &c,
        "execute_sales_query",
        json!({ "postgresql_query": "SELECT order_id FROM retail.orders ORDER BY order_id" }),
    )
    .await;
    assert!(!err, "{text}");
    let v = parse(&text);
    assert_eq!(v["n"], json!(7));
    assert_eq!(v["truncated"], json!(true));
    assert!(v["msg"].as_str().unwrap().contains("first 7 rows"));
    let (err, text) = call(
        &c,
        "execute_sales_query",
        json!({ "postgresql_query": "SELECT count(*) FROM retail.order_items a, retail.order_items b, retail.order_items c" }),
    )
    .await;
    assert!(err, "{text}");
    assert!(text.contains("statement timeout"), "{text}");
}

#[tokio::test]
async fn the_rls_header_narrows_to_one_store_and_never_reaches_another_tenant() {
    let db = embedded_db().await;
    let east = tenant(&db, &[2, 6]).await;
    let srv = server(&db, &east, Opts::default()).await;
    let uuid = |store: i32| {
        let pool = db.admin.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>("SELECT rls_user_id FROM retail.stores WHERE store_id = $1")
                .bind(store)
                .fetch_one(&pool)
                .await
                .unwrap()
                .to_string()
        }
    };
    let redmond = uuid(6).await;
    let c = client(&srv.url, &[("x-rls-user-id", &redmond)]).await;
    let (_, text) = call(
        &c,
        "execute_sales_query",
        json!({ "postgresql_query": "SELECT DISTINCT store_id FROM retail.orders" }),
    )
    .await;
    assert_eq!(parse(&text)["r"], json!([[6]]));

    // A store of another tenant is not a store of this tenant: refused, not widened.
    let seattle = uuid(1).await;
    let c = client(&srv.url, &[("x-rls-user-id", &seattle)]).await;
    let (err, text) =
        call(&c, "execute_sales_query", json!({ "postgresql_query": "SELECT count(*) FROM retail.orders" }))
            .await;
    assert!(err, "{text}");
    assert!(text.contains("does not identify one of tenant"), "{text}");

    // A malformed header is a 400 with the reason, before any MCP processing.
    let resp = reqwest::Client::new()
        .post(&srv.url)
        .header("x-rls-user-id", "everything")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("must be a UUID"));
}

#[tokio::test]
async fn table_schemas_show_columns_relationships_and_the_tenants_own_values() {
    let db = embedded_db().await;
    let t = tenant(&db, &[2, 6]).await;
    let srv = server(&db, &t, Opts::default()).await;
    let c = client(&srv.url, &[]).await;
    let (err, text) = call(
        &c,
        "get_multiple_table_schemas",
        json!({ "table_names": ["retail.stores", "retail.orders", "order_items"] }),
    )
    .await;
    assert!(!err, "{text}");
    assert!(text.contains("# Table: retail.stores"));
    assert!(text.contains("**Stores Locations:** Zava Retail Bellevue, Zava Retail Redmond"), "{text}");
    assert!(!text.contains("Seattle"), "another tenant's store leaked: {text}");
    assert!(text.contains("`customer_id` → `retail.customers.customer_id`"), "{text}");
    assert!(text.contains("**Available Years:** 2020"), "{text}");
    for bad in [
        json!({ "table_names": [] }),
        json!({ "table_names": ["pg_authid"] }),
        json!({ "table_names": ["retail.orders; drop"] }),
    ] {
        let (err, text) = call(&c, "get_multiple_table_schemas", bad.clone()).await;
        assert!(err, "{bad}: {text}");
    }
    // The same schemas as MCP resources.
    let resources = c.list_all_resources().await.unwrap();
    assert_eq!(resources.len(), mcp_fleet_server::mcp::TABLES.len());
    let read = c
        .read_resource(rmcp::model::ReadResourceRequestParams::new("retail://schema/inventory"))
        .await
        .unwrap();
    let body = serde_json::to_string(&read).unwrap();
    assert!(body.contains("# Table: retail.inventory"), "{body}");
}

#[tokio::test]
async fn searches_find_relevant_products_and_bound_their_arguments() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    let srv = server(&db, &t, Opts::default()).await;
    let c = client(&srv.url, &[]).await;
    let category_of = |db_pool: sqlx::PgPool| async move {
        let rows: Vec<(i32, String)> = sqlx::query_as(
            "SELECT p.product_id, c.category_name FROM retail.products p JOIN retail.categories c USING (category_id)",
        )
        .fetch_all(&db_pool)
        .await
        .unwrap();
        rows.into_iter().collect::<std::collections::HashMap<i32, String>>()
    };
    let categories = category_of(db.admin.clone()).await;
    for (query, category) in [
        ("something to water my plants in the garden", "Garden & Outdoor"),
        ("fix a leaking pipe under the sink", "Plumbing"),
        ("paint for my living room walls", "Paint & Finishes"),
    ] {
        let (err, text) =
            call(&c, "semantic_search_products", json!({ "query_description": query, "max_rows": 5 })).await;
        assert!(!err, "{text}");
        let v = parse(&text);
        assert_eq!(v["c"][0], json!("product_id"));
        assert_eq!(v["c"].as_array().unwrap().last(), Some(&json!("sp")));
        let hits: Vec<&String> = v["r"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &categories[&(r[0].as_i64().unwrap() as i32)])
            .collect();
        let matching = hits.iter().filter(|c| c.as_str() == category).count();
        assert!(matching * 2 > hits.len() && !hits.is_empty(), "{query:?} → {hits:?}");
    }
    let (err, text) = call(&c, "full_text_search_products", json!({ "query": "garden hose" })).await;
    assert!(!err, "{text}");
    let v = parse(&text);
    assert!(v["n"].as_u64().unwrap() > 0);
    assert!(v["r"].as_array().unwrap().iter().all(|r| r[2].as_str().unwrap().contains("Hose")), "{text}");
    let (err, text) = call(
        &c,
        "hybrid_search_products",
        json!({ "query_description": "cordless drill for deck screws", "max_rows": 5 }),
    )
    .await;
    assert!(!err, "{text}");
    let v = parse(&text);
    assert_eq!(v["r"][0][3], json!("Power Tools"), "{text}");

    for (tool, args) in [
        ("semantic_search_products", json!({ "query_description": "drill", "max_rows": 1000 })),
        ("semantic_search_products", json!({ "query_description": "drill", "similarity_threshold": 5 })),
        ("semantic_search_products", json!({ "query_description": "   " })),
        ("semantic_search_products", json!({ "query_description": "x".repeat(5000) })),
        ("full_text_search_products", json!({ "query": "" })),
        ("hybrid_search_products", json!({ "query_description": "drill", "semantic_weight": 2 })),
        ("semantic_search_products", json!({ "query_description": ["not", "a", "string"] })),
    ] {
        match call_raw(&c, tool, args.clone()).await {
            Ok(r) => assert!(r.is_error == Some(true), "{tool} {args}: {r:?}"),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // A description with nothing similar above the threshold says so.
    let (err, text) = call(
        &c,
        "semantic_search_products",
        json!({ "query_description": "quantum entanglement poetry", "similarity_threshold": 80 }),
    )
    .await;
    assert!(!err, "{text}");
    assert!(parse(&text)["msg"].as_str().unwrap().starts_with("No products >= 80"), "{text}");
}

#[tokio::test]
async fn utc_date_health_readiness_and_metrics() {
    let db = embedded_db().await;
    let t = tenant(&db, &[7]).await;
    let srv = server(&db, &t, Opts::default()).await;
    let c = client(&srv.url, &[]).await;
    let (err, text) = call(&c, "get_current_utc_date", json!({})).await;
    assert!(!err);
    let stamp = text.strip_prefix("Current UTC Date/Time: ").expect(&text);
    let parsed = chrono::DateTime::parse_from_rfc3339(stamp).unwrap();
    assert!((chrono::Utc::now() - parsed.to_utc()).num_seconds().abs() < 60);

    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{}/health/live", srv.base)).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{}/health/ready", srv.base)).send().await.unwrap().status(), 200);
    let health: Value = http.get(format!("{}/health", srv.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["checks"]["tenant"], json!(t.name.as_str()));
    let metrics = http.get(format!("{}/metrics", srv.base)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("mcpfleet_tool_calls_total{outcome=\"ok\",tool=\"get_current_utc_date\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mcpfleet_db_pool_connections"), "{metrics}");

    // A server claiming one tenant but logged in as another is never ready.
    let other = tenant(&db, &[8]).await;
    let confused = server(
        &db,
        &t,
        Opts { login_as: Some((other.name.login_role(), other.password.clone())), ..Default::default() },
    )
    .await;
    let resp = http.get(format!("{}/health/ready", confused.base)).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("belongs to tenant"));
}

/// A plain stateless `tools/call` POST is answered without rmcp's per-request service
/// (`mcp::stateless`); one with anything unusual (here quality weights in `Accept`) still goes
/// through rmcp. Whichever way, a client gets the same bytes, the same status, and an audit row.
#[tokio::test]
async fn a_plain_tool_call_answers_exactly_as_rmcp_does() {
    let db = embedded_db().await;
    let t = tenant(&db, &[7]).await;
    let srv = server(&db, &t, Opts::default()).await;
    let http = reqwest::Client::new();
    let post = |accept: &'static str, body: Value| {
        let request = http
            .post(&srv.url)
            .header("content-type", "application/json")
            .header("accept", accept)
            .header("mcp-protocol-version", "2025-11-25")
            .body(body.to_string());
        async move {
            let resp = request.send().await.unwrap();
            let status = resp.status();
            let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
            (status, content_type, resp.text().await.unwrap())
        }
    };
    let plain = "application/json, text/event-stream";
    let weighted = "application/json;q=1.0, text/event-stream;q=0.9";
    let calls = [
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "execute_sales_query",
            "arguments": {"postgresql_query": "SELECT store_name FROM retail.stores ORDER BY 1"}}}),
        json!({"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "execute_sales_query",
            "arguments": {"postgresql_query": "DELETE FROM retail.orders"}}}),
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "no_such_tool"}}),
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "execute_sales_query",
            "arguments": {"wrong": 1}}}),
    ];
    for body in &calls {
        let direct = post(plain, body.clone()).await;
        let through_rmcp = post(weighted, body.clone()).await;
        assert_eq!(direct, through_rmcp, "{body}");
        assert_eq!(direct.0, 200, "{direct:?}");
    }
    let (_, _, text) = post(plain, calls[0].clone()).await;
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["id"], json!(7));
    assert_eq!(answer["result"]["structuredContent"]["n"], json!(1), "{text}");
    // Every call that reached a tool is audited: the 3 known-tool calls twice, and once more.
    let rows = support::wait_for_audit(&db, 7).await;
    assert_eq!(rows.iter().filter(|r| r.tool == "execute_sales_query").count(), 7, "{rows:?}");
}
