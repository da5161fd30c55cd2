// Named prepared statements (issue 4) from Node.js, run by tests/clients/test_prepared_node.py against Sluice in
// transaction pooling: node-postgres queries with `name:` and postgres.js with its defaults (prepare: true).
//
// Usage: node prepared.js <scenario>    connection from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE
// Prints one JSON object on the last line of stdout: what the scenario observed. Exits 0 once it has printed, so the
// Python test decides what is correct; exits 2 on an unexpected exception (message on stderr).
'use strict';

const { md5, newPgPool, newPostgresJs, runScenarios } = require('./common');

const newPool = (max) => newPgPool(max, 60000);

function summary(extra, wrong, errors) {
  return Object.assign(extra, { wrong: wrong.slice(0, 5), wrongCount: wrong.length, errors: errors.slice(0, 5),
                                errorCount: errors.length });
}

// `clients` pool clients (one connection each) run `perClient` transactions of named statements: an insert, a
// read-back, and a statement whose name every client uses for a text of its own; then one named query outside a
// transaction. Meanwhile `count` named queries go through pool.query on whatever connection is free.
async function pgNamed(clients = 40, perClient = 20, count = 1000) {
  const pool = newPool(clients + 10);
  await pool.query('DROP TABLE IF EXISTS node_ps_tx');
  await pool.query('CREATE TABLE node_ps_tx (client int, i int, v text, PRIMARY KEY (client, i))');
  const wrong = [];
  const errors = [];
  const backends = new Set();
  const started = Date.now();
  const transactions = Array.from({ length: clients }, async (_, c) => {
    let client;
    try {
      client = await pool.connect();
      for (let i = 0; i < perClient; i++) {
        const v = `v${c}-${i}`;
        await client.query('BEGIN');
        await client.query({ name: 'ins', text: 'INSERT INTO node_ps_tx VALUES ($1, $2, $3)', values: [c, i, v] });
        const back = await client.query({
          name: 'back',
          text: 'SELECT (SELECT v FROM node_ps_tx WHERE client = $1 AND i = $2) AS v, ' +
                '(SELECT count(*)::int FROM node_ps_tx WHERE client = $1) AS n, pg_backend_pid() AS pid',
          values: [c, i],
        });
        // Same name in every client, different text.
        const own = await client.query({ name: 'own', text: `SELECT $1::int + ${c} AS n`, values: [i] });
        await client.query('COMMIT');
        const outside = await client.query({ name: 'echo', text: "SELECT $1::text || '!' AS e", values: [v] });
        backends.add(back.rows[0].pid);
        const got = [back.rows[0].v, back.rows[0].n, own.rows[0].n, outside.rows[0].e];
        const expected = [v, i + 1, i + c, `${v}!`];
        if (JSON.stringify(got) !== JSON.stringify(expected)) wrong.push({ c, i, got, expected });
      }
    } catch (e) {
      errors.push(`client ${c}: ${e.code || ''} ${e.message}`);
    } finally {
      if (client) client.release();
    }
  });
  const queries = Array.from({ length: count }, async (_, i) => {
    try {
      const r = await pool.query({ name: 'hash', text: 'SELECT $1::int AS n, md5($2::text) AS h, pg_backend_pid() AS pid',
                                   values: [i, `h${i}`] });
      if (r.rows.length !== 1 || r.rows[0].n !== i || r.rows[0].h !== md5(`h${i}`)) wrong.push({ i, rows: r.rows });
      backends.add(r.rows[0].pid);
    } catch (e) {
      errors.push(`query ${i}: ${e.code || ''} ${e.message}`);
    }
  });
  await Promise.all([...transactions, ...queries]);
  const elapsedMs = Date.now() - started;
  const total = (await pool.query(
    "SELECT count(*)::int AS n, count(*) FILTER (WHERE v = 'v' || client || '-' || i)::int AS ok FROM node_ps_tx"))
    .rows[0];
  await pool.query('DROP TABLE node_ps_tx');
  await pool.end();
  return summary({ expected: clients * perClient, total: total.n, right: total.ok, queries: count,
                   backends: backends.size, elapsedMs }, wrong, errors);
}

