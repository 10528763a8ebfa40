-- YAMN (issue 17): a third ping type and chain family, `yamn`, in every column that names
-- ping types or families. Widening a CHECK changes no stored row, so the tables are not
-- rebuilt (millions of pings would be copied, and the foreign keys to them juggled): their
-- definitions are edited in place, SQLite's documented procedure for such changes. The
-- migration runner bumps the schema version and checks the database's integrity in the same
-- transaction (`store::migrate`).
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, '''cpunk-clear'')', '''cpunk-clear'', ''yamn'')')
 WHERE type = 'table' AND name IN ('keys', 'pings');
UPDATE sqlite_schema
   SET sql = replace(sql, 'chain_type IN (''mix'', ''cpunk'')',
                          'chain_type IN (''mix'', ''cpunk'', ''yamn'')')
 WHERE type = 'table' AND name = 'pings';
UPDATE sqlite_schema
   SET sql = replace(sql, 'family IN (''mix'', ''cpunk'')', 'family IN (''mix'', ''cpunk'', ''yamn'')')
 WHERE type = 'table' AND name IN ('uptime_days', 'events');
PRAGMA writable_schema = OFF;
