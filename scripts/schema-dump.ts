/**
 * A description of an installed engine schema read from the catalogs, in a stable text
 * form: tables and their columns, constraints and indexes; types; functions (signature,
 * language, volatility, security, settings, body); views; grants; comments. Used to prove
 * that a fresh install equals the checked-in sql/schema.dump.sql and equals an install
 * upgraded from the previous version (test/schema-dump.test.ts), and by `npm run db:dump`
 * to rewrite that file:
 *
 *   npm run db:dump            (embedded PostgreSQL, or DATABASE_URL's server)
 *
 * The schema name is written as `<schema>` so two installs under different names compare.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

/** Lines describing `schema` in the connected database, sorted within each section. */
export async function schemaDump(client: pg.ClientBase, schema: string): Promise<string> {
  const q = async (sql: string): Promise<string[]> =>
    (await client.query<{ line: string }>(sql, [schema])).rows.map((r) => r.line);
  const ns = `(SELECT oid FROM pg_namespace WHERE nspname = $1)`;
  const sections: [string, string[]][] = [
    [
      'columns',
      await q(`SELECT format('%s.%s %s%s%s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                             CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                             coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')) AS line
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
               WHERE c.relnamespace = ${ns} AND c.relkind = 'r' ORDER BY c.relname, a.attname`),
    ],
    [
      'table options',
      await q(`SELECT format('%s %s', c.relname, array_to_string(c.reloptions, ',')) AS line
               FROM pg_class c WHERE c.relnamespace = ${ns} AND c.relkind = 'r' AND c.reloptions IS NOT NULL
               ORDER BY 1`),
    ],
    [
      'constraints',
      await q(`SELECT format('%s %s %s', c.relname, k.conname, pg_get_constraintdef(k.oid)) AS line
               FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
               WHERE c.relnamespace = ${ns} ORDER BY 1`),
    ],
    [
      'indexes',
      await q(`SELECT replace(pg_get_indexdef(i.indexrelid), $1 || '.', '<schema>.') AS line
               FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
               WHERE c.relnamespace = ${ns} ORDER BY 1`),
    ],
    [
      'types',
      await q(`SELECT format('%s (%s)', t.typname,
                             (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                              FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0)) AS line
               FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid
               WHERE t.typnamespace = ${ns} AND c.relkind = 'c' ORDER BY 1`),
    ],
    [
      'functions',
      await q(`SELECT format('%s(%s) -> %s %s %s%s%s%s',
                             p.proname, pg_get_function_identity_arguments(p.oid), pg_get_function_result(p.oid),
                             l.lanname,
                             CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END,
                             CASE WHEN p.prosecdef THEN ' security definer' ELSE '' END,
                             coalesce(' set ' || array_to_string(p.proconfig, ' set '), ''),
                             E'\\n    ' || md5(p.prosrc)) AS line
               FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
               WHERE p.pronamespace = ${ns} ORDER BY 1`),
    ],
    [
      'views',
      await q(`SELECT format('%s (%s)', c.relname,
                             (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                              FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0)) AS line
               FROM pg_class c WHERE c.relnamespace = ${ns} AND c.relkind = 'v' ORDER BY 1`),
    ],
    [
      'grants',
      await q(`SELECT format('%s %s to %s', obj, a.privilege_type,
                             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE replace(pg_get_userbyid(a.grantee), $1, '<schema>') END) AS line
               FROM (
                 SELECT 'schema' AS obj, nspacl AS acl, nspowner AS owner FROM pg_namespace WHERE oid = ${ns}
                 UNION ALL SELECT 'relation ' || relname, relacl, relowner FROM pg_class WHERE relnamespace = ${ns}
                 UNION ALL SELECT 'function ' || oid::regprocedure::text, proacl, proowner FROM pg_proc WHERE pronamespace = ${ns}
               ) o, aclexplode(o.acl) a
               WHERE a.grantee <> o.owner
               ORDER BY 1`),
    ],
    [
      'comments',
      await q(`SELECT format('%s %s: %s', CASE d.classoid WHEN 'pg_proc'::regclass THEN 'function' ELSE 'relation' END,
                             CASE d.classoid WHEN 'pg_proc'::regclass THEN d.objoid::regprocedure::text
                                  ELSE d.objoid::regclass::text END, d.description) AS line
               FROM pg_description d
               WHERE d.objsubid = 0 AND (
                 (d.classoid = 'pg_proc'::regclass AND d.objoid IN (SELECT oid FROM pg_proc WHERE pronamespace = ${ns}))
                 OR (d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT oid FROM pg_class WHERE relnamespace = ${ns})))
               ORDER BY 1`),
    ],
  ];
  const text = sections.map(([title, lines]) => `-- ${title}\n${lines.join('\n')}\n`).join('\n');
  return text.split(`${schema}.`).join('<schema>.');
}

/** Where the checked-in description lives. */
export const DUMP_FILE = fileURLToPath(new URL('../sql/schema.dump.sql', import.meta.url));

// `npm run db:dump`: migrate a fresh database and write its description.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { startDatabaseServer, withDatabase } = await import('./embedded-db.js');
  const { migrateSchema } = await import('../src/db/migrate.js');
  const server = await startDatabaseServer();
  const name = `stepping_dump_${process.pid}`;
  const admin = new pg.Client(withDatabase(server.url, 'postgres'));
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
    const c = new pg.Client(withDatabase(server.url, name));
    await c.connect();
    try {
      await migrateSchema(c, 'stepping');
      const header =
        '-- The installed engine schema as scripts/schema-dump.ts describes it (function bodies as\n' +
        '-- md5 of their source). Rewritten by `npm run db:dump`; test/schema-dump.test.ts checks a\n' +
        '-- fresh install and an upgraded one against it.\n\n';
      writeFileSync(DUMP_FILE, header + (await schemaDump(c, 'stepping')));
      console.log(`wrote ${path.relative(process.cwd(), DUMP_FILE)}`);
    } finally {
      await c.end();
    }
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
    await server.stop();
  }
}
