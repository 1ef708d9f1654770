//! Authentication, authorization, audit and masking with real components: an OIDC issuer served
//! by the test on 127.0.0.1 with keys generated here, the real server router, a real PostgreSQL.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mcp_fleet_core::server_config::{AuthMode, ServerConfigFile};
use serde_json::{Value, json};
use support::issuer::{Issuer, Key};
use support::{
    Opts, Server, Tenant, call, call_raw, client, embedded_db, json as parse, server, tenant, wait_for_audit,
};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("test setup").as_secs() as i64
}

fn oidc_file(issuer: &Issuer) -> ServerConfigFile {
    let mut f = ServerConfigFile::default();
    f.auth.mode = Some(AuthMode::Oidc);
    f.auth.issuer = Some(issuer.url.clone());
    f.auth.leeway = Some("5s".into());
    f.auth.claims.store_scope = Some("stores".into());
    f
}

fn claims(issuer: &Issuer, srv: &Server, t: &Tenant, roles: &[&str]) -> Value {
    json!({
        "iss": issuer.url, "aud": srv.url, "sub": "alice", "tenant": t.name.as_str(),
        "roles": roles, "iat": now(), "nbf": now() - 10, "exp": now() + 600,
    })
}

async fn oidc_server(db: &mcp_fleet_testkit::TestDb, t: &Tenant, issuer: &Issuer) -> Server {
    oidc_server_on(db, t, issuer, mcp_fleet_server::clock::system()).await
}

/// An OIDC server whose key cache reads `clock`.
async fn oidc_server_on(
    db: &mcp_fleet_testkit::TestDb,
    t: &Tenant,
    issuer: &Issuer,
    clock: mcp_fleet_server::clock::SharedClock,
) -> Server {
    server(
        db,
        t,
        Opts {
            file: Some(oidc_file(issuer)),
            jwks: Some(mcp_fleet_server::auth::jwks::JwksOptions {
                min_refresh_interval: Duration::from_millis(500),
                clock,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
}

async fn post_list(srv: &Server, auth: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(&srv.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.expect("test setup")
}

#[tokio::test]
async fn bad_tokens_are_refused_alike_and_good_ones_let_in() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    let other = tenant(&db, &[2]).await;
    let key = Key::generate("k1");
    let issuer = Issuer::start(&[&key]).await;
    let srv = oidc_server(&db, &t, &issuer).await;
    let good = claims(&issuer, &srv, &t, &["analyst"]);

    // No token: 401 pointing at the resource metadata, no error code.
    let resp = post_list(&srv, None).await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"", srv.base)
    );

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        key.sign(&c)
    };
    let stranger = Key::generate("k1");
    let tampered = {
        let token = key.sign(&good);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload: Value = serde_json::from_slice(&B64.decode(&parts[1]).unwrap()).unwrap();
        payload["roles"] = json!(["admin"]);
        parts[1] = B64.encode(payload.to_string());
        parts.join(".")
    };
    let alg_none =
        format!("{}.{}.", B64.encode(r#"{"alg":"none","typ":"JWT"}"#), B64.encode(good.to_string()));
    let hs256_with_public_key = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &good, &jsonwebtoken::EncodingKey::from_secret(&key.public_bytes())).unwrap()
    };
    let unknown_kid = {
        let k = Key::generate("not-published");
        k.sign(&good)
    };
    let bad: Vec<(&str, String)> = vec![
        ("expired", with(&|c| c["exp"] = json!(now() - 3600))),
        ("not yet valid", with(&|c| c["nbf"] = json!(now() + 3600))),
        ("wrong issuer", with(&|c| c["iss"] = json!("https://evil.example.com"))),
        ("wrong audience", with(&|c| c["aud"] = json!("https://other.example.com/mcp"))),
        ("other tenant", with(&|c| c["tenant"] = json!(other.name.as_str()))),
        (
            "no tenant claim",
            with(&|c| {
                c.as_object_mut().unwrap().remove("tenant");
            }),
        ),
        ("alg none", alg_none),
        ("HS256 signed with the public key", hs256_with_public_key),
        ("unknown kid", unknown_kid),
        ("signed by another key with the same kid", stranger.sign(&good)),
        ("tampered payload", tampered),
        ("garbage", "not.a.jwt".into()),
    ];
    let mut bodies = std::collections::BTreeSet::new();
    for (label, token) in &bad {
        let resp = post_list(&srv, Some(&format!("Bearer {token}"))).await;
        assert_eq!(resp.status(), 401, "{label}");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.ends_with(", error=\"invalid_token\""), "{label}: {challenge}");
        bodies.insert(resp.text().await.unwrap());
    }
    let basic = post_list(&srv, Some("Basic YWxpY2U6cHc=")).await;
    assert_eq!(basic.status(), 401);
    bodies.insert(basic.text().await.unwrap());
    assert_eq!(bodies.len(), 1, "every refusal must look the same: {bodies:?}");
    assert!(!bodies.iter().next().unwrap().contains("expired"), "no detail for an attacker");

    // The good token works through a real MCP client.
    let c = client(&srv.url, &[("authorization", &format!("Bearer {}", key.sign(&good)))]).await;
    let (err, text) = call(
        &c,
        "execute_sales_query",
        json!({ "postgresql_query": "SELECT DISTINCT store_id FROM retail.orders" }),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(parse(&text)["r"], json!([[1]]));

    // Protected-resource metadata (RFC 9728).
    let meta: Value = reqwest::get(format!("{}/.well-known/oauth-protected-resource/mcp", srv.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], json!(srv.url));
    assert_eq!(meta["authorization_servers"], json!([issuer.url]));
}

#[tokio::test]
async fn keys_rotate_without_restart_and_random_kids_do_not_hammer_the_issuer() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    let k1 = Key::generate("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let clock = mcp_fleet_server::clock::ManualClock::new();
    let srv = oidc_server_on(&db, &t, &issuer, clock.shared()).await;
    let c = claims(&issuer, &srv, &t, &["readonly"]);
    assert_eq!(post_list(&srv, Some(&format!("Bearer {}", k1.sign(&c)))).await.status(), 200);
    let after_first = issuer.jwks_fetches();
    assert_eq!(after_first, 1);

    // A flood of unknown kids: at most one extra fetch per refresh interval.
    let mut handles = Vec::new();
    for i in 0..40 {
        let token = Key::generate(&format!("random-{i}")).sign(&c);
        let url = srv.url.clone();
        handles.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 401);
    }
    assert!(issuer.jwks_fetches() <= after_first + 1, "fetched {} times", issuer.jwks_fetches());

    // Rotation: the issuer now signs with k2 only; the server picks it up on the unknown kid.
    clock.advance(Duration::from_millis(600));
    let k2 = Key::generate("k2");
    issuer.publish(&[&k2]);
    assert_eq!(post_list(&srv, Some(&format!("Bearer {}", k2.sign(&c)))).await.status(), 200);
}

