// node-postgres (`pg`) scenarios run by tests/clients/test_node.py against Sluice.
//
// Usage: node pg_pool.js <scenario>    connection from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE
// Prints one JSON object on the last line of stdout: what the scenario observed. Exits 0 once it has printed, so the
// Python test decides what is correct; exits 2 on an unexpected exception (message on stderr).
'use strict';

const { md5, newPgPool, runScenarios } = require('./common');

const newPool = (max) => newPgPool(max, 30000);

// `count` queries at once through a Pool of `max` connections; half with parameters (extended protocol, unnamed
// statement), half without (simple protocol). Each result is checked against what was sent.
async function concurrentQueries(count = 2000, max = 50) {
  const pool = newPool(max);
  const wrong = [];
  const errors = [];
  const backends = new Set();
  const started = Date.now();
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    try {
      let row;
      if (i % 2 === 0) {
        const r = await pool.query('SELECT $1::int AS n, md5($2::text) AS h, pg_backend_pid() AS pid', [i, `v${i}`]);
        row = r.rows[0];
        if (r.rows.length !== 1 || row.n !== i || row.h !== md5(`v${i}`)) wrong.push({ i, rows: r.rows });
      } else {
        const r = await pool.query(`SELECT ${i} AS n, md5('v${i}') AS h, pg_backend_pid() AS pid`);
        row = r.rows[0];
        if (r.rows.length !== 1 || row.n !== i || row.h !== md5(`v${i}`)) wrong.push({ i, rows: r.rows });
      }
      backends.add(row.pid);
    } catch (e) {
      errors.push(`${i}: ${e.code || ''} ${e.message}`);
    }
  }));
  const elapsedMs = Date.now() - started;
  await pool.end();
  return { queries: count, wrong: wrong.slice(0, 5), wrongCount: wrong.length, errors: errors.slice(0, 5),
           errorCount: errors.length, backends: backends.size, elapsedMs };
}

// `clients` pool clients each run `perClient` transactions: BEGIN; insert a tagged row; count own rows; COMMIT.
async function transactions(clients = 50, perClient = 10) {
  const pool = newPool(clients);
  const setup = await pool.connect();
  await setup.query('DROP TABLE IF EXISTS node_pg_tx');
  await setup.query('CREATE TABLE node_pg_tx (client int, i int, PRIMARY KEY (client, i))');
  setup.release();
  const wrong = [];
  const errors = [];
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const client = await pool.connect();
    try {
      for (let i = 0; i < perClient; i++) {
        await client.query('BEGIN');
        await client.query('INSERT INTO node_pg_tx VALUES ($1, $2)', [c, i]);
        const r = await client.query('SELECT count(*)::int AS n FROM node_pg_tx WHERE client = $1', [c]);
        await client.query('COMMIT');
        if (r.rows[0].n !== i + 1) wrong.push({ c, i, n: r.rows[0].n });
      }
    } catch (e) {
      errors.push(`${c}: ${e.code || ''} ${e.message}`);
    } finally {
      client.release();
    }
  }));
  const total = (await pool.query('SELECT count(*)::int AS n FROM node_pg_tx')).rows[0].n;
  await pool.query('DROP TABLE node_pg_tx');
  await pool.end();
  return { expected: clients * perClient, total, wrong: wrong.slice(0, 5), errors: errors.slice(0, 5),
           errorCount: errors.length };
}

// A unique violation rejects with code 23505; the same pool client then runs a query and a rolled-back transaction.
async function uniqueViolation() {
  const pool = newPool(2);
  const client = await pool.connect();
  const seen = {};
  try {
    await client.query('DROP TABLE IF EXISTS node_pg_uniq');
    await client.query('CREATE TABLE node_pg_uniq (id int PRIMARY KEY)');
    await client.query('INSERT INTO node_pg_uniq VALUES ($1)', [1]);
    try {
      await client.query('INSERT INTO node_pg_uniq VALUES ($1)', [1]);
      seen.code = null;
    } catch (e) {
      seen.code = e.code;
    }
    await client.query('BEGIN');
    await client.query('INSERT INTO node_pg_uniq VALUES (2)');
    await client.query('ROLLBACK');
    seen.ids = (await client.query('SELECT array_agg(id ORDER BY id) AS ids FROM node_pg_uniq')).rows[0].ids;
    await client.query('DROP TABLE node_pg_uniq');
  } finally {
    client.release();
    await pool.end();
  }
  return seen;
}

const scenarios = { 'concurrent-queries': concurrentQueries, transactions, 'unique-violation': uniqueViolation };

runScenarios('pg_pool.js', scenarios);
