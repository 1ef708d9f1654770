//! Validation of model-written SQL before it reaches PostgreSQL: the first layer of query
//! safety. Parses with sqlparser (PostgreSQL dialect) and accepts exactly one read-only
//! SELECT over allow-listed tables, without dangerous functions. Pure code, no I/O: this crate
//! depends on sqlparser alone, so its fuzz target builds nothing else.
//!
//! The layer stands on its own: it does not count on the read-only transaction, the tenant
//! role, row-level security or the search path that the executor adds.
//!
//! What runs is not the text the model sent but [`ValidatedSql::sql`], the statement rendered
//! back from the checked syntax tree (comments dropped, dollar quotes turned into plain
//! strings, unqualified tables qualified with the allowed schema), after checking that parsing
//! that text again gives the same rendering and passes the same checks. So what PostgreSQL
//! executes is what was checked, and comment or quoting tricks that parse one way here and
//! another way in PostgreSQL do not survive.

mod checker;
mod functions;
mod policy;
mod rejection;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, Statement, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

pub use policy::SqlPolicy;
pub use rejection::SqlRejection;

/// The longest query accepted, in bytes (UTF-8).
pub const MAX_SQL_BYTES: usize = 16 * 1024;

/// How deep sqlparser may recurse (nested parentheses, subqueries, function calls) before it
/// gives up. sqlparser's own default; it also keeps the syntax tree shallow enough for the
/// checks that walk it. A realistic analytics query needs less than half of it.
const PARSER_RECURSION_LIMIT: usize = 50;

/// A query that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedSql {
    /// The statement to execute: rendered from the checked syntax tree, one statement without
    /// a trailing semicolon (so it can be wrapped, e.g. for a row cap), tables qualified with
    /// the schema. Can be longer than the input (rendering adds spaces). Assumes
    /// `standard_conforming_strings = on`, PostgreSQL's default.
    pub sql: String,
    /// The allowed tables the query reads, schema-qualified (`retail.orders`); CTE names are
    /// not included.
    pub tables: BTreeSet<String>,
}

/// Checks one model-written query against `policy`.
///
/// Never panics, whatever the input; a rejection says what to fix.
pub fn validate(sql: &str, policy: &SqlPolicy) -> Result<ValidatedSql, SqlRejection> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(SqlRejection::TooLong { len: sql.len(), max: MAX_SQL_BYTES });
    }
    if sql.contains('\0') {
        return Err(SqlRejection::InvalidCharacter);
    }
    if sql.trim().is_empty() {
        return Err(SqlRejection::Empty);
    }

    let mut statement = parse_one_statement(sql)?;
    // Checked first as written, so that messages point at what the model wrote.
    let checked = checker::check_statement(&statement, policy)?;

    let _ = statement.visit(&mut CanonicalForm {
        schema: policy.schema(),
        unqualified_tables: &checked.unqualified_tables,
    });
    let canonical = statement.to_string();
    drop(statement);
    if canonical.contains('\0') {
        return Err(SqlRejection::InvalidCharacter);
    }
    let reparsed = parse_one_statement(&canonical).map_err(|_| SqlRejection::NotReproducible)?;
    if reparsed.to_string() != canonical {
        return Err(SqlRejection::NotReproducible);
    }
    // And checked again as it will run.
    let tables = checker::check_statement(&reparsed, policy)?.tables;
    Ok(ValidatedSql { sql: canonical, tables })
}

/// Tokenizes and parses `sql`, which must hold exactly one statement.
fn parse_one_statement(sql: &str) -> Result<Statement, SqlRejection> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|error| parse_rejection(&error.to_string()))?;
    if has_statement_after_semicolon(&tokens) {
        return Err(SqlRejection::MultipleStatements);
    }
    let mut statements = Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|error| match error {
            ParserError::RecursionLimitExceeded => SqlRejection::TooDeep,
            ParserError::TokenizerError(message) | ParserError::ParserError(message) => {
                parse_rejection(&message)
            }
        })?;
    match statements.len() {
        0 => Err(SqlRejection::Empty),
        1 => statements.pop().ok_or(SqlRejection::Empty),
        _ => Err(SqlRejection::MultipleStatements),
    }
}

/// True when anything but whitespace, comments or more semicolons follows a `;`.
fn has_statement_after_semicolon(tokens: &[TokenWithSpan]) -> bool {
    tokens
        .iter()
        .map(|token| &token.token)
        .skip_while(|token| !matches!(token, Token::SemiColon))
        .any(|token| !matches!(token, Token::SemiColon | Token::Whitespace(_) | Token::EOF))
}

/// sqlparser's message ("Expected: ..., found: ... at Line: 1, Column: 10"), clipped.
fn parse_rejection(message: &str) -> SqlRejection {
    let message = message.strip_prefix("sql parser error: ").unwrap_or(message);
    SqlRejection::Parse { message: rejection::clip(message, 300) }
}

/// Rewrites a checked statement into the form that runs:
/// - `$tag$...$tag$` strings become `'...'`: the same string constant for PostgreSQL, and no
///   dollar-quote delimiters left whose lexing could differ between sqlparser and PostgreSQL;
/// - strings that sqlparser would print wrongly as `'...'` become `E'...'` (same value);
/// - table names written without a schema get the policy's schema, so the tables that run are
///   the ones checked, whatever the session's `search_path`.
struct CanonicalForm<'a> {
    schema: &'a str,
    /// From [`checker::CheckedStatement`]: the unqualified names that resolved to tables.
    unqualified_tables: &'a [*const ObjectName],
}

impl VisitorMut for CanonicalForm<'_> {
    type Break = ();

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        let text = match &mut value.value {
            Value::DollarQuotedString(dollar) => std::mem::take(&mut dollar.value),
            Value::SingleQuotedString(text) if misprinted_as_plain_string(text) => std::mem::take(text),
            _ => return ControlFlow::Continue(()),
        };
        value.value = if misprinted_as_plain_string(&text) {
            Value::EscapedStringLiteral(text)
        } else {
            Value::SingleQuotedString(text)
        };
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        let address: *const ObjectName = relation;
        if self.unqualified_tables.iter().any(|table| std::ptr::eq(*table, address)) {
            relation.0.insert(0, ObjectNamePart::Identifier(Ident::new(self.schema)));
        }
        ControlFlow::Continue(())
    }
}

/// sqlparser prints a `'...'` literal by doubling each quote, except a quote after a backslash
/// or next to another quote, which it prints as is. For a value holding `\'` that ends the
/// literal early (PostgreSQL reads `'\'` as a whole string); for one holding `''` it changes
/// the value. `E'...'` literals escape every quote and backslash, so those go that way.
fn misprinted_as_plain_string(text: &str) -> bool {
    text.contains("\\'") || text.contains("''")
}
