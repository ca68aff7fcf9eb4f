// Small formatting helpers for decoded fields (only called lazily, off the hot path).
import { constants } from 'node:os';
import { AF_INET, AF_INET6 } from './layouts.ts';

const errnoNames = new Map<number, string>();
for (const [name, code] of Object.entries(constants.errno)) if (!errnoNames.has(code)) errnoNames.set(code, name);

/** 'ECONNREFUSED' for 111, undefined for 0 or unknown codes. */
export function errnoName(code: number): string | undefined {
  return code > 0 ? errnoNames.get(code) : undefined;
}

/** Text form of a 16-byte address field at `off` (IPv4 uses its first 4 bytes). */
export function formatAddress(u8: Uint8Array, off: number, family: number): string {
  if (family === AF_INET) return `${u8[off]}.${u8[off + 1]}.${u8[off + 2]}.${u8[off + 3]}`;
  if (family !== AF_INET6) return '';
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((u8[off + i] << 8) | u8[off + i + 1]);
  // RFC 5952: compress the longest run (>= 2) of zero words, the first one on ties.
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
