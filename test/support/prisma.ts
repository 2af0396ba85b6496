/**
 * A Prisma client generated for the adapter tests, offline.
 *
 * Prisma 7's client needs no query engine binary (its query compiler is WebAssembly shipped
 * in @prisma/client), and `prisma generate` uses only the WebAssembly schema tools shipped
 * in the prisma package. The CLI nevertheless checks for its schema engine binary before
 * every command and tries to download it (binaries.prisma.sh: unreachable here) unless
 * PRISMA_SCHEMA_ENGINE_BINARY names an existing file. `generate` never runs that engine, so
 * we point the variable at a stub that fails loudly if anything ever does. The install
 * scripts of prisma and @prisma/engines are not run (package.json allowScripts): the
 * engines' postinstall would try the same download.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The part of a generated PrismaClient the tests use (the generated types are not known at compile time). */
export interface PrismaTransactionClient {
  $queryRawUnsafe(query: string, ...values: unknown[]): Promise<unknown>;
  $executeRawUnsafe(query: string, ...values: unknown[]): Promise<number>;
  adapterOrder: { create(args: { data: { id: string } }): Promise<unknown> };
}

/** A generated PrismaClient instance. */
export interface PrismaClientLike extends PrismaTransactionClient {
  $transaction<T>(
    body: (tx: PrismaTransactionClient) => Promise<T>,
    options?: { maxWait?: number; timeout?: number },
  ): Promise<T>;
  $disconnect(): Promise<void>;
}

/** A generated client module; remove() deletes it. */
export interface GeneratedPrisma {
  /** A client on `url` through @prisma/adapter-pg. */
  connect(url: string): Promise<PrismaClientLike>;
  remove(): Promise<void>;
}

const SCHEMA = `
generator client {
  provider = "prisma-client"
  output   = "./client"
}

datasource db {
  provider = "postgresql"
}

model AdapterOrder {
  id String @id
  @@map("adapter_orders")
}
`;

async function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`prisma generate failed (exit ${code}):\n${output}`);
}

/**
 * Generates a client for a one-model schema (table adapter_orders) under node_modules/.cache,
 * where its imports of @prisma/client resolve and git and the linters do not look.
 */
export async function generatePrisma(): Promise<GeneratedPrisma> {
  const dir = path.join(
    ROOT,
    'node_modules',
    '.cache',
    `stepping-test-prisma-${randomBytes(4).toString('hex')}`,
  );
  await mkdir(dir, { recursive: true });
  const stub = path.join(dir, 'schema-engine-not-installed');
  await writeFile(
    stub,
    '#!/bin/sh\necho "the Prisma schema engine is not installed (offline test set-up); only prisma generate is supported" >&2\nexit 1\n',
  );
  await chmod(stub, 0o755);
  await writeFile(path.join(dir, 'schema.prisma'), SCHEMA);
  await run(
    process.execPath,
    [
      path.join(ROOT, 'node_modules', 'prisma', 'build', 'index.js'),
      'generate',
      '--schema',
      path.join(dir, 'schema.prisma'),
    ],
    {
      ...process.env,
      PRISMA_SCHEMA_ENGINE_BINARY: stub,
      // No update check or telemetry request (no network here).
      CHECKPOINT_DISABLE: '1',
      PRISMA_HIDE_UPDATE_MESSAGE: '1',
    },
  );
  // Prisma generates TypeScript: a test process running compiled (plain node) loads tsx's
  // hooks for it here, only in the files that use Prisma. The generated code is ESM (it
  // reads import.meta); said so, tsx's ESM hooks load it as such.
  await writeFile(path.join(dir, 'client', 'package.json'), '{ "type": "module" }\n');
  if (!import.meta.url.endsWith('.ts')) (await import('tsx/esm/api')).register();
  const generated = (await import(path.join(dir, 'client', 'client.ts'))) as {
    PrismaClient: new (options: { adapter: unknown }) => PrismaClientLike;
  };
  const { PrismaPg } = await import('@prisma/adapter-pg');
  return {
    async connect(url) {
      return new generated.PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: 3 }) });
    },
    async remove() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
