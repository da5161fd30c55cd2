// postgres.js (the `postgres` package, prepare: false) scenarios run by tests/clients/test_node.py against Sluice.
//
// Usage: node postgres_js.js <scenario>    connection from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE
// Prints one JSON object on the last line of stdout: what the scenario observed. Exits 0 once it has printed, so the
// Python test decides what is correct; exits 2 on an unexpected exception (message on stderr).
'use strict';

const { newPostgresJs, runScenarios } = require('./common');

// Transaction pooling without named statements.
const connect = (max = 10) => newPostgresJs({ max, prepare: false, connectTimeoutS: 30 });

// `count` parameterised queries at once over `max` connections (postgres.js pipelines on each connection).
async function simpleQueries(count = 1000, max = 10) {
  const sql = connect(max);
  const wrong = [];
  const errors = [];
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    try {
      const rows = await sql`SELECT ${i}::int AS n, ${'v' + i}::text AS s, repeat('x', ${i % 50}::int) AS pad`;
      if (rows.length !== 1 || rows[0].n !== i || rows[0].s !== `v${i}` || rows[0].pad.length !== i % 50) {
        wrong.push({ i, rows });
      }
    } catch (e) {
      errors.push(`${i}: ${e.code || ''} ${e.message}`);
    }
  }));
  const multi = await sql.unsafe('SELECT 1 AS a; SELECT 2 AS b').simple();
  await sql.end({ timeout: 5 });
  return { queries: count, wrong: wrong.slice(0, 5), wrongCount: wrong.length, errors: errors.slice(0, 5),
           errorCount: errors.length, multi: multi.map((r) => r[0]) };
}

// sql.begin commits; a throw inside sql.begin rolls back; a unique violation rejects with code 23505.
async function transactions() {
  const sql = connect(4);
  const seen = {};
  try {
    await sql`DROP TABLE IF EXISTS node_pgjs_tx`;
    await sql`CREATE TABLE node_pgjs_tx (id int PRIMARY KEY)`;
    seen.inside = await sql.begin(async (tx) => {
      await tx`INSERT INTO node_pgjs_tx VALUES (${1})`;
      const [row] = await tx`SELECT count(*)::int AS n FROM node_pgjs_tx`;
      return row.n;
    });
    try {
      await sql.begin(async (tx) => {
        await tx`INSERT INTO node_pgjs_tx VALUES (${2})`;
        throw new Error('roll back');
      });
    } catch (e) {
      seen.rollbackError = e.message;
    }
    try {
      await sql`INSERT INTO node_pgjs_tx VALUES (${1})`;
    } catch (e) {
      seen.code = e.code;
    }
    const [row] = await sql`SELECT array_agg(id ORDER BY id) AS ids FROM node_pgjs_tx`;
    seen.ids = row.ids;
    await sql`DROP TABLE node_pgjs_tx`;
  } finally {
    await sql.end({ timeout: 5 });
  }
  return seen;
}

const scenarios = { 'simple-queries': simpleQueries, transactions };

runScenarios('postgres_js.js', scenarios);
