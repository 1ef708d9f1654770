//! Behaviour of `validate` as the model sees it: analytics queries that must pass, attacks and
//! mistakes that must be refused with the right label and a useful message, and inputs that
//! must not crash it.

use std::collections::BTreeSet;

use super::*;

fn retail(sql: &str) -> Result<ValidatedSql, SqlRejection> {
    validate(sql, &SqlPolicy::retail())
}

/// Queries a model would write against the retail schema, with the tables each one reads.
const GOOD: &[(&str, &[&str])] = &[
    ("SELECT store_name FROM retail.stores", &["retail.stores"]),
    ("select count(*) from orders", &["retail.orders"]),
    ("SELECT count(*) FROM RETAIL.ORDERS", &["retail.orders"]),
    (r#"SELECT count(*) FROM "retail"."orders""#, &["retail.orders"]),
    (
        "SELECT s.store_name, sum(oi.total_amount) AS revenue
         FROM retail.orders o
         JOIN retail.order_items oi ON oi.order_id = o.order_id
         JOIN retail.stores s ON s.store_id = o.store_id
         GROUP BY s.store_name ORDER BY revenue DESC LIMIT 10",
        &["retail.order_items", "retail.orders", "retail.stores"],
    ),
    (
        "WITH monthly AS (
             SELECT date_trunc('month', o.order_date) AS month, sum(oi.total_amount) AS revenue
             FROM retail.orders o JOIN retail.order_items oi USING (order_id)
             GROUP BY 1)
         SELECT month, revenue, revenue - lag(revenue) OVER (ORDER BY month) AS change
         FROM monthly ORDER BY month",
        &["retail.order_items", "retail.orders"],
    ),
    (
        "SELECT c.category_name, p.product_name,
                rank() OVER (PARTITION BY c.category_id ORDER BY sum(oi.quantity) DESC) AS rnk
         FROM retail.order_items oi
         JOIN retail.products p ON p.product_id = oi.product_id
         JOIN retail.categories c ON c.category_id = p.category_id
         GROUP BY c.category_id, c.category_name, p.product_name",
        &["retail.categories", "retail.order_items", "retail.products"],
    ),
    (
        "SELECT EXTRACT(YEAR FROM order_date) AS year, store_id, count(*)
         FROM retail.orders GROUP BY ROLLUP (EXTRACT(YEAR FROM order_date), store_id)",
        &["retail.orders"],
    ),
    (
        "SELECT store_id, count(*) FROM retail.orders GROUP BY GROUPING SETS ((store_id), ())",
        &["retail.orders"],
    ),
    (
        "SELECT CASE WHEN base_price > 100 THEN 'premium' WHEN base_price > 20 THEN 'mid'
                     ELSE 'budget' END AS tier, count(*)
         FROM retail.products GROUP BY 1 HAVING count(*) > 5",
        &["retail.products"],
    ),
    (
        "SELECT customer_id, first_name FROM retail.customers c
         WHERE customer_id IN (SELECT customer_id FROM retail.orders WHERE store_id = 3)
           AND EXISTS (SELECT 1 FROM retail.orders o WHERE o.customer_id = c.customer_id)
           AND (SELECT count(*) FROM retail.orders o2 WHERE o2.customer_id = c.customer_id) > 2",
        &["retail.customers", "retail.orders"],
    ),
    (
        "SELECT store_id FROM retail.orders UNION SELECT store_id FROM retail.inventory
         INTERSECT SELECT store_id FROM retail.stores EXCEPT SELECT 99",
        &["retail.inventory", "retail.orders", "retail.stores"],
    ),
    ("SELECT * FROM retail.orders ORDER BY order_date DESC LIMIT 20 OFFSET 40", &["retail.orders"]),
    ("SELECT * FROM retail.orders FETCH FIRST 5 ROWS ONLY", &["retail.orders"]),
    (
        "SELECT round(avg(total_amount)::numeric, 2), CAST(max(order_date) AS date),
                sum(quantity)::int, '2024-01-01'::date, DATE '2024-01-01', ARRAY[1, 2]::int[]
         FROM retail.order_items JOIN retail.orders USING (order_id)",
        &["retail.order_items", "retail.orders"],
    ),
    (
        "SELECT product_name FROM retail.products
         WHERE product_name ILIKE '%drill%' OR product_description ~* 'cordless'
            OR sku SIMILAR TO 'HW-%' OR sku NOT LIKE 'X%'",
        &["retail.products"],
    ),
    (
        "SELECT p.product_name, e.description_embedding <=> '[0.1, 0.2, 0.3]'::vector AS distance
         FROM retail.product_description_embeddings e
         JOIN retail.products p ON p.product_id = e.product_id
         ORDER BY e.description_embedding <=> '[0.1, 0.2, 0.3]'::vector LIMIT 5",
        &["retail.product_description_embeddings", "retail.products"],
    ),
    (
        "SELECT product_id, description_embedding <-> '[1,2,3]' AS l2,
                description_embedding <#> '[1,2,3]' AS inner_product
         FROM retail.product_description_embeddings ORDER BY 2 LIMIT 3",
        &["retail.product_description_embeddings"],
    ),
    (
        "SELECT product_name, ts_rank(product_search, q) AS rank
         FROM retail.products, plainto_tsquery('english', 'cordless drill') q
         WHERE product_search @@ q ORDER BY rank DESC LIMIT 10",
        &["retail.products"],
    ),
    ("VALUES (1, 'one'), (2, 'two')", &[]),
    ("SELECT * FROM (VALUES (1, 'Seattle'), (2, 'Redmond')) AS v(id, city)", &[]),
    (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12)
         SELECT i FROM n",
        &[],
    ),
    (
        "SELECT DISTINCT ON (store_id) store_id, order_id, order_date
         FROM retail.orders ORDER BY store_id, order_date DESC",
        &["retail.orders"],
    ),
    (
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total_amount) AS median,
                count(*) FILTER (WHERE discount_percent > 0) AS discounted,
                string_agg(DISTINCT store_id::text, ',' ORDER BY store_id::text) AS stores
         FROM retail.order_items",
        &["retail.order_items"],
    ),
    (
        "SELECT d::date AS day, count(o.order_id)
         FROM generate_series('2024-01-01'::date, '2024-01-31'::date, interval '1 day') AS d
         LEFT JOIN retail.orders o ON o.order_date = d::date
         GROUP BY 1 ORDER BY 1",
        &["retail.orders"],
    ),
    (
        "SELECT s.store_name, last.order_date FROM retail.stores s
         CROSS JOIN LATERAL (SELECT order_date FROM retail.orders o
                             WHERE o.store_id = s.store_id ORDER BY order_date DESC LIMIT 1) last",
        &["retail.orders", "retail.stores"],
    ),
    (
        "SELECT /* revenue */ sum(total_amount) -- per item
         FROM retail.order_items",
        &["retail.order_items"],
    ),
    (
        "SELECT order_id FROM retail.orders
         WHERE order_date >= current_date - interval '30 days' AND order_date < now()",
        &["retail.orders"],
    ),
    (
        "SELECT coalesce(phone, 'n/a'), nullif(email, ''), greatest(1, 2), least(3, 4),
                upper(first_name) || ' ' || lower(last_name), length(email),
                to_char(created_at, 'YYYY-MM'), date_part('dow', created_at)
         FROM retail.customers",
        &["retail.customers"],
    ),
    (
        "SELECT pg_typeof(base_price), pg_size_pretty(1024::bigint), pg_catalog.now()
         FROM retail.products LIMIT 1",
        &["retail.products"],
    ),
    ("SELECT 1;", &[]),
    ("SELECT 1;; -- done", &[]),
    ("SELECT json_build_object('store', store_name) ->> 'store' FROM retail.stores", &["retail.stores"]),
    (
        "SELECT array_agg(product_id) FROM retail.inventory
         WHERE store_id = ANY (ARRAY[1, 2, 3]) AND stock_level BETWEEN 1 AND 10",
        &["retail.inventory"],
    ),
    ("SELECT u.x FROM unnest(ARRAY[1, 2, 3]) WITH ORDINALITY AS u(x, n)", &[]),
    (
        "SELECT t.type_name, c.category_name FROM retail.product_types t
         NATURAL JOIN retail.categories c FULL OUTER JOIN retail.products p USING (type_id)",
        &["retail.categories", "retail.product_types", "retail.products"],
    ),
    (
        "SELECT count(DISTINCT customer_id) FROM retail.orders
         WHERE store_id IS DISTINCT FROM 2 AND store_id NOT IN (7, 8)",
        &["retail.orders"],
    ),
    // A CTE may shadow an allowed table; what it reads is still checked.
    (
        "WITH orders AS (SELECT * FROM retail.orders WHERE store_id = 1)
         SELECT count(*) FROM orders",
        &["retail.orders"],
    ),
    // A CTE sees the CTEs before it.
    (
        "WITH a AS (SELECT store_id FROM retail.stores), b AS (SELECT * FROM a)
         SELECT * FROM b",
        &["retail.stores"],
    ),
    // Tautologies are not this layer's business: row-level security bounds what they see.
    ("SELECT * FROM retail.orders WHERE store_id = 1 OR 1 = 1", &["retail.orders"]),
    ("SELECT * FROM retail.customers WHERE email = '' OR '' = ''", &["retail.customers"]),
    // Comments vanish from what runs, nested ones included (as in PostgreSQL).
    ("SELECT * FROM retail.orders -- ; DROP TABLE retail.orders", &["retail.orders"]),
    ("SELECT 1 /* /* nested */ ; DROP TABLE x */", &[]),
    // Nesting well within the parser's limit.
    (
        "SELECT * FROM (SELECT * FROM (SELECT * FROM (SELECT * FROM (SELECT * FROM
         (SELECT order_id FROM retail.orders WHERE store_id IN (SELECT store_id FROM
         retail.stores WHERE store_id IN (SELECT store_id FROM retail.inventory)))
         a) b) c) d) e WHERE ((((order_id + 1) * 2) - 3) / 4) > 0",
        &["retail.inventory", "retail.orders", "retail.stores"],
    ),
];

