//! Log filters such as `info` or `warn,mcp_fleet_server=debug`, read the one way that the
//! configuration check, the server and the operator share.
//!
//! tracing-subscriber 0.3.23 walks each directive trimmed but slices it untrimmed, so a directive
//! with surrounding whitespace and a multi-byte character (` [é]`) panics instead of being
//! refused; the `tool_args` fuzz target found it through `logging.level`, and an McpTenant's
//! `spec.server.logLevel` reaches the same check in the operator. Each directive is trimmed here
//! first, as the parser means to do, so its indices and its slices agree.
//!
//! Field values are matched as written, never as regular expressions: tracing-subscriber builds
//! a full DFA for a value such as `[{x=/.*��.........}]`, which the fuzzer found taking over a
//! minute (its documentation asks for regexes off on untrusted input; these filters come from
//! config files and McpTenants).

use std::fmt;

use tracing_subscriber::EnvFilter;

/// Parses comma-separated filter directives; whitespace around each one is ignored.
pub fn parse(directives: &str) -> Result<EnvFilter, InvalidLogFilter> {
    let trimmed: Vec<&str> = directives.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    EnvFilter::builder()
        .with_regex(false)
        .parse(trimmed.join(","))
        .map_err(|_| InvalidLogFilter(directives.to_owned()))
}

/// A filter that [`parse`] refuses; its message names the input and gives examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLogFilter(String);

impl fmt::Display for InvalidLogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a valid log filter such as `info` or `warn,mcp_fleet_server=debug`", self.0)
    }
}

impl std::error::Error for InvalidLogFilter {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_around_a_directive_means_the_same_filter_and_never_panics() {
        // ` [é]` made tracing-subscriber slice inside `é` (a panic); `info, [é]=debug` likewise.
        for (spaced, tight) in [
            (" [é]", "[é]"),
            ("info, [é]=debug", "info,[é]=debug"),
            ("\twarn ,\u{a0}mcp_fleet_server=debug ", "warn,mcp_fleet_server=debug"),
        ] {
            let spaced = parse(spaced).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(spaced.to_string(), parse(tight).unwrap().to_string());
        }
    }

    #[test]
    fn a_field_value_is_matched_as_written_not_compiled_as_a_regex() {
        // The fuzzer's value: as a regex, its DFA took over a minute to build (release build).
        let value = format!("/.*{}{}{}/", "\u{FFFD}".repeat(2), ".".repeat(51), "\u{FFFD}".repeat(121));
        let filter = parse(&format!("info,[{{x={value}}}]=trace")).unwrap_or_else(|e| panic!("{e}"));
        assert!(filter.to_string().contains(&value), "{filter}");
        // Not a regex at all: refused as one, accepted as the text to match.
        let filter = parse("[{x=(}]=trace").unwrap_or_else(|e| panic!("{e}"));
        assert!(filter.to_string().contains("x=("), "{filter}");
    }

    #[test]
    fn a_bad_directive_is_refused_with_the_input_named() {
        for bad in [" [é]{}", "info,mcp_fleet_server=loud", "ü=debug=info"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().starts_with(&format!("{bad:?} is not a valid log filter")), "{err}");
        }
    }
}
