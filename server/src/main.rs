//! The `mcp-fleet-server` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    mcp_fleet_server::cli::main()
}
