#!/usr/bin/env node
/** The `stepping` bin: operator commands (migrate, status, jobs, job, retry, cancel, prune). See operator.ts. */
import { runOperatorCli } from './operator.js';

process.exitCode = await runOperatorCli(process.argv.slice(2));