// A named statement that fails (division by zero) inside a transaction, ROLLBACK, then the same names again; a named
// statement whose text does not parse; a unique violation through a named insert.
async function pgNamedErrors(clients = 10, rounds = 10) {
  const pool = newPool(clients);
  await pool.query('DROP TABLE IF EXISTS node_ps_err');
  await pool.query('CREATE TABLE node_ps_err (client int, i int, PRIMARY KEY (client, i))');
  const wrong = [];
  const errors = [];
  const codes = {};
  const count = (code) => { codes[code] = (codes[code] || 0) + 1; };
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    let client;
    try {
      client = await pool.connect();
      await client.query({ name: 'ins', text: 'INSERT INTO node_ps_err VALUES ($1, $2)', values: [c, 1000] });
      for (let i = 0; i < rounds; i++) {
        await client.query('BEGIN');
        await client.query({ name: 'ins', text: 'INSERT INTO node_ps_err VALUES ($1, $2)', values: [c, i] });
        try {
          await client.query({ name: 'div', text: 'SELECT 100 / $1::int AS q', values: [i % 2] });
          if (i % 2 === 0) wrong.push({ c, i, what: 'division by zero succeeded' });
        } catch (e) {
          count(e.code);
        }
        if (i % 2 === 0) {
          await client.query('ROLLBACK');  // the insert goes
        } else {
          await client.query('COMMIT');
        }
        try {
          await client.query({ name: `bad${i}`, text: 'SELEC $1::int', values: [i] });
          wrong.push({ c, i, what: 'syntax error accepted' });
        } catch (e) {
          count(e.code);
        }
        try {
          await client.query({ name: 'ins', text: 'INSERT INTO node_ps_err VALUES ($1, $2)', values: [c, 1000] });
          wrong.push({ c, i, what: 'duplicate accepted' });
        } catch (e) {
          count(e.code);
        }
        const r = await client.query({ name: 'div', text: 'SELECT 100 / $1::int AS q', values: [4] });
        if (r.rows[0].q !== 25) wrong.push({ c, i, q: r.rows[0].q });
      }
      const mine = await client.query({ name: 'mine', text: 'SELECT array_agg(i ORDER BY i) AS ids FROM node_ps_err ' +
                                                            'WHERE client = $1', values: [c] });
      const expected = [...Array.from({ length: rounds }, (_, i) => i).filter((i) => i % 2 === 1), 1000];
      if (JSON.stringify(mine.rows[0].ids) !== JSON.stringify(expected)) wrong.push({ c, ids: mine.rows[0].ids });
    } catch (e) {
      errors.push(`client ${c}: ${e.code || ''} ${e.message}`);
    } finally {
      if (client) client.release();
    }
  }));
  await pool.query('DROP TABLE node_ps_err');
  await pool.end();
  return summary({ codes }, wrong, errors);
}

// prepare: postgres.js's default (true): every query a named statement, cached per connection.
const connectJs = (max) => newPostgresJs({ max, prepare: true, connectTimeoutS: 60 });

// `instances` postgres.js instances of `max` connections each: `count` parameterised queries at once per instance
// (postgres.js pipelines on each connection) and `transactions` sql.begin blocks writing and reading back.
async function postgresJsDefaults(instances = 4, max = 10, count = 500, transactions = 100) {
  const sqls = Array.from({ length: instances }, () => connectJs(max));
  const setup = sqls[0];
  await setup`DROP TABLE IF EXISTS node_pgjs_ps`;
  await setup`CREATE TABLE node_pgjs_ps (inst int, i int, v text, PRIMARY KEY (inst, i))`;
  const wrong = [];
  const errors = [];
  const backends = new Set();
  const work = [];
  sqls.forEach((sql, k) => {
    for (let i = 0; i < count; i++) {
      work.push((async () => {
        try {
          const rows = await sql`SELECT ${i}::int * ${k + 1}::int AS n, ${'v' + i}::text AS s,
                                        md5(${`${k}.${i}`}::text) AS h, pg_backend_pid() AS pid`;
          if (rows.length !== 1 || rows[0].n !== i * (k + 1) || rows[0].s !== `v${i}` || rows[0].h !== md5(`${k}.${i}`)) {
            wrong.push({ k, i, rows });
          } else {
            backends.add(rows[0].pid);
          }
        } catch (e) {
          errors.push(`query ${k}.${i}: ${e.code || ''} ${e.message}`);
        }
      })());
    }
    for (let i = 0; i < transactions; i++) {
      work.push((async () => {
        try {
          const got = await sql.begin(async (tx) => {
            await tx`INSERT INTO node_pgjs_ps VALUES (${k}, ${i}, ${`t${k}-${i}`})`;
            const [row] = await tx`SELECT v, pg_backend_pid() AS pid FROM node_pgjs_ps WHERE inst = ${k} AND i = ${i}`;
            return row.v;
          });
          if (got !== `t${k}-${i}`) wrong.push({ k, i, got });
        } catch (e) {
          errors.push(`transaction ${k}.${i}: ${e.code || ''} ${e.message}`);
        }
      })());
    }
  });
  await Promise.all(work);
  // An error inside sql.begin rolls back; the statements prepared on that connection stay usable.
  const codes = [];
  for (let r = 0; r < 3; r++) {
    try {
      await setup.begin(async (tx) => {
        await tx`INSERT INTO node_pgjs_ps VALUES (${-1}, ${r}, 'rolled back')`;
        await tx`SELECT 1 / ${0}::int AS x`;
      });
    } catch (e) {
      codes.push(e.code);
    }
  }
  const [totals] = await setup`SELECT count(*)::int AS n, count(*) FILTER (WHERE v = 't' || inst || '-' || i)::int AS ok,
                                      count(*) FILTER (WHERE inst = -1)::int AS rolled
                               FROM node_pgjs_ps`;
  await setup`DROP TABLE node_pgjs_ps`;
  await Promise.all(sqls.map((sql) => sql.end({ timeout: 5 })));
  return summary({ queries: instances * count, expected: instances * transactions, total: totals.n, right: totals.ok,
                   rolled: totals.rolled, codes, backends: backends.size }, wrong, errors);
}

const scenarios = { 'pg-named': pgNamed, 'pg-named-errors': pgNamedErrors, 'postgres-js-defaults': postgresJsDefaults };

runScenarios('prepared.js', scenarios);
