//! Fuzz target: the server's other untrusted or hand-written inputs. The same bytes are read as
//! the JSON arguments of every tool (as rmcp hands them over: a JSON object deserialized into the
//! argument struct) and as the YAML configuration file, which then goes through the server's
//! own start-up validation. Nothing may panic; a refusal is an ordinary error. No I/O: the
//! environment and the files the configuration names are closures.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_fleet_core::server_config::ServerConfigFile;
use mcp_fleet_server::config::{ServeArgs, resolve};
use mcp_fleet_sql_guard::{SqlPolicy, validate};
use mcp_fleet_server::mcp::args::{
    FullTextSearchArgs, HybridSearchArgs, SalesQueryArgs, SemanticSearchArgs, TableSchemasArgs,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    tool_arguments(data);
    config_file(data);
});

fn tool_arguments(data: &[u8]) {
    let value = serde_json::from_slice::<Value>(data).ok();
    parse::<TableSchemasArgs>(data, value.as_ref());
    parse::<SemanticSearchArgs>(data, value.as_ref());
    parse::<FullTextSearchArgs>(data, value.as_ref());
    parse::<HybridSearchArgs>(data, value.as_ref());
    if let Some(args) = parse::<SalesQueryArgs>(data, value.as_ref()) {
        // What execute_sales_query does first with its argument.
        let _ = validate(&args.postgresql_query, &SqlPolicy::retail());
    }
}

/// Deserializes straight from the bytes and, as rmcp does, from the parsed JSON value (the two
/// may differ, e.g. on duplicate keys, which the value keeps once).
fn parse<T: DeserializeOwned>(data: &[u8], value: Option<&Value>) -> Option<T> {
    if let Some(value) = value {
        let _ = serde_json::from_value::<T>(value.clone());
    }
    serde_json::from_slice::<T>(data).ok()
}

fn config_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(file) = serde_saphyr::from_str::<ServerConfigFile>(&text) else { return };
    // A password file that exists and one that does not, chosen by the input.
    let files_exist = data.len() % 2 == 0;
    let read = |path: &std::path::Path| {
        if files_exist {
            Ok(format!("secret read from {}\n", path.display()))
        } else {
            Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
        }
    };
    let env = |name: &str| (name == "MCP_FLEET_DATABASE_PASSWORD").then(|| "from-env".to_owned());
    // Once as written, once with the flags a developer would add on the command line.
    let _ = resolve(&ServeArgs::default(), file.clone(), env, read);
    let flags = ServeArgs {
        tenant: Some("seattle".into()),
        database_url: Some("postgres://mcpt_seattle_login@127.0.0.1:5432/zava".into()),
        auth: Some(mcp_fleet_core::server_config::AuthMode::None),
        ..ServeArgs::default()
    };
    let _ = resolve(&flags, file, env, read);
}
