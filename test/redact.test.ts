/** Connection strings lose their passwords (every shape) and keep what identifies the database. */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConfigError } from '../src/errors.js';
import { resolveDatabase } from '../src/multidb/sources.js';
import { maskConnectionString, parseConnectionUrl } from '../src/redact.js';

test('maskConnectionString masks the password of every URL and keyword/value shape', () => {
  const cases: [string, string][] = [
    ['postgres://app:hunter2@db:5432/orders', 'postgres://app:***@db:5432/orders'],
    // A '/' in the password: URL parsers end the host there.
    ['postgres://app:pa/ss@db:5432/orders', 'postgres://app:***@db:5432/orders'],
    [
      'postgres://app:1234/secret@db.example.com:5432/orders',
      'postgres://app:***@db.example.com:5432/orders',
    ],
    ['postgres://app:p@ss@db/orders', 'postgres://app:***@db/orders'],
    ['postgres://app:p:a:ss@db/orders', 'postgres://app:***@db/orders'],
    ['postgres://app:a%2Fb%40c@db/orders', 'postgres://app:***@db/orders'],
    ['postgres://app:p?x=@y@db/orders', 'postgres://app:***@db/orders'],
    ['postgres://app:12#ss@db/orders', 'postgres://app:***@db/orders'],
    ['postgres://app:pa ss@db/orders', 'postgres://app:***@db/orders'],
    ['postgres://:secret@db/orders', 'postgres://:***@db/orders'],
    ['postgres://app:@db/orders', 'postgres://app:***@db/orders'],
    ['postgres://app@db/orders', 'postgres://app@db/orders'],
    ['postgres://db/orders', 'postgres://db/orders'],
    [
      'postgresql://app:pw@h1:5432,h2:5433/orders?target_session_attrs=read-write',
      'postgresql://app:***@h1:5432,h2:5433/orders?target_session_attrs=read-write',
    ],
    ['postgres://app:pw@[::1]:5432/orders', 'postgres://app:***@[::1]:5432/orders'],
    [
      'postgres://app:pw@%2Fvar%2Frun%2Fpostgresql/orders',
      'postgres://app:***@%2Fvar%2Frun%2Fpostgresql/orders',
    ],
    [
      'postgres://app@db/orders?password=hunter2&sslmode=require&sslpassword=k3y',
      'postgres://app@db/orders?password=***&sslmode=require&sslpassword=***',
    ],
    ['postgres://db/orders?password=x@y', 'postgres://db/orders?password=***'],
    // An '@' in the query could end a password holding '?': everything before it is hidden.
    ['postgres://app:pw@db/orders?application_name=a@b', 'postgres://app:***@b'],
    ["host=db password='a b' dbname=orders", 'host=db password=*** dbname=orders'],
    ["host=db password = 'it\\'s' dbname=orders", 'host=db password = *** dbname=orders'],
    [
      'host=db password=a\\ b dbname=orders sslpassword=zz',
      'host=db password=*** dbname=orders sslpassword=***',
    ],
    ['PASSWORD=x host=db', 'PASSWORD=*** host=db'],
    // Connection strings inside messages.
    [
      'connect to postgres://u:p/w@h/db failed; then postgres://v:q@h2/db2 (timeout)',
      'connect to postgres://u:***@h2/db2 (timeout)',
    ],
    [
      "ENOENT: no such file or directory, open 'host=x password=sekrit dbname=y'",
      "ENOENT: no such file or directory, open 'host=x password=*** dbname=y'",
    ],
    ['line one postgres://a:b@h/d\nline two', 'line one postgres://a:***@h/d\nline two'],
    [
      'could not connect to postgres://h:5432/db with password=hunter2 as app',
      'could not connect to postgres://h:5432/db with password=*** as app',
    ],
    [
      'HTTP 500 from https://user:pw@api.example/x?token=1',
      'HTTP 500 from https://user:***@api.example/x?token=1',
    ],
    // Nothing to mask.
    ['password authentication failed for user "app"', 'password authentication failed for user "app"'],
    ['connect ECONNREFUSED 127.0.0.1:5432', 'connect ECONNREFUSED 127.0.0.1:5432'],
    ['', ''],
  ];
  for (const [input, expected] of cases) assert.equal(maskConnectionString(input), expected, input);
});

