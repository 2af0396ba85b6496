#!/usr/bin/env node
/** The `stepping-worker` bin: serves a steps module until SIGINT/SIGTERM. See worker-cli.ts. */
import { runWorkerCli } from './worker-cli.js';

const code = await runWorkerCli(process.argv.slice(2));
// Exit explicitly: a steps module may hold its own connections or timers open.
process.exit(code);