#[test]
fn analytics_queries_pass_and_report_the_tables_they_read() {
    for (sql, tables) in GOOD {
        let validated = retail(sql).unwrap_or_else(|e| panic!("refused: {sql}\n  -> {e}"));
        let expected: BTreeSet<String> = tables.iter().map(|t| t.to_string()).collect();
        assert_eq!(validated.tables, expected, "{sql}");
    }
}

#[test]
fn the_sql_to_run_is_canonical_and_validates_to_itself() {
    for (sql, _) in GOOD {
        let first = retail(sql).unwrap_or_else(|e| panic!("refused: {sql}\n  -> {e}"));
        assert!(!first.sql.contains("--") && !first.sql.contains("/*"), "{}", first.sql);
        assert!(!first.sql.ends_with(';'), "{}", first.sql);
        let again = retail(&first.sql).unwrap_or_else(|e| panic!("refused: {}\n -> {e}", first.sql));
        assert_eq!(again, first, "{sql}");
    }
}

#[test]
fn comments_and_trailing_semicolons_are_dropped_from_the_sql_to_run() {
    let validated = retail("SELECT 1 /* a */ AS x -- b\n;").unwrap();
    assert_eq!(validated.sql, "SELECT 1 AS x");
}

#[test]
fn tables_run_schema_qualified_whatever_the_search_path() {
    assert_eq!(
        retail("select count(*) from Orders o join stores using (store_id)").unwrap().sql,
        "SELECT count(*) FROM retail.Orders o JOIN retail.stores USING(store_id)"
    );
    // A CTE reference stays a CTE reference; the table inside its definition is qualified.
    assert_eq!(
        retail("WITH orders AS (SELECT * FROM orders WHERE store_id = 1) SELECT * FROM orders").unwrap().sql,
        "WITH orders AS (SELECT * FROM retail.orders WHERE store_id = 1) SELECT * FROM orders"
    );
}