#[tokio::test]
async fn each_role_sees_exactly_its_tools_and_denials_are_audited() {
    let db = embedded_db().await;
    let t = tenant(&db, &[2, 6]).await;
    let key = Key::generate("k1");
    let issuer = Issuer::start(&[&key]).await;
    let srv = oidc_server(&db, &t, &issuer).await;
    let expected: &[(&[&str], &[&str])] = &[
        (
            &["readonly"],
            &[
                "full_text_search_products",
                "get_current_utc_date",
                "get_multiple_table_schemas",
                "hybrid_search_products",
                "semantic_search_products",
            ],
        ),
        (
            &["analyst"],
            &[
                "execute_sales_query",
                "explain_sales_query",
                "full_text_search_products",
                "get_current_utc_date",
                "get_multiple_table_schemas",
                "hybrid_search_products",
                "semantic_search_products",
            ],
        ),
        (&["intern"], &[]),
    ];
    for (roles, tools) in expected {
        let c = client(
            &srv.url,
            &[("authorization", &format!("Bearer {}", key.sign(&claims(&issuer, &srv, &t, roles))))],
        )
        .await;
        let mut names: Vec<String> =
            c.list_all_tools().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
        names.sort();
        assert_eq!(names, *tools, "roles {roles:?}");
    }
    // A readonly caller asking for SQL gets a distinct MCP error, and the denial is audited.
    let ro = client(
        &srv.url,
        &[("authorization", &format!("Bearer {}", key.sign(&claims(&issuer, &srv, &t, &["readonly"]))))],
    )
    .await;
    let err =
        call_raw(&ro, "execute_sales_query", json!({ "postgresql_query": "SELECT 1" })).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("-32003") || text.contains("may not call"), "{text}");
    let (e, _) = call(&ro, "get_current_utc_date", json!({})).await;
    assert!(!e);
    let rows = wait_for_audit(&db, 2).await;
    assert!(
        rows.iter().any(|r| r.tool == "execute_sales_query"
            && r.outcome == "denied"
            && r.subject == "alice"
            && r.arguments["postgresql_query"] == json!("SELECT 1")),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r.tool == "get_current_utc_date" && r.outcome == "ok"), "{rows:?}");
}

