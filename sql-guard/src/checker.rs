//! The policy walk over one parsed statement: sqlparser's `Visitor` visits every query,
//! SELECT, table factor, relation, expression and literal, and each hook allows only the
//! constructs it knows to be read-only. Unknown expression and table-factor kinds are refused,
//! so syntax sqlparser learns later is refused until someone reviews it. Pure code, no I/O.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, BinaryOperator, Expr, FunctionArguments, Ident, InTarget, LimitClause, ObjectName,
    ObjectNamePart, Query, Select, SelectFlavor, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    Statement, TableFactor, Value, ValueWithSpan, Visit, Visitor,
};

use super::functions::{check_custom_operator, check_data_type, check_function_name, denied_function};
use super::policy::{Resolved, SqlPolicy, fold};
use super::rejection::{SqlRejection, clip};

/// What the policy walk found in an accepted statement.
pub(super) struct CheckedStatement {
    /// The allowed tables read, schema-qualified (`retail.orders`); CTE names excluded.
    pub(super) tables: BTreeSet<String>,
    /// Table names written without a schema that resolved to an allowed table (not to a CTE),
    /// by address in the checked tree, so the caller can qualify them in place.
    pub(super) unqualified_tables: Vec<*const ObjectName>,
}

/// Checks one statement against the policy.
pub(super) fn check_statement(
    statement: &Statement,
    policy: &SqlPolicy,
) -> Result<CheckedStatement, SqlRejection> {
    let mut checker = PolicyChecker {
        policy,
        statement_depth: 0,
        scopes: Vec::new(),
        approved_relations: Vec::new(),
        checked: CheckedStatement { tables: BTreeSet::new(), unqualified_tables: Vec::new() },
    };
    match statement.visit(&mut checker) {
        ControlFlow::Continue(()) => Ok(checker.checked),
        ControlFlow::Break(rejection) => Err(*rejection),
    }
}

/// The CTE names one query defines, and which of them are visible right now.
struct CteScope {
    names: Vec<String>,
    /// The CTE bodies, to recognise them when the visitor enters one (compared by address).
    bodies: Vec<*const Query>,
    recursive: bool,
    /// How many of `names` are visible: all of them in the query body; inside the body of the
    /// i-th CTE only the first i (PostgreSQL's rule without RECURSIVE), or all with RECURSIVE.
    visible: usize,
}

struct PolicyChecker<'p> {
    policy: &'p SqlPolicy,
    statement_depth: usize,
    /// One entry per query being visited, innermost last.
    scopes: Vec<CteScope>,
    /// Table names approved by `pre_visit_table_factor`; any other relation the visitor
    /// reports is a construct this checker does not know, and is refused.
    approved_relations: Vec<*const ObjectName>,
    checked: CheckedStatement,
}

type Step = ControlFlow<Box<SqlRejection>>;

fn refuse(rejection: SqlRejection) -> Step {
    ControlFlow::Break(Box::new(rejection))
}

fn check(result: Result<(), SqlRejection>) -> Step {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(rejection) => refuse(rejection),
    }
}

fn unsupported(feature: &'static str, hint: &'static str) -> Step {
    refuse(SqlRejection::Unsupported { feature, hint })
}

impl PolicyChecker<'_> {
    fn cte_visible(&self, folded: &str) -> bool {
        self.scopes.iter().any(|scope| scope.names[..scope.visible].iter().any(|n| n == folded))
    }

    fn check_relation(&mut self, name: &ObjectName) -> Step {
        let resolved = self.policy.resolve_table(name, |folded| self.cte_visible(folded));
        match resolved {
            Ok(Resolved::Table(table)) => {
                self.checked.tables.insert(table);
                if name.0.len() == 1 {
                    self.checked.unqualified_tables.push(name);
                }
            }
            Ok(Resolved::Cte) => {}
            Err(rejection) => return refuse(rejection),
        }
        self.approved_relations.push(name);
        ControlFlow::Continue(())
    }
}

