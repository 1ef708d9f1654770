//! Prints the McpTenant CRD as YAML (`make crds` stores it in `crds/`). No I/O beyond stdout.

fn main() {
    print!("{}", mcp_fleet_operator::crd::crd_yaml());
}
