//! Logging: JSON (default) or text lines on stderr (stdout belongs to the stdio transport), with
//! every line scrubbed of secrets before it is written — configured secret values, bearer tokens,
//! JWTs, passwords in URLs and `password=`/`api_key=`-style pairs; and the same `tracing` spans
//! exported as OpenTelemetry traces when an OTLP endpoint is configured. Does terminal I/O.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, OnceLock};

use mcp_fleet_core::log_filter;
use mcp_fleet_core::otlp::OtlpTraces;
use regex::{Regex, RegexSet};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;

/// Replaces secrets in log text.
#[derive(Clone, Default)]
pub struct Redactor {
    literals: Arc<Mutex<Vec<String>>>,
}

const PATTERNS: [(&str, &str); 4] = [
    (r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", "***"),
    (r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*", "${1}***"),
    (r"(://[^:/@\s]+:)[^@/\s]+@", "${1}***@"),
    (
        r#"(?i)((?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|account[_-]?key|token|authorization|cookie|sig)\\?"?\s*[:=]\s*\\?"?)[^"\\\s,;&}]+"#,
        "${1}***",
    ),
];

fn patterns() -> &'static [(Regex, &'static str)] {
    static P: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        PATTERNS
            .into_iter()
            .map(|(re, with)| (Regex::new(re).expect("static redaction pattern"), with))
            .collect()
    })
}

/// All the patterns at once: one pass over a line tells whether any of them needs replacing.
fn any_pattern() -> &'static RegexSet {
    static S: OnceLock<RegexSet> = OnceLock::new();
    S.get_or_init(|| RegexSet::new(PATTERNS.map(|(re, _)| re)).expect("static redaction patterns"))
}

impl Redactor {
    /// Adds a literal secret (a password, an API key) to mask wherever it appears.
    pub fn add_secret(&self, secret: &str) {
        if secret.len() >= 4
            && let Ok(mut l) = self.literals.lock()
        {
            l.push(secret.to_owned());
        }
    }

    /// `text` with every secret masked; borrowed as it is when it holds none (nearly every line).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        if let Ok(lits) = self.literals.lock() {
            for s in lits.iter() {
                if out.contains(s.as_str()) {
                    out = Cow::Owned(out.replace(s.as_str(), "***"));
                }
            }
        }
        if any_pattern().is_match(&out) {
            for (re, with) in patterns() {
                if let Cow::Owned(replaced) = re.replace_all(&out, *with) {
                    out = Cow::Owned(replaced);
                }
            }
        }
        out
    }
}

/// A `MakeWriter` that scrubs every formatted line before passing it on.
#[derive(Clone)]
pub struct RedactingWriter<W> {
    redactor: Redactor,
    inner: W,
}

impl<W> RedactingWriter<W> {
    pub fn new(redactor: Redactor, inner: W) -> Self {
        Self { redactor, inner }
    }
}

pub struct LineGuard<W: Write> {
    buf: Vec<u8>,
    redactor: Redactor,
    out: W,
}

impl<W: Write> Write for LineGuard<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for LineGuard<W> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let _ = self.out.write_all(self.redactor.redact(&text).as_bytes());
        let _ = self.out.flush();
    }
}

impl<'a, W> MakeWriter<'a> for RedactingWriter<W>
where
    W: MakeWriter<'a>,
{
    type Writer = LineGuard<W::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        LineGuard {
            buf: Vec::with_capacity(256),
            redactor: self.redactor.clone(),
            out: self.inner.make_writer(),
        }
    }
}

/// The default filter: the configured level, with rmcp's per-request INFO lines turned down.
pub fn filter(level: &str) -> EnvFilter {
    let directive = if level.contains("rmcp") { level.to_owned() } else { format!("{level},rmcp=warn") };
    log_filter::parse(&directive).unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"))
}

/// Installs the global subscriber (once; later calls are ignored, which suits tests): log lines
/// at `level`, and, with `traces`, the spans (and the log lines inside them) sent over OTLP.
pub fn init(format: LogFormat, level: &str, redactor: Redactor, traces: Option<&OtlpTraces>) {
    let writer = RedactingWriter::new(redactor, io::stderr);
    let lines = tracing_subscriber::fmt::layer().with_writer(writer).with_target(true);
    let lines = match format {
        LogFormat::Json => lines.json().flatten_event(true).with_current_span(false).boxed(),
        LogFormat::Text => lines.with_ansi(false).boxed(),
    };
    let mut layers = vec![lines.with_filter(filter(level)).boxed()];
    layers.extend(traces.map(OtlpTraces::layer));
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_secrets_never_survive() {
        let r = Redactor::default();
        r.add_secret("Sup3r-Secret-DB-pw");
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
        let line = format!(
            "connecting postgres://app:Sup3r-Secret-DB-pw@db/zava with Authorization: Bearer {jwt} \
             api_key=sk-abc123 {{\"password\":\"hunter2\"}} token={jwt} cookie=session=xyz"
        );
        let out = r.redact(&line);
        for secret in ["Sup3r-Secret-DB-pw", jwt, "sk-abc123", "hunter2", "session=xyz"] {
            assert!(!out.contains(secret), "{secret} leaked in {out}");
        }
        assert!(out.contains("postgres://app:***@db/zava"), "{out}");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let r = Redactor::default();
        let line = "tool call tool=execute_sales_query tenant=seattle rows=20 ms=3";
        assert_eq!(r.redact(line), line);
    }
}
