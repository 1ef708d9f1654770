//! The reference sample's client configuration (`examples/zava-sample-mcp.json`, its
//! `.vscode/mcp.json` as written: four servers at one URL, each with one `x-rls-user-id`) against
//! a server in `--auth none` development mode on the seeded data: each header narrows to the store
//! it names, the head-office UUID to the tenant's whole set and never wider.

mod support;

use serde_json::{Value, json};
use support::{Opts, call, client, embedded_db, json as parse, server, tenant};

/// One server of the sample's config: its name, URL and headers.
type SampleServer = (String, String, Vec<(String, String)>);

/// The sample's servers, as its config file has them.
fn sample_servers() -> Vec<SampleServer> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/zava-sample-mcp.json");
    let text = std::fs::read_to_string(path).expect("examples/zava-sample-mcp.json");
    let config: Value = serde_json::from_str(&text).expect("the sample's config is JSON");
    let text_of = |v: &Value| v.as_str().expect("a string in the sample's config").to_owned();
    let servers = config["servers"].as_object().expect("a `servers` object");
    servers
        .iter()
        .map(|(name, s)| {
            let headers = s["headers"].as_object().expect("a `headers` object");
            let headers = headers.iter().map(|(k, v)| (k.clone(), text_of(v))).collect();
            (name.clone(), text_of(&s["url"]), headers)
        })
        .collect()
}

/// The store names whose orders `headers` let a client see, or the error it gets.
async fn stores_seen(url: &str, headers: &[(String, String)]) -> Result<Vec<String>, String> {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let c = client(url, &headers).await;
    let sql = "SELECT s.store_name, count(*) AS orders FROM retail.orders o
               JOIN retail.stores s ON s.store_id = o.store_id GROUP BY s.store_name ORDER BY 1";
    let (err, text) = call(&c, "execute_sales_query", json!({ "postgresql_query": sql })).await;
    if err {
        return Err(text);
    }
    let rows = parse(&text)["r"].as_array().cloned().expect("rows in the result");
    Ok(rows.iter().map(|r| r[0].as_str().expect("a store name").to_owned()).collect())
}

#[tokio::test]
async fn the_samples_client_config_narrows_each_server_to_the_store_it_names() {
    let db = embedded_db().await;
    let every_store = tenant(&db, &[1, 2, 3, 4, 5, 6, 7, 8]).await;
    let srv = server(&db, &every_store, Opts::default()).await;
    let port = srv.url.rsplit_once(':').unwrap().1.trim_end_matches("/mcp").to_owned();
    let expected: &[(&str, &[&str])] = &[
        (
            "zava-sales-analysis-headoffice",
            &[
                "Zava Retail Bellevue",
                "Zava Retail Everett",
                "Zava Retail Kirkland",
                "Zava Retail Online",
                "Zava Retail Redmond",
                "Zava Retail Seattle",
                "Zava Retail Spokane",
                "Zava Retail Tacoma",
            ],
        ),
        ("zava-sales-analysis-seattle", &["Zava Retail Seattle"]),
        ("zava-sales-analysis-redmond", &["Zava Retail Redmond"]),
        ("zava-sales-analysis-online", &["Zava Retail Online"]),
    ];
    let servers = sample_servers();
    assert_eq!(servers.len(), expected.len());
    for (name, url, headers) in &servers {
        // As written, apart from the port this test's server listens on.
        assert_eq!(url, "http://127.0.0.1:8000/mcp");
        let url = url.replace(":8000/", &format!(":{port}/"));
        let want = expected.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name}")).1;
        assert_eq!(stores_seen(&url, headers).await.unwrap(), want, "{name}");
    }

    // The README's other stores narrow the same way.
    let c = client(&srv.url, &[("x-rls-user-id", "9c8b7a65-4321-fed0-9876-543210fedcba")]).await;
    let (_, text) = call(
        &c,
        "execute_sales_query",
        json!({ "postgresql_query": "SELECT DISTINCT store_id FROM retail.orders" }),
    )
    .await;
    assert_eq!(parse(&text)["r"], json!([[7]]), "Kirkland is store 7");
}

#[tokio::test]
async fn the_head_office_uuid_is_the_tenants_whole_set_never_wider() {
    let db = embedded_db().await;
    let west = tenant(&db, &[1, 6]).await;
    let srv = server(&db, &west, Opts::default()).await;
    let port = srv.url.rsplit_once(':').unwrap().1.trim_end_matches("/mcp").to_owned();
    for (name, url, headers) in sample_servers() {
        let url = url.replace(":8000/", &format!(":{port}/"));
        let seen = stores_seen(&url, &headers).await;
        match name.as_str() {
            "zava-sales-analysis-headoffice" => {
                assert_eq!(seen.unwrap(), ["Zava Retail Redmond", "Zava Retail Seattle"])
            }
            "zava-sales-analysis-seattle" => assert_eq!(seen.unwrap(), ["Zava Retail Seattle"]),
            "zava-sales-analysis-redmond" => assert_eq!(seen.unwrap(), ["Zava Retail Redmond"]),
            // A store of another tenant is refused, not shown.
            _ => assert!(seen.unwrap_err().contains("does not identify one of tenant"), "{name}"),
        }
    }
}
