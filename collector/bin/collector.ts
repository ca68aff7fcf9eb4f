#!/usr/bin/env -S npx tsx
// kscope collector.
//   npx tsx collector/bin/collector.ts --config FILE          run until SIGTERM/SIGINT
//   npx tsx collector/bin/collector.ts validate --config FILE check the config and exit (0 ok, 2 invalid)
// Config errors name the dotted field and exit with status 2. On SIGTERM/SIGINT receivers stop
// first, processors flush, exporters drain (persistent queues keep what is left on disk).
import { parseArgs } from 'node:util';
import { createLogger } from '../../lib/log.ts';
import { ConfigError } from '../src/component/errors.ts';
import type { Logger } from '../src/component/index.ts';
import { loadConfigFile } from '../src/config/load.ts';
import { validateConfig } from '../src/pipeline/service.ts';
import { fullRegistry } from '../src/registry-full.ts';
import { Collector } from '../src/collector.ts';

const USAGE = 'usage: collector.ts [validate] --config FILE';

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const cmd = positionals[0] ?? 'run';
  if (!values.config || (cmd !== 'run' && cmd !== 'validate')) {
    console.error(USAGE);
    return 64;
  }
  let cfg;
  const registry = fullRegistry();
  try {
    cfg = loadConfigFile(values.config);
    validateConfig(cfg, registry);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`invalid configuration: ${err.message}`);
      return 2;
    }
    throw err;
  }
  if (cmd === 'validate') {
    console.log(`configuration OK: ${cfg.pipelines.length} pipeline(s): ${cfg.pipelines.map((p) => p.id).join(', ')}`);
    return 0;
  }
  const logger = createLogger({ name: 'collector', level: cfg.telemetry.logLevel as never }) as unknown as Logger;
  // Handlers go in before start(): as PID 1 in its container the collector ignores any signal it
  // has no handler for, so a SIGTERM during a long start (disk queue replay, Kubernetes lists)
  // would be lost. One that arrives then is acted on once start() returns.
  let signals = 0;
  let onStop: ((sig: string) => void) | undefined;
  const handle = (sig: string) => {
    if (++signals > 1) {
      logger.warn({ signal: sig }, 'second signal: exiting now');
      setTimeout(() => process.exit(130), 50); // let pino's async destination flush
    }
    if (onStop) onStop(sig);
  };
  process.on('SIGTERM', () => handle('SIGTERM'));
  // `agent up` runs us in its terminal's process group: Ctrl-C is for the agent, which flushes
  // into us and then sends SIGTERM.
  if (process.env.KSCOPE_COLLECTOR_IGNORE_SIGINT === '1') process.on('SIGINT', () => {});
  else process.on('SIGINT', () => handle('SIGINT'));
  let collector: Collector;
  try {
    collector = new Collector(cfg, { registry, logger });
    await collector.start();
  } catch (err) {
    logger.error({ err }, 'collector failed to start');
    return err instanceof ConfigError ? 2 : 1;
  }
  return await new Promise<number>((resolve) => {
    onStop = (sig: string) => {
      logger.info({ signal: sig }, 'shutting down');
      collector.shutdown().then(() => resolve(collector.shutdownTimedOut ? 1 : 0), (err) => {
        logger.error({ err }, 'shutdown failed');
        resolve(1);
      });
    };
    if (signals > 0) onStop('signal during start');
  });
}

main().then(
  (code) => setTimeout(() => process.exit(code), 50), // let pino's async destination flush
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
