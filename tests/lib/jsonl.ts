// Reading a JSON-lines file that a running exporter is still appending to.
import { existsSync, readFileSync } from 'node:fs';

/** The file's complete lines (none when it does not exist): the writer may be part-way through the last one. */
export function completeLines(file: string): string[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter((l) => l.trim() !== '');
}