#[tokio::test]
async fn pii_is_masked_unless_the_role_grants_it_and_store_claims_only_narrow() {
    let db = embedded_db().await;
    let t = tenant(&db, &[2, 6]).await;
    let key = Key::generate("k1");
    let issuer = Issuer::start(&[&key]).await;
    let srv = oidc_server(&db, &t, &issuer).await;
    let token = |roles: &[&str], stores: Option<Value>| {
        let mut c = claims(&issuer, &srv, &t, roles);
        if let Some(s) = stores {
            c["stores"] = s;
        }
        format!("Bearer {}", key.sign(&c))
    };
    let q = json!({ "postgresql_query": "SELECT email, phone FROM customers ORDER BY customer_id LIMIT 3" });
    let analyst = client(&srv.url, &[("authorization", &token(&["analyst"], None))]).await;
    let (err, text) = call(&analyst, "execute_sales_query", q.clone()).await;
    assert!(!err, "{text}");
    for row in parse(&text)["r"].as_array().unwrap() {
        assert!(row[0].as_str().unwrap().contains("***@example.com"), "{row}");
        assert!(row[1].as_str().unwrap().contains("***"), "{row}");
    }
    // Neither a whole-row trick nor a subquery reaches the raw columns.
    let raw_email = regex::Regex::new(r"[a-z]+\.[a-z]+[0-9]+@example\.com").unwrap();
    for sql in [
        "SELECT row_to_json(c) AS j FROM retail.customers c LIMIT 3",
        "SELECT upper(x.email) FROM (SELECT email FROM customers) x LIMIT 3",
        "WITH c AS (SELECT * FROM retail.customers) SELECT c.email FROM c LIMIT 3",
    ] {
        let (err, text) = call(&analyst, "execute_sales_query", json!({ "postgresql_query": sql })).await;
        assert!(!raw_email.is_match(&text.to_lowercase()), "{sql}: raw PII leaked: {text}");
        assert!(err || text.to_lowercase().contains("***@example.com"), "{sql}: {text}");
    }
    let manager = client(&srv.url, &[("authorization", &token(&["manager"], None))]).await;
    let (err, text) = call(&manager, "execute_sales_query", q).await;
    assert!(!err, "{text}");
    assert!(!text.contains("***"), "a PII role sees raw values: {text}");

    // A store claim narrows to those stores of the tenant, and never reaches another tenant's.
    let q = json!({ "postgresql_query": "SELECT array_agg(DISTINCT store_id) AS s FROM retail.orders" });
    let redmond = client(&srv.url, &[("authorization", &token(&["analyst"], Some(json!([6]))))]).await;
    assert_eq!(parse(&call(&redmond, "execute_sales_query", q.clone()).await.1)["r"], json!([[[6]]]));
    let foreign = client(&srv.url, &[("authorization", &token(&["analyst"], Some(json!([1, 6]))))]).await;
    assert_eq!(parse(&call(&foreign, "execute_sales_query", q.clone()).await.1)["r"], json!([[[6]]]));
    let nothing = client(&srv.url, &[("authorization", &token(&["analyst"], Some(json!(["1"]))))]).await;
    assert_eq!(parse(&call(&nothing, "execute_sales_query", q).await.1)["r"], json!([[null]]));
}

#[tokio::test]
async fn when_the_audit_trail_cannot_write_no_answer_leaves_and_nothing_is_lost() {
    let db = embedded_db().await;
    let t = tenant(&db, &[3]).await;
    let srv = server(&db, &t, Opts { audit_capacity: Some(4), ..Default::default() }).await;
    let c = client(&srv.url, &[]).await;
    // The audit table refuses the server's writes (as when the database is unreachable).
    sqlx::query("REVOKE INSERT ON audit.tool_calls FROM mcpfleet_tenant").execute(&db.admin).await.unwrap();
    // No answer leaves without its committed record: a call that got a buffer slot ran, but its
    // result is withheld; once the 4 slots are held, calls are refused before they run.
    let (mut withheld, mut refused) = (0, 0);
    for _ in 0..12 {
        match call_raw(&c, "get_current_utc_date", json!({})).await {
            Ok(r) => panic!("an answer left without its audit record: {r:?}"),
            Err(e) if e.to_string().contains("so its result is withheld") => withheld += 1,
            Err(e) => {
                assert!(e.to_string().contains("audit trail cannot record"), "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!((withheld, refused), (4, 8), "4 buffer slots: 4 calls ran, 8 were refused");
    sqlx::query("GRANT INSERT ON audit.tool_calls TO mcpfleet_tenant").execute(&db.admin).await.unwrap();
    let rows = wait_for_audit(&db, withheld).await;
    assert_eq!(rows.len(), withheld, "every call that ran is audited, none that did not");
    let (err, _) = call(&c, "get_current_utc_date", json!({})).await;
    assert!(!err, "calls run again once the audit trail recovers");
}
