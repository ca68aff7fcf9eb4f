// HPACK (RFC 7541) for BatchArrowRecords.headers. One encoder and one decoder per gRPC stream:
// the decoder's dynamic table persists across batches, as the Go exporter's encoder expects.
// The encoder writes literals without indexing (no Huffman), which every decoder accepts; the
// decoder handles the whole format (indexed fields, incremental indexing, table size updates,
// Huffman strings).
import { HUFFMAN_CODES, HUFFMAN_LENGTHS, STATIC_TABLE } from './hpack-tables.ts';

export class HpackError extends Error {
  override name = 'HpackError';
}

export type HeaderList = [string, string][];

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: false });

function writeInt(out: number[], prefixBits: number, flags: number, v: number): void {
  const max = (1 << prefixBits) - 1;
  if (v < max) {
    out.push(flags | v);
    return;
  }
  out.push(flags | max);
  v -= max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function writeString(out: number[], s: string): void {
  const b = te.encode(s);
  writeInt(out, 7, 0, b.length);
  for (let i = 0; i < b.length; i++) out.push(b[i]);
}

export class HpackEncoder {
  /** Header block for `headers` (names are lower-cased, as HTTP/2 requires). */
  encode(headers: HeaderList | Record<string, string>): Uint8Array {
    const list = Array.isArray(headers) ? headers : Object.entries(headers);
    const out: number[] = [];
    for (const [name, value] of list) {
      out.push(0x00); // literal without indexing, new name
      writeString(out, name.toLowerCase());
      writeString(out, value);
    }
    return Uint8Array.from(out);
  }
}

// Huffman decoding through a binary trie built once from the code table.
interface TrieNode {
  sym: number; // -1 for inner nodes
  zero: TrieNode | null;
  one: TrieNode | null;
}

let huffmanRoot: TrieNode | null = null;

function trie(): TrieNode {
  if (huffmanRoot) return huffmanRoot;
  const root: TrieNode = { sym: -1, zero: null, one: null };
  for (let sym = 0; sym < 256; sym++) {
    const code = HUFFMAN_CODES[sym], len = HUFFMAN_LENGTHS[sym];
    let n = root;
    for (let i = len - 1; i >= 0; i--) {
      const bit = (code >>> i) & 1;
      const next = bit ? n.one : n.zero;
      if (next) n = next;
      else {
        const k: TrieNode = { sym: -1, zero: null, one: null };
        if (bit) n.one = k;
        else n.zero = k;
        n = k;
      }
    }
    n.sym = sym;
  }
  return (huffmanRoot = root);
}

function huffmanDecode(b: Uint8Array): Uint8Array {
  const root = trie();
  const out: number[] = [];
  let n = root;
  let depth = 0;
  let ones = true; // padding must be a prefix of EOS (all ones), at most 7 bits
  for (let i = 0; i < b.length; i++) {
    for (let bit = 7; bit >= 0; bit--) {
      const v = (b[i] >> bit) & 1;
      const next = v ? n.one : n.zero;
      if (!next) throw new HpackError('invalid Huffman code');
      depth++;
      ones = ones && v === 1;
      if (next.sym >= 0) {
        out.push(next.sym);
        n = root;
        depth = 0;
        ones = true;
      } else n = next;
    }
  }
  if (depth > 7 || !ones) throw new HpackError('invalid Huffman padding');
  return Uint8Array.from(out);
}

const ENTRY_OVERHEAD = 32;

export class HpackDecoder {
  private dynamic: [string, string][] = []; // newest first
  private size = 0;
  private maxSize: number;

  constructor(
    /** SETTINGS_HEADER_TABLE_SIZE equivalent: the most the encoder may use (Go uses 4096). */
    private readonly limit = 4096,
    /** Bound of the decoded header list (names + values), like MAX_HEADER_LIST_SIZE. */
    private readonly maxListBytes = 64 * 1024,
  ) {
    this.maxSize = limit;
  }

  private evict(): void {
    while (this.size > this.maxSize && this.dynamic.length) {
      const [n, v] = this.dynamic.pop()!;
      this.size -= n.length + v.length + ENTRY_OVERHEAD;
    }
  }

  private lookup(index: number): [string, string] {
    if (index <= 0) throw new HpackError('header index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1] as [string, string];
    const e = this.dynamic[index - STATIC_TABLE.length - 1];
    if (!e) throw new HpackError(`header index ${index} beyond the dynamic table`);
    return e;
  }

  decode(block: Uint8Array): HeaderList {
    let pos = 0;
    let listBytes = 0;
    const out: HeaderList = [];
    const readInt = (prefixBits: number): number => {
      const max = (1 << prefixBits) - 1;
      let v = block[pos++] & max;
      if (v < max) return v;
      let m = 1;
      for (;;) {
        if (pos >= block.length) throw new HpackError('truncated integer');
        const b = block[pos++];
        v += (b & 0x7f) * m;
        m *= 128;
        if (v > 0xffffffff) throw new HpackError('integer overflow');
        if (b < 0x80) return v;
      }
    };
    const readString = (): string => {
      if (pos >= block.length) throw new HpackError('truncated string');
      const huff = (block[pos] & 0x80) !== 0;
      const len = readInt(7);
      if (pos + len > block.length) throw new HpackError('truncated string');
      const raw = block.subarray(pos, pos + len);
      pos += len;
      return td.decode(huff ? huffmanDecode(raw) : raw);
    };
    const emit = (n: string, v: string) => {
      listBytes += n.length + v.length + ENTRY_OVERHEAD;
      if (listBytes > this.maxListBytes) throw new HpackError(`header list over ${this.maxListBytes} bytes`);
      out.push([n, v]);
    };
    while (pos < block.length) {
      const b = block[pos];
      if (b & 0x80) {
        const [n, v] = this.lookup(readInt(7));
        emit(n, v);
      } else if (b & 0x40) {
        const idx = readInt(6);
        const name = idx ? this.lookup(idx)[0] : readString();
        const value = readString();
        emit(name, value);
        const entry = name.length + value.length + ENTRY_OVERHEAD;
        if (entry > this.maxSize) {
          this.dynamic = [];
          this.size = 0;
        } else {
          this.dynamic.unshift([name, value]);
          this.size += entry;
          this.evict();
        }
      } else if (b & 0x20) {
        const size = readInt(5);
        if (size > this.limit) throw new HpackError(`table size update ${size} over ${this.limit}`);
        this.maxSize = size;
        this.evict();
      } else {
        // literal without indexing (0000) or never indexed (0001)
        const idx = readInt(4);
        const name = idx ? this.lookup(idx)[0] : readString();
        emit(name, readString());
      }
    }
    return out;
  }
}

export function headersToRecord(list: HeaderList): Record<string, string> {
  const r: Record<string, string> = {};
  for (const [n, v] of list) r[n] = n in r ? `${r[n]}, ${v}` : v;
  return r;
}
