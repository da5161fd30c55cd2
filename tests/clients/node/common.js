// What the Node.js client scripts (pg_pool.js, postgres_js.js, prepared.js) share: connections from the PG*
// environment variables the Python tests set, md5 for checking results, and the command line (`node <script>
// <scenario>`, one JSON line of results, exit 2 on an unexpected exception).
'use strict';

const crypto = require('crypto');

const md5 = (text) => crypto.createHash('md5').update(text).digest('hex');

// A node-postgres Pool of `max` connections (PGHOST... come from the environment, which `pg` reads itself).
// Required here, not at the top: a script using only postgres.js does not need `pg`, nor the reverse.
function newPgPool(max, connectionTimeoutMillis) {
  const { Pool } = require('pg');
  return new Pool({ max, connectionTimeoutMillis, idleTimeoutMillis: 0 });
}

// A postgres.js instance of `max` connections. `prepare`: false for transaction pooling without named statements,
// true (postgres.js's default) for every query a named statement cached per connection.
function newPostgresJs({ max, prepare, connectTimeoutS }) {
  const postgres = require('postgres');
  return postgres({
    host: process.env.PGHOST,
    port: Number(process.env.PGPORT),
    username: process.env.PGUSER,
    password: process.env.PGPASSWORD,
    database: process.env.PGDATABASE,
    prepare,
    max,
    idle_timeout: 0,
    connect_timeout: connectTimeoutS,
    onnotice: () => {},
  });
}

// Runs the scenario named by the first argument and prints its result as JSON on the last line of stdout.
function runScenarios(script, scenarios) {
  async function main() {
    const scenario = scenarios[process.argv[2]];
    if (!scenario) {
      console.error(`usage: node ${script} ${Object.keys(scenarios).join('|')}`);
      process.exit(2);
    }
    const result = await scenario();
    console.log(JSON.stringify(result));
  }
  main().catch((e) => {
    console.error(e && e.stack ? e.stack : String(e));
    process.exit(2);
  });
}

module.exports = { md5, newPgPool, newPostgresJs, runScenarios };
