import { readFileSync } from 'node:fs';
import { Message } from 'apache-arrow/ipc/metadata/message';
const b = readFileSync('/tmp/kscope-otap-fuzzcase.bin');
const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
let pos = 0;
while (pos < b.length) {
  let len = dv.getInt32(pos, true); pos += 4; if (len === -1) { len = dv.getInt32(pos, true); pos += 4; }
  console.log('msg at', pos, 'metaLen', len);
  const t0 = Date.now();
  const m = Message.decode(b.subarray(pos, pos + len));
  console.log(' decoded header', m.headerType, 'body', m.bodyLength, Date.now() - t0, 'ms');
  const h: any = m.header();
  console.log(' header ok', h?.constructor?.name, h?.nodes?.length, h?.buffers?.length, h?.fields?.length);
  pos += len + Number(m.bodyLength);
}
