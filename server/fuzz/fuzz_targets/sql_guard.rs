//! Fuzz target: model-written SQL through the validator (`sql_guard::validate`). It must never
//! panic or overflow a worker-sized stack, and whatever it accepts must be one read-only query
//! over the allow-listed tables that validates to itself. The accepted SQL is checked again here
//! with a separate, simpler walk of sqlparser's syntax tree, so a mistake in the validator's own
//! walk shows up as a crash. Pure code, no I/O.
#![no_main]

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use mcp_fleet_sql_guard::{SqlPolicy, ValidatedSql, validate};
use sqlparser::ast::{Expr, Ident, ObjectName, ObjectNamePart, Query, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// The validator runs on a tokio worker (2 MiB stack) in the server; it must fit in half of
/// that, as its own unit test demands. libFuzzer's main thread has 8 MiB, so the checks run on
/// a dedicated thread with this stack. A panic there aborts the process (libfuzzer-sys installs
/// an aborting panic hook), which libFuzzer reports as a crash, as it does a stack overflow.
const STACK_BYTES: usize = 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data).into_owned();
    on_small_stack(sql);
});

struct Worker {
    inputs: SyncSender<String>,
    done: Receiver<()>,
}

fn on_small_stack(sql: String) {
    static WORKER: OnceLock<Mutex<Worker>> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (inputs, queue) = sync_channel::<String>(0);
        let (finished, done) = sync_channel::<()>(0);
        std::thread::Builder::new()
            .name("sql_guard".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                for sql in queue {
                    check(&sql);
                    if finished.send(()).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn the checking thread");
        Mutex::new(Worker { inputs, done })
    });
    let worker = worker.lock().expect("one input at a time");
    worker.inputs.send(sql).expect("the checking thread is alive");
    worker.done.recv().expect("the checking thread finished the input");
}

fn policy() -> &'static SqlPolicy {
    static POLICY: OnceLock<SqlPolicy> = OnceLock::new();
    POLICY.get_or_init(SqlPolicy::retail)
}

fn check(sql: &str) {
    let Ok(validated) = validate(sql, policy()) else { return };

    // What runs validates to itself: same text, same tables.
    let again = validate(&validated.sql, policy());
    assert_eq!(again.as_ref(), Ok(&validated), "the SQL to run does not validate to itself; input {sql:?}");

    let allowed: BTreeSet<String> = policy().qualified_tables().collect();
    assert!(
        validated.tables.is_subset(&allowed),
        "tables outside the allow-list: {:?}; input {sql:?}",
        validated.tables
    );

    assert_plain_tokens(&validated.sql, sql);
    assert_one_read_only_query(&validated, sql);
}

/// The text that runs has no statement separator, comment, placeholder or dollar quote left:
/// nothing whose lexing could differ between sqlparser and PostgreSQL.
fn assert_plain_tokens(rendered: &str, input: &str) {
    assert!(!rendered.contains('\0'), "NUL in the SQL to run; input {input:?}");
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, rendered)
        .tokenize()
        .unwrap_or_else(|e| panic!("the SQL to run does not tokenize ({e}): {rendered:?}; input {input:?}"));
    for token in &tokens {
        let unexpected = matches!(
            token,
            Token::SemiColon
                | Token::Placeholder(_)
                | Token::DollarQuotedString(_)
                | Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_))
        );
        assert!(!unexpected, "{token:?} in the SQL to run: {rendered:?}; input {input:?}");
    }
}

/// One statement, a query, with no statement nested in it, no row locks or INTO, whose tables
/// are `retail.<allowed>` or names of CTEs it defines, and which calls none of a short list of
/// functions that act outside the query.
fn assert_one_read_only_query(validated: &ValidatedSql, input: &str) {
    let rendered = &validated.sql;
    let statements = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(rendered)
        .and_then(|mut parser| parser.parse_statements())
        .unwrap_or_else(|e| panic!("the SQL to run does not parse ({e}): {rendered:?}; input {input:?}"));
    let [statement @ Statement::Query(_)] = statements.as_slice() else {
        panic!("not exactly one query: {rendered:?}; input {input:?}");
    };

    let mut walk = Walk::default();
    if let ControlFlow::Break(problem) = statement.visit(&mut walk) {
        panic!("{problem}: {rendered:?}; input {input:?}");
    }
    for table in &walk.tables {
        let readable = match table.as_slice() {
            [schema, name] if schema == "retail" => validated.tables.contains(&format!("retail.{name}")),
            [name] => walk.ctes.contains(name),
            _ => false,
        };
        assert!(readable, "reads {table:?}, reported tables {:?}: {rendered:?}; input {input:?}", validated.tables);
    }
}

/// Functions that act outside the query (wait, write files, signal backends, take session locks,
/// change settings, open connections). The validator's deny-list is longer; these are the ones
/// whose escape would matter most, listed here independently of it.
const NEVER_CALLED: &[&str] = &[
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "pg_notify",
    "set_config",
    "current_setting",
    "nextval",
    "setval",
    "lo_import",
    "lo_export",
    "dblink",
    "dblink_exec",
    "query_to_xml",
    "table_to_xml",
];

#[derive(Default)]
struct Walk {
    statements: usize,
    /// Every table read, as folded name parts.
    tables: Vec<Vec<String>>,
    /// Every CTE name defined anywhere in the statement, folded.
    ctes: BTreeSet<String>,
}

impl Visitor for Walk {
    type Break = String;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<String> {
        self.statements += 1;
        if self.statements > 1 || !matches!(statement, Statement::Query(_)) {
            return ControlFlow::Break(format!("a nested or non-query statement `{statement}`"));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        if !query.locks.is_empty() {
            return ControlFlow::Break("a row-locking clause".into());
        }
        for cte in query.with.iter().flat_map(|with| &with.cte_tables) {
            self.ctes.insert(fold(&cte.alias.name));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &sqlparser::ast::Select) -> ControlFlow<String> {
        if select.into.is_some() {
            return ControlFlow::Break("SELECT ... INTO".into());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        match factor {
            TableFactor::Table { name, args: None, .. } => match parts(name) {
                Some(parts) => self.tables.push(parts),
                None => return ControlFlow::Break(format!("a computed table name `{name}`")),
            },
            TableFactor::Table { name, args: Some(_), .. } | TableFactor::Function { name, .. } => {
                called(name)?
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        match expr {
            Expr::Function(function) => called(&function.name),
            _ => ControlFlow::Continue(()),
        }
    }
}

fn called(name: &ObjectName) -> ControlFlow<String> {
    let last = parts(name).and_then(|parts| parts.last().cloned()).unwrap_or_default();
    if NEVER_CALLED.contains(&last.to_ascii_lowercase().as_str()) {
        return ControlFlow::Break(format!("a call of `{name}`"));
    }
    ControlFlow::Continue(())
}

fn parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(fold(ident)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

/// PostgreSQL's spelling of an identifier: unquoted names fold to lower case.
fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_ascii_lowercase() }
}