test('resolveDatabase is host:port/dbname, never credentials, even for passwords URL parsers misread', () => {
  const cases: [string, string][] = [
    ['postgres://app:hunter2@db:5432/orders', 'db:5432/orders'],
    ['postgres://app:pa/ss@127.0.0.1:5432/orders', '127.0.0.1:5432/orders'],
    ['postgres://app:1234/secret@db.example.com:5432/orders', 'db.example.com:5432/orders'],
    ['postgres://app:p@ss@db/orders', 'db/orders'],
    ['postgres://app:a%2Fb@db/my%20db', 'db/my db'],
    ['postgres://app:12#ss@db/orders', 'db/orders'],
    ['postgres://:pw@db', 'db/postgres'],
    ['postgresql://app:pw@h1:5432,h2:5433/orders', 'h1:5432,h2:5433/orders'],
    ['postgres://app:pw@[::1]:5432/orders', '[::1]:5432/orders'],
    ['postgres://db/orders?application_name=worker', 'db/orders'],
    ['postgres:///orders', '/orders'],
  ];
  for (const [input, expected] of cases) assert.equal(resolveDatabase(input).id, expected, input);
  assert.deepEqual(resolveDatabase({ id: 'tenant-a', connectionString: 'postgres://x:y/z@h/d' }), {
    id: 'tenant-a',
    connectionString: 'postgres://x:y/z@h/d',
  });
  const refused: [string, RegExp][] = [
    ["host=db password='s3cret' dbname=orders", /keyword\/value strings are not supported.*password=\*\*\*/],
    ['not a url s3cret', /cannot parse the connection string of a database \(16 characters, not shown\)/],
    ['postgres://app:s3cret@db/orders?application_name=a@b', /give the database an id/],
    ['postgres://app:s3cret@bad host/orders', /cannot tell where the credentials/],
  ];
  for (const [input, message] of refused) {
    assert.throws(
      () => resolveDatabase(input),
      (e: unknown) => e instanceof ConfigError && message.test(e.message) && !e.message.includes('s3cret'),
      input,
    );
  }
  assert.throws(
    () => resolveDatabase({ connectionString: '' }),
    (e: unknown) => e instanceof ConfigError && /needs a connection string/.test(e.message),
  );
});

test('parseConnectionUrl says when node-postgres would misread the string', () => {
  assert.equal(parseConnectionUrl('postgres://app:pw@db/orders')?.ambiguity, 'none');
  assert.equal(parseConnectionUrl('postgres://app:a%2Fb@db/orders')?.ambiguity, 'none');
  assert.equal(parseConnectionUrl('postgres://app:a/b@db/orders')?.ambiguity, 'password');
  assert.equal(parseConnectionUrl('postgres://app:pw@db/o?application_name=a@b')?.ambiguity, 'unclear');
  assert.equal(parseConnectionUrl('host=db dbname=x'), null);
});

/** A small deterministic PRNG (mulberry32), so a failure reproduces. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('no random password shows through maskConnectionString or resolveDatabase', () => {
  const next = random(20250101);
  const alphabet = "abcXYZ0123456789/@:%?#=&._-~!$ '\\";
  const templates = [
    (pw: string) => `postgres://app:${pw}@db.example.com:5432/orders`,
    (pw: string) => `postgresql://:${pw}@h1:5432,h2:5433/orders?sslmode=require`,
    (pw: string) => `postgres://app:${pw}@db/orders?application_name=worker`,
    (pw: string) => `failed to reach postgres://app:${pw}@[::1]:5432/orders: timeout`,
    // In a query an unencoded '&' ends the value (for node-postgres too): not generated here.
    (pw: string) => `postgres://db/orders?sslmode=require&password=${pw.replaceAll('&', '%26')}`,
    (pw: string) => `host=db password='${pw.replace(/['\\]/g, '\\$&')}' dbname=orders`,
  ];
  let checked = 0;
  for (let i = 0; i < 3000; i++) {
    const length = 6 + Math.floor(next() * 12);
    const pw = Array.from({ length }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
    for (const template of templates) {
      const url = template(pw);
      const without = template('');
      // Fragments of 4+ characters of the password that the rest of the string does not hold.
      const fragments = new Set<string>();
      for (let a = 0; a + 4 <= pw.length; a++) {
        const fragment = pw.slice(a, a + 4);
        if (!without.includes(fragment) && !'***'.includes(fragment)) fragments.add(fragment);
      }
      const shown = [maskConnectionString(url)];
      try {
        shown.push(resolveDatabase(url.replace(/^failed to reach /, '').replace(/: timeout$/, '')).id);
      } catch (error) {
        assert.ok(error instanceof ConfigError, String(error));
        shown.push(error.message);
      }
      // The masked text holds no password at all, in any reading.
      assert.ok(!shown[0]!.includes(pw) || template('').includes(pw), url);
      for (const text of shown) {
        for (const fragment of fragments) {
          assert.ok(
            !text.includes(fragment),
            `${JSON.stringify(pw)} shows ${JSON.stringify(fragment)} in ${text}`,
          );
        }
      }
      checked += 1;
    }
  }
  assert.equal(checked, 18_000);
});
