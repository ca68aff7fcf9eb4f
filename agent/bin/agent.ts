#!/usr/bin/env -S node --import tsx
// kscope agent entry point: `npx tsx agent/bin/agent.ts <command>`; commands in agent/src/cli.
import { main } from '../src/cli/index.ts';

process.exitCode = await main(process.argv.slice(2));
