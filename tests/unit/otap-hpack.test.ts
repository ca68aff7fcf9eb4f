// HPACK for BatchArrowRecords.headers: RFC 7541 Appendix C request examples (plain and Huffman,
// with the dynamic table carried from one header block to the next) and our encoder's output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HpackDecoder, HpackEncoder, HpackError } from '../../proto/src/otap/hpack.ts';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

test('RFC 7541 C.3: requests without Huffman, dynamic table carried over', () => {
  const d = new HpackDecoder();
  assert.deepEqual(d.decode(hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d')), [
    [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'],
  ]);
  assert.deepEqual(d.decode(hex('8286 84be 5808 6e6f 2d63 6163 6865')), [
    [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache'],
  ]);
  assert.deepEqual(d.decode(hex('8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65')), [
    [':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value'],
  ]);
});

test('RFC 7541 C.4: requests with Huffman coding', () => {
  const d = new HpackDecoder();
  assert.deepEqual(d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')), [
    [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'],
  ]);
  assert.deepEqual(d.decode(hex('8286 84be 5886 a8eb 1064 9cbf')), [
    [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache'],
  ]);
  assert.deepEqual(d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')), [
    [':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value'],
  ]);
});

test('our encoder round-trips through the decoder; names are lower-cased', () => {
  const e = new HpackEncoder();
  const d = new HpackDecoder();
  const h = { Authorization: 'Bearer abc', 'x-tenant': 'ünïcødé', 'otlp-pdata-size': '12345', long: 'v'.repeat(300) };
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(d.decode(e.encode(h)), [
      ['authorization', 'Bearer abc'], ['x-tenant', 'ünïcødé'], ['otlp-pdata-size', '12345'], ['long', 'v'.repeat(300)],
    ]);
  }
});

test('malformed header blocks are errors, not crashes', () => {
  const bad = ['ff', '82ff', '40', '4005', '0085ffffffff', 'be', '3fe1ffffff0f'];
  for (const b of bad) assert.throws(() => new HpackDecoder().decode(hex(b)), HpackError, b);
  // header list bound
  const e = new HpackEncoder();
  assert.throws(() => new HpackDecoder(4096, 1000).decode(e.encode({ a: 'x'.repeat(2000) })), /header list over/);
});
