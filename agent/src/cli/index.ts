// CLI dispatcher: `agent <command> [options]`. Commands register in `commands`.
import { probeCommand } from './probe.ts';
import { runCommand } from './run.ts';
import { upCommand } from './up.ts';
import { recordCommand } from './record.ts';
import { replayCommand } from './replay.ts';
import { UsageError, type CliIO, type Command } from './command.ts';

export const commands: Command[] = [runCommand, upCommand, probeCommand, recordCommand, replayCommand];

export function topUsage(list: Command[] = commands): string {
  const w = Math.max(...list.map((c) => c.name.length));
  return `Usage: agent <command> [options]\n\nCommands:\n${list.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join('\n')}\n\nRun \`agent <command> --help\` for a command's options.`;
}

const stdio: CliIO = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
};

/** Runs one command line; returns the exit code. Errors become messages, never stack traces,
 * except when KSCOPE_DEBUG is set. */
export async function main(argv: string[], io: CliIO = stdio, list: Command[] = commands): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    io.out(topUsage(list));
    return name ? 0 : 2;
  }
  const cmd = list.find((c) => c.name === name);
  if (!cmd) {
    io.err(`agent: unknown command '${name}'\n\n${topUsage(list)}`);
    return 2;
  }
  const ac = new AbortController();
  // The first signal asks for a clean stop (flush); a second one means "now": exit at once, but
  // say so, since whatever was still held is lost.
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!ac.signal.aborted) return ac.abort();
    io.err(`agent ${cmd.name}: second signal: exiting without flushing`);
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await cmd.run(rest, io, ac.signal);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (err instanceof UsageError || e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'
      || e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      io.err(`agent ${cmd.name}: ${e.message}\n\n${cmd.usage}`);
      return 2;
    }
    io.err(`agent ${cmd.name}: ${e.message}`);
    if (process.env.KSCOPE_DEBUG) io.err(String(e.stack));
    const log = (err as { verifierLog?: string }).verifierLog;
    if (log) io.err(`verifier log (tail):\n${log}`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