#[test]
fn dollar_quoted_strings_run_as_plain_strings() {
    let validated = retail("SELECT $$it's$$, $tag$ $$ ; DROP $tag$").unwrap();
    assert_eq!(validated.sql, "SELECT 'it''s', ' $$ ; DROP '");
}

#[test]
fn strings_the_parser_would_print_wrongly_run_as_escape_strings() {
    // The value is `\' , (SELECT 1 FROM pg_authid) --`: one string for PostgreSQL. Printed
    // back as '\' , ...' it would end after the backslash and run the subquery.
    let validated = retail(r"SELECT '\'' , (SELECT 1 FROM pg_authid) --'").unwrap();
    assert_eq!(validated.sql, r"SELECT E'\\\' , (SELECT 1 FROM pg_authid) --'");
    assert!(validated.tables.is_empty());
    // Two quotes in the value stay two quotes.
    assert_eq!(retail("SELECT 'a''''b'").unwrap().sql, r"SELECT E'a\'\'b'");
    assert_eq!(retail(r"SELECT $$it\'s$$").unwrap().sql, r"SELECT E'it\\\'s'");
    // Ordinary strings keep their plain form.
    assert_eq!(retail(r"SELECT 'it''s', 'C:\dir'").unwrap().sql, r"SELECT 'it''s', 'C:\dir'");
}

#[test]
fn escape_strings_keep_their_meaning() {
    // In E'...' a backslash escapes the quote, so all of this is one string literal, for
    // PostgreSQL as for the parser: nothing here reads pg_authid.
    let validated = retail(r"SELECT E'\' , (SELECT 1 FROM pg_authid) --'").unwrap();
    assert!(validated.tables.is_empty());
    assert_eq!(validated.sql, r"SELECT E'\' , (SELECT 1 FROM pg_authid) --'");
    assert_eq!(retail(r"SELECT E'a\nb'").unwrap().sql, r"SELECT E'a\nb'");
}

