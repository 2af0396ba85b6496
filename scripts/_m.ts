import pg from 'pg';
import { migrateSchema } from '../src/db/migrate.js';
const c = new pg.Client('postgres://postgres@127.0.0.1:5432/test');
await c.connect();
await c.query('DROP SCHEMA IF EXISTS stepping CASCADE');
console.log(await migrateSchema(c, 'stepping'));
await c.end();