impl Visitor for PolicyChecker<'_> {
    type Break = Box<SqlRejection>;

    fn pre_visit_statement(&mut self, statement: &Statement) -> Step {
        self.statement_depth += 1;
        if self.statement_depth > 1 {
            // Statements nested in a query are INSERT/UPDATE/DELETE/MERGE bodies.
            return refuse(SqlRejection::DataModifying { statement: "a data-modifying statement" });
        }
        match statement {
            Statement::Query(_) => ControlFlow::Continue(()),
            other => refuse(SqlRejection::NotSelect { statement: statement_keyword(other) }),
        }
    }

    fn post_visit_statement(&mut self, _statement: &Statement) -> Step {
        self.statement_depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> Step {
        check_query_clauses(query)?;
        check_set_expr_kinds(&query.body)?;

        // Entering the body of the i-th CTE of the enclosing query: narrow what it can see.
        if let Some(parent) = self.scopes.last_mut()
            && let Some(index) = parent.bodies.iter().position(|body| std::ptr::eq(*body, query))
        {
            parent.visible = if parent.recursive { parent.names.len() } else { index };
        }

        let mut scope = CteScope { names: Vec::new(), bodies: Vec::new(), recursive: false, visible: 0 };
        if let Some(with) = &query.with {
            scope.recursive = with.recursive;
            for cte in &with.cte_tables {
                scope.names.push(fold(&cte.alias.name));
                scope.bodies.push(&*cte.query);
                if cte.from.is_some() {
                    return unsupported(
                        "a FROM clause after a CTE",
                        "write the CTE as WITH name AS (SELECT ...)",
                    );
                }
            }
            scope.visible = scope.names.len();
        }
        self.scopes.push(scope);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> Step {
        self.scopes.pop();
        if let Some(parent) = self.scopes.last_mut()
            && parent.bodies.iter().any(|body| std::ptr::eq(*body, query))
        {
            parent.visible = parent.names.len();
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> Step {
        check_select_clauses(select)?;
        select.projection.iter().try_for_each(check_select_item)
    }

    fn pre_visit_table_factor(&mut self, table_factor: &TableFactor) -> Step {
        match table_factor {
            TableFactor::Table {
                name,
                args,
                with_hints,
                version,
                partitions,
                json_path,
                sample,
                index_directives,
                ..
            } => {
                if sample.is_some() {
                    return unsupported("TABLESAMPLE", "sample with ORDER BY random() LIMIT n instead");
                }
                if !with_hints.is_empty()
                    || version.is_some()
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || !index_directives.is_empty()
                {
                    return unsupported(
                        "this table option",
                        "write the table name with an optional alias only",
                    );
                }
                if args.is_some() {
                    // A set-returning function in FROM, e.g. generate_series(...).
                    check(check_function_name(name))?;
                    self.approved_relations.push(name);
                    return ControlFlow::Continue(());
                }
                self.check_relation(name)
            }
            TableFactor::Derived { sample, .. } => {
                if sample.is_some() {
                    return unsupported("TABLESAMPLE", "sample with ORDER BY random() LIMIT n instead");
                }
                ControlFlow::Continue(())
            }
            TableFactor::Function { name, .. } => check(check_function_name(name)),
            TableFactor::UNNEST { with_offset, .. } => {
                if *with_offset {
                    return unsupported("UNNEST ... WITH OFFSET", "use WITH ORDINALITY");
                }
                ControlFlow::Continue(())
            }
            TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            TableFactor::XmlTable { .. } | TableFactor::JsonTable { .. } => {
                unsupported("XMLTABLE / JSON_TABLE", "query the retail tables with ordinary SELECTs")
            }
            _ => unsupported(
                "this kind of FROM item",
                "use tables, subqueries, joins and set-returning functions such as \
                 generate_series or unnest",
            ),
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> Step {
        if self.approved_relations.iter().any(|approved| std::ptr::eq(*approved, relation)) {
            ControlFlow::Continue(())
        } else {
            unsupported("a table reference in this position", "read tables only in FROM and JOIN clauses")
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> Step {
        check_expr(expr)
    }

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> Step {
        check_value(&value.value)
    }
}

/// The first keyword of a statement, for "a DELETE statement is not allowed".
fn statement_keyword(statement: &Statement) -> String {
    let text = statement.to_string();
    let keyword = text.split_whitespace().next().unwrap_or("non-SELECT");
    clip(&keyword.to_ascii_uppercase(), 24)
}

fn check_query_clauses(query: &Query) -> Step {
    if !query.locks.is_empty() {
        return refuse(SqlRejection::LockingClause);
    }
    if query.for_clause.is_some()
        || query.settings.is_some()
        || query.format_clause.is_some()
        || !query.pipe_operators.is_empty()
    {
        return unsupported("this query clause", "use PostgreSQL's SELECT, WITH, ORDER BY, LIMIT and OFFSET");
    }
    match &query.limit_clause {
        Some(LimitClause::LimitOffset { limit_by, .. }) if !limit_by.is_empty() => {
            unsupported("LIMIT BY", "use a window function such as row_number()")
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => {
            unsupported("LIMIT offset, count", "write LIMIT count OFFSET offset")
        }
        _ => ControlFlow::Continue(()),
    }
}

/// Refuses data-modifying and `TABLE name` set-expression kinds anywhere in a query body's
/// set-operation tree (iterative: a long UNION chain is a deep tree).
fn check_set_expr_kinds(body: &SetExpr) -> Step {
    let mut pending = vec![body];
    while let Some(set_expr) = pending.pop() {
        match set_expr {
            SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::Values(_) => {}
            SetExpr::SetOperation { left, right, .. } => {
                pending.push(left);
                pending.push(right);
            }
            SetExpr::Insert(_) => {
                return refuse(SqlRejection::DataModifying { statement: "INSERT" });
            }
            SetExpr::Update(_) => {
                return refuse(SqlRejection::DataModifying { statement: "UPDATE" });
            }
            SetExpr::Delete(_) => {
                return refuse(SqlRejection::DataModifying { statement: "DELETE" });
            }
            SetExpr::Merge(_) => {
                return refuse(SqlRejection::DataModifying { statement: "MERGE" });
            }
            SetExpr::Table(_) => {
                return unsupported("the TABLE name shorthand", "write SELECT * FROM name");
            }
        }
    }
    ControlFlow::Continue(())
}

fn check_select_clauses(select: &Select) -> Step {
    if select.into.is_some() {
        return refuse(SqlRejection::SelectInto);
    }
    if select.top.is_some() {
        return unsupported("TOP", "use LIMIT n at the end of the query");
    }
    if !select.optimizer_hints.is_empty()
        || select.select_modifiers.is_some()
        || select.exclude.is_some()
        || !select.lateral_views.is_empty()
        || select.prewhere.is_some()
        || !select.connect_by.is_empty()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || select.qualify.is_some()
        || select.value_table_mode.is_some()
        || select.flavor != SelectFlavor::Standard
    {
        return unsupported(
            "this SELECT clause",
            "use PostgreSQL's SELECT ... FROM ... WHERE ... GROUP BY ... HAVING ... WINDOW",
        );
    }
    ControlFlow::Continue(())
}

/// `t.*` and `s.t.*` name no relation the visitor reports, so their parts are checked here.
fn check_select_item(item: &SelectItem) -> Step {
    match item {
        SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _) => {
            check_object_name_parts(name)
        }
        _ => ControlFlow::Continue(()),
    }
}

fn check_object_name_parts(name: &ObjectName) -> Step {
    name.0.iter().filter_map(ObjectNamePart::as_ident).try_for_each(check_placeholder_name)
}

fn check_expr(expr: &Expr) -> Step {
    match expr {
        Expr::Function(function) => {
            check(check_function_name(&function.name))?;
            if function.uses_odbc_syntax || !matches!(function.parameters, FunctionArguments::None) {
                return unsupported("this function-call syntax", "call functions as name(args)");
            }
            ControlFlow::Continue(())
        }
        Expr::Cast { data_type, .. } => check(check_data_type(data_type)),
        Expr::TypedString(typed) => check(check_data_type(&typed.data_type)),
        Expr::BinaryOp { op, .. } => check_binary_operator(op),
        Expr::AnyOp { compare_op, .. } | Expr::AllOp { compare_op, .. } => check_binary_operator(compare_op),
        // `x.f` can call a function `f(x)` in PostgreSQL ("attribute notation").
        Expr::CompoundIdentifier(parts) => {
            parts.iter().try_for_each(check_placeholder_name)?;
            match parts.last() {
                Some(last) => check_attribute_notation(&fold(last)),
                None => ControlFlow::Continue(()),
            }
        }
        Expr::CompoundFieldAccess { access_chain, .. } => {
            for access in access_chain {
                if let AccessExpr::Dot(Expr::Identifier(field)) = access {
                    check_placeholder_name(field)?;
                    check_attribute_notation(&fold(field))?;
                }
            }
            ControlFlow::Continue(())
        }
        Expr::Identifier(ident) => check_placeholder_name(ident),
        Expr::In { target, .. } => match target {
            InTarget::List(_) | InTarget::Subquery(_) => ControlFlow::Continue(()),
            InTarget::Unnest(_) | InTarget::Table { .. } => {
                unsupported("this IN form", "write IN (value, ...) or IN (SELECT ...)")
            }
        },
        Expr::IsFalse(_)
        | Expr::IsNotFalse(_)
        | Expr::IsTrue(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotUnknown(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::IsNormalized { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::UnaryOp { .. }
        | Expr::AtTimeZone { .. }
        | Expr::Extract { .. }
        | Expr::Ceil { .. }
        | Expr::Floor { .. }
        | Expr::Position { .. }
        | Expr::Substring { .. }
        | Expr::Trim { .. }
        | Expr::Overlay { .. }
        | Expr::Collate { .. }
        | Expr::Nested(_)
        | Expr::Value(_)
        | Expr::Case { .. }
        | Expr::Exists { .. }
        | Expr::Subquery(_)
        | Expr::IsJson { .. }
        | Expr::GroupingSets(_)
        | Expr::Cube(_)
        | Expr::Rollup(_)
        | Expr::Tuple(_)
        | Expr::Array(_)
        | Expr::Interval(_)
        | Expr::Wildcard(_) => ControlFlow::Continue(()),
        Expr::QualifiedWildcard(name, _) => check_object_name_parts(name),
        Expr::Convert { .. } => unsupported("CONVERT", "use CAST(x AS type) or x::type"),
        Expr::RLike { .. } => unsupported("REGEXP / RLIKE", "use the ~ or ~* operators"),
        _ => unsupported(
            "this kind of expression",
            "use standard PostgreSQL expressions, operators and functions",
        ),
    }
}

fn check_binary_operator(op: &BinaryOperator) -> Step {
    match op {
        BinaryOperator::Custom(operator) => check(check_custom_operator(operator)),
        BinaryOperator::PGCustomBinaryOperator(_) => refuse(SqlRejection::OperatorNotAllowed {
            operator: clip(&op.to_string(), 40),
            hint: "write the operator itself, without OPERATOR(...)",
        }),
        _ => ControlFlow::Continue(()),
    }
}

/// sqlparser reads `c.$name` as a column named `$name`; PostgreSQL reads a parameter there.
fn check_placeholder_name(ident: &Ident) -> Step {
    if ident.quote_style.is_none() && ident.value.starts_with('$') {
        return refuse(SqlRejection::Placeholder { placeholder: clip(&ident.value, 20) });
    }
    ControlFlow::Continue(())
}

fn check_attribute_notation(field: &str) -> Step {
    match denied_function(field) {
        Some(why) => refuse(SqlRejection::FunctionNotAllowed { name: clip(field, 80), why }),
        None => ControlFlow::Continue(()),
    }
}

fn check_value(value: &Value) -> Step {
    match value {
        Value::Number(..)
        | Value::SingleQuotedString(_)
        | Value::DollarQuotedString(_)
        | Value::EscapedStringLiteral(_)
        | Value::NationalStringLiteral(_)
        | Value::HexStringLiteral(_)
        | Value::SingleQuotedByteStringLiteral(_)
        | Value::Boolean(_)
        | Value::Null => ControlFlow::Continue(()),
        Value::Placeholder(placeholder) => {
            refuse(SqlRejection::Placeholder { placeholder: clip(placeholder, 20) })
        }
        Value::UnicodeStringLiteral(_) => {
            unsupported("U&'...' Unicode-escape strings", "write the characters directly in a '...' string")
        }
        _ => unsupported("this kind of literal", "use '...' strings and plain numbers"),
    }
}