/// Inputs that must be refused: (SQL, `reason()` label, fragment of the message).
const BAD: &[(&str, &str, &str)] = &[
    // Input shape
    ("", "empty", "empty"),
    ("   \n\t  ", "empty", "empty"),
    ("-- only a comment", "empty", "SELECT"),
    ("/* nothing */ ;", "empty", "SELECT"),
    ("SELECT '\0'", "invalid_character", "NUL"),
    ("SELEC 1", "parse_error", "Line: 1, Column: 1"),
    ("SELECT (1", "parse_error", "Expected"),
    ("SELECT 1 garbage garbage", "parse_error", "Column"),
    ("SELECT 'unterminated", "parse_error", "Unterminated string"),
    ("'; DROP TABLE retail.orders; --", "parse_error", "Unterminated string"),
    ("SELECT 'a' 'b'", "parse_error", "Expected"),
    ("SELECT * FROM retail.orders FOR NO KEY UPDATE", "parse_error", "Expected"),
    ("DO $$ BEGIN PERFORM pg_sleep(10); END $$", "parse_error", "SQL statement"),
    // One statement only
    ("SELECT 1; SELECT 2", "multiple_statements", "only one SQL statement"),
    ("SELECT 1; DROP TABLE retail.orders", "multiple_statements", "remove the `;`"),
    ("COMMIT; SELECT 1", "multiple_statements", "only one SQL statement"),
    ("SELECT 1; COMMIT", "multiple_statements", "only one SQL statement"),
    ("1; DROP TABLE retail.orders; --", "multiple_statements", "only one"),
    (
        "SELECT * FROM retail.orders WHERE store_id = 1; DROP TABLE retail.orders; --",
        "multiple_statements",
        "only one",
    ),
    ("SELECT * FROM retail.orders; -- x\nDELETE FROM retail.orders", "multiple_statements", "only one"),
    ("SELECT 1 /* ; */ ; SELECT 2", "multiple_statements", "only one"),
    ("SELECT 1; ROLLBACK; SELECT 1", "multiple_statements", "only one"),
    // SELECT only
    (
        "INSERT INTO retail.orders (customer_id, store_id, order_date) VALUES (1, 1, now())",
        "not_select",
        "a INSERT statement",
    ),
    ("UPDATE retail.orders SET store_id = 2", "not_select", "UPDATE"),
    ("DELETE FROM retail.orders", "not_select", "DELETE"),
    (
        "MERGE INTO retail.orders o USING retail.orders p ON o.order_id = p.order_id
         WHEN MATCHED THEN DELETE",
        "not_select",
        "MERGE",
    ),
    ("DROP TABLE retail.orders", "not_select", "DROP"),
    ("TRUNCATE retail.orders", "not_select", "TRUNCATE"),
    ("CREATE TABLE x AS SELECT 1", "not_select", "CREATE"),
    ("CREATE TEMP TABLE x AS SELECT 1", "not_select", "CREATE"),
    ("ALTER TABLE retail.orders ADD COLUMN x int", "not_select", "ALTER"),
    ("GRANT SELECT ON tenancy.tenant_stores TO PUBLIC", "not_select", "GRANT"),
    ("EXPLAIN SELECT 1", "not_select", "EXPLAIN"),
    ("EXPLAIN ANALYZE DELETE FROM retail.orders", "not_select", "EXPLAIN"),
    ("SET ROLE postgres", "not_select", "SET"),
    ("SET search_path = public", "not_select", "SET"),
    ("RESET ALL", "not_select", "RESET"),
    ("SHOW search_path", "not_select", "SHOW"),
    ("COPY retail.orders TO '/tmp/orders.csv'", "not_select", "COPY"),
    ("COPY (SELECT 1) TO PROGRAM 'id'", "not_select", "COPY"),
    ("CALL retail.refresh()", "not_select", "CALL"),
    ("LISTEN orders", "not_select", "LISTEN"),
    ("NOTIFY orders", "not_select", "NOTIFY"),
    ("PREPARE p AS SELECT 1", "not_select", "PREPARE"),
    ("EXECUTE p", "not_select", "EXECUTE"),
    ("DECLARE c CURSOR FOR SELECT 1", "not_select", "DECLARE"),
    ("BEGIN", "not_select", "BEGIN"),
    ("COMMIT", "not_select", "COMMIT"),
    ("VACUUM", "not_select", "VACUUM"),
    ("ANALYZE retail.orders", "not_select", "ANALYZE"),
    ("LOCK TABLE retail.orders", "not_select", "LOCK"),
    ("DISCARD ALL", "not_select", "DISCARD"),
    ("SELECT * INTO copy FROM retail.orders", "select_into", "remove the INTO"),
    ("SELECT 1 INTO TEMP x", "select_into", "INTO"),
    ("SELECT * FROM retail.orders FOR UPDATE", "locking_clause", "FOR UPDATE"),
    ("SELECT * FROM retail.orders FOR SHARE OF orders NOWAIT", "locking_clause", "remove the FOR"),
    ("SELECT * FROM (SELECT * FROM retail.orders FOR UPDATE) o", "locking_clause", "FOR UPDATE"),
    (
        "WITH x AS (DELETE FROM retail.orders RETURNING *) SELECT * FROM x",
        "data_modifying",
        "DELETE is not allowed, not even inside WITH",
    ),
    (
        "WITH x AS (INSERT INTO retail.orders DEFAULT VALUES RETURNING *) SELECT * FROM x",
        "data_modifying",
        "INSERT",
    ),
    (
        "WITH x AS (UPDATE retail.orders SET store_id = 1 RETURNING *) SELECT * FROM x",
        "data_modifying",
        "UPDATE",
    ),
    ("WITH x AS (SELECT 1) DELETE FROM retail.orders", "data_modifying", "DELETE"),
    (
        "SELECT * FROM (WITH d AS (DELETE FROM retail.orders RETURNING *) SELECT * FROM d) s",
        "data_modifying",
        "DELETE",
    ),
    ("SELECT 1 UNION TABLE pg_authid", "unsupported_syntax", "SELECT * FROM name"),
    ("SELECT * FROM (TABLE pg_authid) t", "unsupported_syntax", "TABLE name"),
    ("SELECT 1 WHERE 1 IN (TABLE pg_authid)", "unsupported_syntax", "TABLE name"),
    // Tables
    ("SELECT * FROM pg_authid", "system_catalog", "`pg_authid`"),
    ("SELECT * FROM pg_catalog.pg_shadow", "system_catalog", "system catalogs"),
    ("SELECT * FROM PG_CATALOG.PG_ROLES", "system_catalog", "PG_CATALOG.PG_ROLES"),
    ("SELECT * FROM information_schema.tables", "system_catalog", "retail.orders"),
    ("SELECT * FROM pg_stat_activity", "system_catalog", "pg_stat_activity"),
    ("SELECT * FROM pg_settings", "system_catalog", "pg_settings"),
    ("SELECT * FROM pg_toast.pg_toast_1260", "system_catalog", "pg_toast"),
    ("SELECT * FROM tenancy.tenant_stores", "schema_not_allowed", "`tenancy.tenant_stores` is outside"),
    ("SELECT * FROM audit.tool_calls", "schema_not_allowed", "audit.tool_calls"),
    ("SELECT * FROM public.orders", "schema_not_allowed", "public.orders"),
    ("SELECT * FROM users", "table_not_allowed", "only the tables retail.stores, retail.customers"),
    ("SELECT * FROM retail.secrets", "table_not_allowed", "`retail.secrets` is not one"),
    (r#"SELECT * FROM "RETAIL"."Orders""#, "schema_not_allowed", "case-sensitive"),
    (r#"SELECT * FROM retail."Orders""#, "table_not_allowed", "case-sensitive"),
    ("SELECT * FROM mydb.retail.orders", "three_part_name", "schema.table"),
    // Cyrillic 'о' in "оrders": looks the same, is another name.
    ("SELECT * FROM retail.оrders", "table_not_allowed", "not one of them"),
    (
        "SELECT * FROM retail.orders WHERE store_id IN (SELECT store_id FROM
         (SELECT * FROM (SELECT 1 AS store_id FROM pg_authid) a) b)",
        "system_catalog",
        "pg_authid",
    ),
    ("SELECT (SELECT rolpassword FROM pg_authid LIMIT 1)", "system_catalog", "pg_authid"),
    (
        "SELECT * FROM retail.orders WHERE EXISTS (SELECT 1 FROM tenancy.tenant_stores)",
        "schema_not_allowed",
        "tenancy",
    ),
    (
        "SELECT store_id FROM retail.orders UNION ALL SELECT usesysid FROM pg_user",
        "system_catalog",
        "pg_user",
    ),
    (
        "SELECT * FROM retail.orders o JOIN LATERAL (SELECT * FROM pg_roles) r ON true",
        "system_catalog",
        "pg_roles",
    ),
    ("WITH s AS (SELECT * FROM pg_authid) SELECT * FROM s", "system_catalog", "pg_authid"),
    // Inside its own definition a (non-recursive) CTE name still means the real table.
    ("WITH pg_authid AS (SELECT * FROM pg_authid) SELECT * FROM pg_authid", "system_catalog", "pg_authid"),
    // A CTE is only visible in the query that defines it.
    (
        "SELECT * FROM (WITH pg_roles AS (SELECT 1) SELECT * FROM pg_roles) a, pg_roles",
        "system_catalog",
        "pg_roles",
    ),
    // Without RECURSIVE a CTE cannot see the ones after it.
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "table_not_allowed", "`b`"),
    ("WITH x AS (SELECT 1) SELECT * FROM retail.x", "table_not_allowed", "retail.x"),
    // Functions
    ("SELECT pg_sleep(10)", "function_not_allowed", "makes the server wait"),
    ("SELECT PG_SLEEP(10)", "function_not_allowed", "PG_SLEEP"),
    (r#"SELECT "pg_sleep"(10)"#, "function_not_allowed", "wait"),
    ("SELECT pg_catalog.pg_sleep(1)", "function_not_allowed", "wait"),
    ("SELECT pg_sleep_for('5 minutes')", "function_not_allowed", "wait"),
    ("SELECT pg_sleep_until('tomorrow')", "function_not_allowed", "wait"),
    ("SELECT * FROM retail.orders ORDER BY pg_sleep(1)", "function_not_allowed", "wait"),
    ("SELECT * FROM retail.orders WHERE pg_sleep(1) IS NOT NULL", "function_not_allowed", "wait"),
    ("SELECT count(*) FROM retail.orders GROUP BY pg_sleep(1)", "function_not_allowed", "wait"),
    ("SELECT * FROM (VALUES (pg_sleep(1))) v(x)", "function_not_allowed", "wait"),
    ("SELECT CASE WHEN true THEN pg_sleep(1) END", "function_not_allowed", "wait"),
    (
        "SELECT sum(total_amount) FILTER (WHERE pg_sleep(1) IS NULL) FROM retail.order_items",
        "function_not_allowed",
        "wait",
    ),
    ("SELECT row_number() OVER (ORDER BY pg_sleep(1)) FROM retail.orders", "function_not_allowed", "wait"),
    ("SELECT * FROM retail.orders LIMIT (SELECT 1 FROM pg_sleep(5))", "function_not_allowed", "wait"),
    ("SELECT * FROM retail.orders o, LATERAL pg_ls_dir('.') f", "function_not_allowed", "reads server files"),
    ("SELECT * FROM pg_ls_dir('.')", "function_not_allowed", "`pg_ls_dir`"),
    ("SELECT * FROM generate_series(1, 3) g, pg_catalog.pg_ls_dir('.') f", "function_not_allowed", "files"),
    ("SELECT pg_read_file('/etc/passwd')", "function_not_allowed", "files"),
    ("SELECT pg_read_binary_file('/etc/passwd')", "function_not_allowed", "files"),
    ("SELECT pg_stat_file('postgresql.conf')", "function_not_allowed", "files"),
    ("SELECT set_config('role', 'postgres', false)", "function_not_allowed", "server settings"),
    ("SELECT set_config('mcpfleet.store_scope', '1,2,3', true)", "function_not_allowed", "set_config"),
    ("SELECT current_setting('mcpfleet.store_scope')", "function_not_allowed", "settings"),
    ("SELECT dblink('host=attacker', 'SELECT 1')", "function_not_allowed", "connects to other databases"),
    ("SELECT dblink_exec('DROP TABLE x')", "function_not_allowed", "other databases"),
    ("SELECT lo_import('/etc/passwd')", "function_not_allowed", "large objects"),
    ("SELECT lo_export(1, '/tmp/x')", "function_not_allowed", "large objects"),
    ("SELECT loread(0, 1)", "function_not_allowed", "large objects"),
    ("SELECT pg_terminate_backend(1)", "function_not_allowed", "controls the server"),
    ("SELECT pg_cancel_backend(1)", "function_not_allowed", "controls the server"),
    ("SELECT pg_reload_conf()", "function_not_allowed", "controls the server"),
    ("SELECT pg_switch_wal()", "function_not_allowed", "controls the server"),
    ("SELECT pg_advisory_lock(1)", "function_not_allowed", "takes locks"),
    ("SELECT pg_try_advisory_xact_lock(1)", "function_not_allowed", "locks"),
    ("SELECT pg_notify('orders', 'x')", "function_not_allowed", "notifications"),
    ("SELECT nextval('retail.orders_order_id_seq')", "function_not_allowed", "sequences"),
    ("SELECT setval('retail.orders_order_id_seq', 1)", "function_not_allowed", "sequences"),
    ("SELECT currval('s')", "function_not_allowed", "sequences"),
    ("SELECT query_to_xml('SELECT * FROM pg_authid', true, false, '')", "function_not_allowed", "runs SQL"),
    (
        "SELECT table_to_xml('tenancy.tenant_stores', true, false, '')",
        "function_not_allowed",
        "reads a table named in a string",
    ),
    ("SELECT cursor_to_xml('c', 1, true, false, '')", "function_not_allowed", "runs SQL"),
    ("SELECT schema_to_xml('tenancy', true, false, '')", "function_not_allowed", "SQL"),
    ("SELECT database_to_xml(true, false, '')", "function_not_allowed", "SQL"),
    ("SELECT ts_stat('SELECT product_search FROM retail.products')", "function_not_allowed", "runs SQL"),
    ("SELECT txid_current()", "function_not_allowed", "transaction"),
    ("SELECT version()", "function_not_allowed", "server details"),
    ("SELECT inet_server_addr()", "function_not_allowed", "server details"),
    ("SELECT pg_get_userbyid(10)", "function_not_allowed", "PostgreSQL system function"),
    ("SELECT pg_backend_pid()", "function_not_allowed", "system function"),
    ("SELECT has_table_privilege('tenancy.tenant_stores', 'SELECT')", "function_not_allowed", "catalogs"),
    ("SELECT to_regclass('tenancy.tenant_stores')", "function_not_allowed", "catalogs"),
    ("SELECT regclass('pg_authid')", "function_not_allowed", "catalogs"),
    ("SELECT setseed(0.5)", "function_not_allowed", "session state"),
    (
        "SELECT public.cosine_distance(description_embedding, '[1,2,3]')
         FROM retail.product_description_embeddings",
        "function_schema_not_allowed",
        "remove the schema prefix",
    ),
    ("SELECT retail.evil()", "function_schema_not_allowed", "retail.evil"),
    ("SELECT * FROM tenancy.my_stores()", "function_schema_not_allowed", "tenancy"),
    // `o.f` calls f(o) in PostgreSQL.
    ("SELECT o.pg_column_size FROM retail.orders o", "function_not_allowed", "pg_column_size"),
    // Types
    ("SELECT 'pg_authid'::regclass", "type_not_allowed", "system catalog"),
    ("SELECT CAST('pg_sleep' AS regproc)", "type_not_allowed", "regproc"),
    ("SELECT regclass 'pg_authid'", "type_not_allowed", "catalog"),
    ("SELECT 'x'::pg_catalog.regclass::oid", "type_not_allowed", "catalog"),
    ("SELECT ARRAY['x']::regtype[]", "type_not_allowed", "regtype"),
    ("SELECT NULL::tenancy.tenant_stores", "type_not_allowed", "remove the schema prefix"),
    ("SELECT '[1,2,3]'::public.vector", "type_not_allowed", "::vector"),
    ("SELECT NULL::pg_authid", "type_not_allowed", "system type"),
    ("SELECT pg_lsn '0/0'", "type_not_allowed", "system type"),
    // Operators
    ("SELECT 1 OPERATOR(pg_catalog.+) 1", "operator_not_allowed", "without OPERATOR"),
    // PostgreSQL reads `/*` as the start of a comment here; sqlparser as an operator.
    ("SELECT 1 </* 2", "operator_not_allowed", "`</*`"),
    // Literals
    ("SELECT * FROM retail.orders WHERE order_id = $1", "parameter_placeholder", "`$1`"),
    ("SELECT * FROM retail.orders LIMIT $1", "parameter_placeholder", "literal"),
    (r"SELECT U&'\0070g_authid'", "unsupported_syntax", "U&'...'"),
    (r#"SELECT * FROM U&"pg_authid""#, "parse_error", "Expected"),
    // Other syntax
    ("SELECT * FROM retail.orders TABLESAMPLE BERNOULLI (10)", "unsupported_syntax", "ORDER BY random()"),
    ("SELECT TOP 5 * FROM retail.orders", "unsupported_syntax", "LIMIT"),
    ("SELECT * FROM XMLTABLE('/a' PASSING '<a/>' COLUMNS x int)", "unsupported_syntax", "XMLTABLE"),
    // Quoting tricks: each hides a catalog read from a checker that lexes differently from
    // PostgreSQL. In standard strings a backslash is an ordinary character...
    (r"SELECT '\' , (SELECT 1 FROM pg_authid) --'", "system_catalog", "pg_authid"),
    // ...block comments nest...
    ("SELECT 1 /* /* */ ' */ , (SELECT rolpassword FROM pg_authid) --'", "system_catalog", "pg_authid"),
    // ...`--` starts a comment even right after an operator character...
    ("SELECT 1 <-- 'x\n 2, (SELECT rolpassword FROM pg_authid) --'", "system_catalog", "pg_authid"),
    // ...a dollar quote ends only at its own tag...
    ("SELECT $a$ $$ $a$, (SELECT 1 FROM pg_authid) --$$", "system_catalog", "pg_authid"),
    ("SELECT $$ ' $$, (SELECT 1 FROM pg_authid) --'", "system_catalog", "pg_authid"),
    // ...and `$` is part of an identifier, not the start of a dollar quote.
    ("SELECT x$a$ FROM retail.orders, (SELECT * FROM pg_authid) p -- $a$", "system_catalog", "pg_authid"),
    // sqlparser prints the identifier `x\" , (SELECT ...) --` back without doubling the quote
    // after the backslash, which would end it early; the round trip notices.
    (r#"SELECT 1 AS "x\"" , (SELECT 1 FROM pg_authid) --""#, "not_reproducible", "plainer SQL"),
];

#[test]
fn bad_inputs_are_refused_with_a_label_and_a_helpful_message() {
    let mut failures = Vec::new();
    for (sql, reason, fragment) in BAD {
        match retail(sql) {
            Ok(validated) => failures.push(format!("ACCEPTED {sql:?} as {:?}", validated.sql)),
            Err(rejection) => {
                let message = rejection.to_string();
                if rejection.reason() != *reason || !message.contains(fragment) {
                    failures.push(format!(
                        "{sql:?}\n   want {reason} / {fragment:?}\n   got  {} / {message:?}",
                        rejection.reason()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_reason_label_is_listed() {
    let used: BTreeSet<&str> = BAD.iter().map(|(_, reason, _)| *reason).collect();
    for reason in &used {
        assert!(SqlRejection::REASONS.contains(reason), "{reason}");
    }
}

#[test]
fn messages_never_mention_internals() {
    for (sql, _, _) in BAD {
        let message = retail(sql).unwrap_err().to_string();
        for internal in ["sqlparser", "sql parser error", "Visitor", "panicked", "RLS"] {
            assert!(!message.contains(internal), "{sql:?}: {message}");
        }
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let sql = format!("SELECT 1 {}", " ".repeat(MAX_SQL_BYTES));
    let rejection = retail(&sql).unwrap_err();
    assert_eq!(rejection.reason(), "too_long");
    assert!(rejection.to_string().contains("16384 bytes"), "{rejection}");

    let at_limit = format!("SELECT 1{}", " ".repeat(MAX_SQL_BYTES - "SELECT 1".len()));
    assert!(retail(&at_limit).is_ok());
}

/// 10,000 nested parentheses: an error from the parser's recursion limit, not a crash.
#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let unclosed = format!("SELECT {}", "(".repeat(10_000));
    assert_eq!(retail(&unclosed).unwrap_err().reason(), "too_deep");

    // Closed, the same nesting is over the size limit; the parser alone still refuses it.
    let closed = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(retail(&closed).unwrap_err().reason(), "too_long");
    assert_eq!(parse_one_statement(&closed).unwrap_err(), SqlRejection::TooDeep);

    for nested in [
        format!("SELECT {}1{}", "(SELECT ".repeat(1_000), ")".repeat(1_000)),
        format!("SELECT {}1{}", "abs(".repeat(2_000), ")".repeat(2_000)),
        format!("SELECT {}1", "- ".repeat(5_000)),
        format!("SELECT * FROM {}retail.orders{}", "(".repeat(5_000), ")".repeat(5_000)),
    ] {
        assert_eq!(retail(&nested).unwrap_err().reason(), "too_deep");
    }
}

/// Long operator chains are not nested parentheses: the parser loops instead of recursing and
/// builds a syntax tree thousands of levels deep. Checking it must fit in half of a tokio
/// worker's 2 MiB stack.
#[test]
fn long_operator_chains_fit_on_a_small_stack() {
    let handle = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(|| {
            let longest = |unit: &str, prefix: &str| {
                let count = (MAX_SQL_BYTES - prefix.len()) / unit.len();
                format!("{prefix}{}", unit.repeat(count))
            };
            let chains = [
                longest("+1", "SELECT 1"),
                longest("||'a'", "SELECT 'a'"),
                longest(" AND true", "SELECT true"),
                longest("::int", "SELECT 1"),
                longest("[1]", "SELECT ARRAY[1]"),
                longest(" UNION SELECT 1", "SELECT 1"),
                longest(" JOIN retail.orders ON true", "SELECT 1 FROM retail.orders"),
                longest(" IS NULL", "SELECT 1"),
            ];
            chains
                .iter()
                .map(|sql| retail(sql).map(|v| v.sql.len()).map_err(|e| e.reason()))
                .collect::<Vec<_>>()
        })
        .expect("spawn a test thread");
    let outcomes = handle.join().expect("no stack overflow or panic");
    assert!(outcomes[0].is_ok(), "a long sum is a valid query: {outcomes:?}");
}

/// Deterministic xorshift, so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    "'",
    "\"",
    "$$",
    "$a$",
    ";",
    "(",
    ")",
    "--",
    "/*",
    "*/",
    "\\",
    "E'",
    "U&'",
    "\n",
    "\0",
    " pg_authid ",
    " FROM ",
    " SELECT ",
    " WITH x AS (",
    " UNION ",
    "::regclass",
    "pg_sleep(1)",
    " FOR UPDATE",
    " INTO t ",
    "é",
    "\u{a0}",
    "$1",
    " OPERATOR(+) ",
    "<->",
    "[",
    "]",
];

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 => {
                let fragment = FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes();
                bytes.splice(at..at, fragment.iter().copied());
            }
            1 if !bytes.is_empty() => {
                let end = (at + rng.below(12)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            2 => bytes.insert(at, rng.next() as u8),
            3 => {
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(40)).min(other.len());
                bytes.splice(at..at, other[from..end].iter().copied());
            }
            4 if !bytes.is_empty() => {
                let index = at.min(bytes.len() - 1);
                bytes[index] = rng.next() as u8;
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// `validate` never panics on arbitrary input, and whatever it accepts only reads allowed
/// tables and validates to itself.
#[test]
fn arbitrary_bytes_never_panic_and_accepted_sql_is_stable() {
    let policy = SqlPolicy::retail();
    let allowed: BTreeSet<String> = policy.qualified_tables().collect();
    let seeds: Vec<&[u8]> = GOOD
        .iter()
        .map(|(sql, _)| sql.as_bytes())
        .chain(BAD.iter().map(|(sql, _, _)| sql.as_bytes()))
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for round in 0..12_000 {
        let seed = seeds[round % seeds.len()];
        let other = seeds[rng.below(seeds.len())];
        let bytes = mutate(&mut rng, seed, other);
        let sql = String::from_utf8_lossy(&bytes);
        if let Ok(validated) = validate(&sql, &policy) {
            accepted += 1;
            assert!(validated.tables.is_subset(&allowed), "{sql:?}");
            let again = validate(&validated.sql, &policy);
            assert_eq!(again.as_ref(), Ok(&validated), "{sql:?}");
        }
    }
    // The loop exercises the accepting path too, not only parse errors.
    assert!(accepted > 500, "only {accepted} mutated queries were accepted");
}

/// The fuzz seed corpus holds known injection strings; none of them may pass.
#[test]
fn every_fuzz_seed_is_refused() {
    // The fuzz targets live with the server (server/fuzz), which runs this crate's validator.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/fuzz/corpus/sql_guard");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).expect("the seed corpus exists") {
        let path = entry.expect("a directory entry").path();
        let bytes = std::fs::read(&path).expect("a readable seed");
        let sql = String::from_utf8_lossy(&bytes);
        if let Ok(validated) = retail(&sql) {
            panic!("{} passed as {:?}", path.display(), validated.sql);
        }
        seeds += 1;
    }
    assert!(seeds >= 50, "only {seeds} seeds in {}", dir.display());
}

/// Found by `make fuzz` (seed 1): a placeholder after a dot was accepted and would only have
/// failed in PostgreSQL.
#[test]
fn placeholders_after_a_dot_are_refused() {
    for sql in [
        "SELECT c.$first_name FROM retail.customers c",
        "SELECT c.$1 FROM retail.customers c",
        // Found by CI's `make fuzz`: a placeholder inside the name of a qualified wildcard.
        "SELECT s-tretail.product_typesore_l.$_SEl.O.*rdL",
        "SELECT c.$x.* FROM retail.customers c",
    ] {
        let got = retail(sql);
        assert!(matches!(got, Err(SqlRejection::Placeholder { .. })), "{sql}: {got:?}");
    }
}
