// OTLP/HTTP Content-Encodings as core's confighttp accepts them (gzip, deflate, zlib, zstd, snappy,
// x-snappy-framed; lz4 is not supported here): each one round-trips a real OTLP protobuf request
// through the real receiver, each one's decompression bomb answers 413 (bounded by
// max_request_body_size), corrupt bodies 400, and unknown encodings 415.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync, gzipSync } from 'node:zlib';
import snappy from 'snappyjs';
import * as zstdNapi from 'zstd-napi';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../collector/src/config/load.ts';
import { Collector } from '../../collector/src/collector.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { captureExporterFactory, sinkOf } from '../../collector/src/testing/components.ts';
import { testLogger } from '../../collector/src/testing/fixtures.ts';
import type { OtlpReceiver } from '../../collector/src/receivers/otlp/index.ts';
import { decodeSignal, encodeSignal } from '../../proto/src/otlp/index.ts';
import { agentTraces } from '../../proto/src/otlp/fixtures.ts';
import { zstdCompress } from '../../proto/src/zstd.ts';

const LIMIT = 1024 * 1024; // max_request_body_size below
const MiB = 1024 * 1024;

let collector: Collector;
let url: string;

before(async () => {
  const cfg = parseConfig(parseYaml(`
receivers: { otlp: { protocols: { http: { endpoint: "127.0.0.1:0", max_request_body_size: ${LIMIT} } }, metadata_keys: [content-encoding] } }
exporters: { capture/enc: {} }
service:
  telemetry: { metrics: { address: "" } }
  pipelines: { traces: { receivers: [otlp], exporters: [capture/enc] } }
`));
  collector = new Collector(cfg, { registry: defaultRegistry().register(captureExporterFactory), logger: testLogger() });
  await collector.start();
  const r = collector.service.components.find((c) => c.kind === 'receiver')!.component as OtlpReceiver;
  url = `http://127.0.0.1:${r.server.http!.port}/v1/traces`;
});

after(async () => {
  await collector.shutdown();
});

async function post(body: Uint8Array, encoding: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-protobuf', 'content-encoding': encoding }, body: body as never });
  return { status: res.status, text: Buffer.from(await res.arrayBuffer()).toString('latin1') };
}

/** Posts `compressed` and checks that the pipeline got exactly `payload` (an OTLP request). */
async function roundTrip(payload: Uint8Array, compressed: Uint8Array, encoding: string): Promise<void> {
  const sink = sinkOf('capture/enc', 'traces');
  const n = sink.batches.length;
  const r = await post(compressed, encoding);
  assert.equal(r.status, 200, `${encoding}: ${r.text}`);
  assert.equal(sink.batches.length, n + 1, encoding);
  const got = sink.batches[n];
  assert.equal(got.ctx.metadata?.['content-encoding'], encoding);
  assert.deepEqual(encodeSignal('traces', got.batch), Buffer.from(payload), `${encoding}: the decoded request is the one sent`);
  assert.deepEqual(got.batch, decodeSignal('traces', payload));
}

// ---- snappy framing format, written here from google/snappy framing_format.txt ----------------

/** CRC-32C, bit by bit (the receiver uses a table); checked against RFC 3720's vector below. */
function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of data) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
const masked = (crc: number) => ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;

function chunk(type: number, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUIntLE(payload.length, 1, 3);
  return Buffer.concat([h, payload]);
}
const STREAM_ID = chunk(0xff, Buffer.from('sNaPpY'));

/** Framed stream: 64 KiB chunks, compressed (type 0) or, with `raw`, stored (type 1). */
function framed(data: Uint8Array, opts: { raw?: boolean; chunkSize?: number } = {}): Buffer {
  const parts = [STREAM_ID];
  const size = opts.chunkSize ?? 65536;
  for (let i = 0; i < data.length; i += size) {
    const u = Buffer.from(data.subarray(i, i + size));
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(masked(crc32c(u)));
    parts.push(opts.raw ? chunk(0x01, Buffer.concat([crc, u])) : chunk(0x00, Buffer.concat([crc, snappy.compress(u)])));
  }
  return Buffer.concat(parts);
}

/** agentTraces(20) as Go's github.com/golang/snappy v1.0.0 NewBufferedWriter frames it (what core sends for x-snappy-framed). */
const GO_FRAMED_AGENT_TRACES_20 = Buffer.from([
  'ff060000734e6150705900db08007b461988bd3de80aba3d0aa9020a230a0c736572766963652e6e616d6512130a116b65726e656c73636f70652d61',
  '67656e740a1f0a106b38732e636c75737465722e05293c0b0a0970726f642d65752d310a200a120121011908737061114c380a0a087061796d656e74',
  '730a2a0a0c012208706f6405267c121a0a18636865636b6f75742d3763396638643662352d78326b34710a350a0b112cb875696412260a2434663163',
  '326139652d376233642d346538662d396136312d3263356438653066336231370a1c0a0d0137086e6f640dcc080b0a09010d202d612d30330a210a13',
  '011e106465706c6f05940988080a0a081188040a1b09c61c636f6e7461696e650de930050a03617070128b3b0a180a0f3d1cf05e2f7463701205302e',
  '312e301287030a109cb86dfe747d23673f277d1165c4493012080a6d97cc4b34a88b2a0a7463702e61636365707430023900a07d5b782b7a1841610b',
  '5c5d782b7a184a1a0a116e6574776f726b2e7472616e73706f72740178207463704a160a0c6e650d1c3879706512060a04697076344a230a1411182c',
  '706565722e6164647265737301f52c31302e302e332e31374a180a15590525007001591c0318a4094a240a15113f106c6f63616c4240001c322e3331',
  '4a190a123626000d410c903f4a1d194158696f2e62797465735f73656e74120418d798204a210a19113a151f347265636569766564120418baf03b01',
  '5d006b4566502e7463702e737274745f7573120318e9254a1c0a161d1b0472652516f0496d697473120218007a141210636f6e6e656374696f6e2072',
  '65736574180285010101000012f1020a103dc12752693f26b99320430c9fdd3dfd1208b7664dadf3ecb1eb2a0b7463702e63093d1830033940e28c5b',
  '258b0c9e87cf5d0109d28b0100225a8b01080a0a08258b08372e345e8a0104b062fe8a01728a0108b3802c7e8a0108f8db1b628a01048c1e728a0131',
  '7478f4020a10e182efb42aadf221fa29631e6653a88212088813ceda452a4de42a3a74010880249c29740c85c1185ee2740100245a7401080c0a0a25',
  '741831322e39394a194e0003100418debd03fe770172770108f580077e77010898b40262770104f72172770100004deb78f2020a1024114daca61d82',
  '8536ca40fdf4de002e120807fb54b8dd1840de2a36750408c066ab29760c8a9b885cfe76015276012037322e31362e302e355eec0204af4bfe750172',
  '750108f0f9277e750108c4c12162750104d70c92750141ec648a49e24fe8dca2ab3c624e3443eef7281208541309c8633e25d23eec020800a9ba2976',
  '08325c19feec026aec020c2e3235305eec020895fb02fe77017277010886bd0d7e77010887f00562770104e90572770100014dec74f3020a103e89c3',
  'cb0c35a1a507536ddfa65b5a99120803ec8a91a41f11d03e77010840ebc929770884ddb4e6ed029262075a620404aaaafe620476620408b68c207e76',
  '0108b98e1a62760104e71a927601e14d64ec121c2cae0b8761c74315fffa03dc1c1208649b8662b62248f73a620408802dd92975080a1d45e675018e',
  '4c075a7401048ad5feea0276ea0208c6ef107e740108c3932762740104bc0b92740181616427a39c04110766ada7cca5acf505deeb120806d28a905f',
  '1b15af3eea0208c06fe8297508d385c0e6c108f24d0704db85fe770176770108c4cb027e770108b1fe0962770104b018727701f14d8161647fc41066',
  'bc34dfc7182fb308cdf556e91208d9a077996f3425f03e77010800b2f7297708805516fe7701567701824e0704fc0efed70572d70508eaf31e7e7601',
  '0486ce664e0700e67661041e3a0a74f2020a10f445037e53f9a17a00a208c9f82da5e212089695679d91c8df643a61040840f40685580c41e901f4fe',
  '75015675010e380de94d5a390d04de1dfe750172750108d7c1247e750108ce8b2462eb02048f06a2eb0264f481a46e1cc2a0c51f01c9c73851be0812',
  '083c0d4eef5068ab243eeb0208803616297608c98159e6c308ee4c0704aed7fe610476610408aae20e7e760104b2dd66610404ef227276011ec20841',
  'eb68ea76e8ff9b32a39e98e85ee90c733e0312088075cb4ecfe86c2f2a3a250d08c07825297608b7e110e67601ea4d0704bbfcfe750176750108e6b7',
  '287e7501088edb1c62eb0204fc03927501a1d6647c0a66318d098e578f3a23464e4aa195120814632bc88a347c013a60040800bb34297408579bdbfe',
  '60046a60046e990e04d084fe760176760108e4ea167e760108ddd63a62760104b81992760174f4020a10846764119aa680085015a2fcea7ccc7e1208',
  '0542ed0c58d6dc643eeb020840fd43297708481ab30509d284116ec308f94c5a3a0a0894ae01fed80572d80508e5da237e770104b4e266111304d90e',
  'a2770164a07b827454a0c6d115e08c5adf82595c1208d390d938e46abf223e770108803f53256e0c411f6293e662046e7701f94e5a770104b689fe25',
  '0d76250d08b88d267e770108edfd0a62ee0204a4027277011e3a0aa1d96456b5b2fb12f94a1963aa62875db5eabe120819534a2c880d12543a640408',
  'c08162297608871044e66404ee4e0704a59ffeec0276ec0208f6a32a7e7501089eb91662750104dd137275012e4e07648cfacd637c95a412a35c43c0',
  'e155c2e31208fcd8d3706a37e5bc3eec020800c471297608b64cade67601ea4e0704868cfe75017675010486ea824e0708abf70d62750104d9019275',
  '01e14e64a4940c3a0bb912e332620ba0afddec121208e8a69d500dcf30ae3e7501084006812975082eeaa50509fed80542d8058561e54f5aaf0b04f8',
  '7cfed70572d705089499337eeb0208d1962662760104fc1d7276019160217664c6178e5c2a1831688e23f1540c713358120800a3f5f93bc98d3f3a60',
  '0408804890256c1041a7483a5ffee7157ae7155ad60504a390feec0276ec0208d0d7187e760104f19166c408008e76af0b2e760164a94a5c72629779',
  'beb2b60e716b6cdab4120836f5b7e82bf905773eec0208c08a9f297708027846fe770156770145ec12e8155aec0204d622feec0276ec0204e0047e76',
  '0108e6e60362ec0204cd0f72ec02000216e715a01a2768747470733a2f2f6f70656e74656c656d657472792e696f2f736368656d61732f312e32362e',
  '30',
].join(''), 'hex');

const payload = encodeSignal('traces', agentTraces(200)); // ~75 KB: two 64 KiB snappy frames
const zeros = Buffer.alloc(8 * MiB); // 8× the limit; compresses to well under it

test('CRC-32C of the test encoder matches RFC 3720 (so framed streams are checked independently)', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
});

test('gzip, deflate and zlib round-trip', async () => {
  await roundTrip(payload, gzipSync(payload), 'gzip');
  await roundTrip(payload, deflateSync(payload), 'deflate');
  await roundTrip(payload, deflateSync(payload), 'zlib');
  await roundTrip(payload, payload, 'identity');
});

test('zstd round-trips: frames with a declared size (zstd-napi) and streamed ones (@mongodb-js/zstd)', async () => {
  await roundTrip(payload, zstdNapi.compress(payload), 'zstd');
  await roundTrip(payload, await zstdCompress(payload, 1), 'zstd');
  const c = new zstdNapi.Compressor();
  c.setParameters({ compressionLevel: 3, contentSizeFlag: false });
  await roundTrip(payload, c.compress(payload), 'zstd');
});

test('snappy round-trips as the block format, and as framed (core\'s fallback for older senders)', async () => {
  await roundTrip(payload, snappy.compress(Buffer.from(payload)), 'snappy');
  await roundTrip(payload, framed(payload), 'snappy');
});

test('x-snappy-framed round-trips: compressed and stored chunks, skippable chunks, Go\'s writer', async () => {
  await roundTrip(payload, framed(payload), 'x-snappy-framed');
  await roundTrip(payload, framed(payload, { raw: true }), 'x-snappy-framed');
  await roundTrip(payload, framed(payload, { chunkSize: 1000 }), 'x-snappy-framed');
  const f = framed(payload);
  const withSkippable = Buffer.concat([f.subarray(0, 10), chunk(0x80, Buffer.from('skip me')), chunk(0xfe, Buffer.alloc(3)), f.subarray(10), STREAM_ID]);
  await roundTrip(payload, withSkippable, 'x-snappy-framed');
  const go = encodeSignal('traces', agentTraces(20));
  await roundTrip(go, GO_FRAMED_AGENT_TRACES_20, 'x-snappy-framed');
  await roundTrip(go, GO_FRAMED_AGENT_TRACES_20, 'snappy');
});

test('decompression bombs answer 413 for every encoding, without materialising the output', async () => {
  const huge = Buffer.alloc(64 * MiB);
  const streamed = new zstdNapi.Compressor();
  streamed.setParameters({ compressionLevel: 3, contentSizeFlag: false });
  const bombs: Array<[string, Uint8Array]> = [
    ['gzip', gzipSync(huge)],
    ['deflate', deflateSync(huge)],
    ['zlib', deflateSync(huge)],
    ['zstd', zstdNapi.compress(huge)], // declared size: refused from the frame header
    ['zstd', streamed.compress(huge)], // no declared size: stopped while streaming
    ['snappy', snappy.compress(zeros)],
    ['snappy', framed(zeros)],
    ['x-snappy-framed', framed(zeros)],
  ];
  const before = process.memoryUsage().arrayBuffers;
  for (const [enc, bomb] of bombs) {
    assert.ok(bomb.length < LIMIT, `${enc} bomb fits under the body limit (${bomb.length})`);
    const r = await post(bomb, enc);
    assert.equal(r.status, 413, `${enc} bomb of ${bomb.length} bytes: ${r.text}`);
    assert.match(r.text, /decompressed body larger than 1048576 bytes/);
  }
  assert.ok(process.memoryUsage().arrayBuffers - before < 32 * MiB, 'must not have materialised a bomb');

  // Lengths declared beyond the limit are refused before anything is allocated: a snappy block
  // header claiming 4 GiB - 1 (and 2 GiB, which snappyjs alone would read as negative).
  for (const len of [[0xff, 0xff, 0xff, 0xff, 0x0f], [0x80, 0x80, 0x80, 0x80, 0x08], [0x81, 0x80, 0x40]]) {
    const r = await post(Buffer.from([...len, 0x00, 0x00]), 'snappy');
    assert.equal(r.status, 413, `snappy block declaring ${JSON.stringify(len)}: ${r.text}`);
  }
});

test('corrupt bodies answer 400', async () => {
  const f = framed(payload);
  const badCrc = Buffer.from(f);
  badCrc[14] ^= 0xff; // inside the first chunk's checksum
  const cases: Array<[string, Uint8Array, string]> = [
    ['zstd', Buffer.from('not zstd at all'), 'garbage zstd'],
    ['zlib', Buffer.from('not zlib'), 'garbage zlib'],
    ['snappy', Buffer.alloc(0), 'empty snappy block'],
    ['snappy', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 'snappy length over 32 bits'],
    ['x-snappy-framed', badCrc, 'checksum mismatch'],
    ['x-snappy-framed', f.subarray(10), 'no stream identifier'],
    ['x-snappy-framed', f.subarray(0, f.length - 3), 'truncated'],
    ['x-snappy-framed', Buffer.concat([STREAM_ID, chunk(0x02, Buffer.alloc(4))]), 'reserved unskippable chunk'],
    ['x-snappy-framed', Buffer.concat([STREAM_ID, chunk(0x00, Buffer.from([0, 0, 0, 0, 0x81, 0x80, 0x04]))]), 'chunk over 64 KiB'],
    ['x-snappy-framed', snappy.compress(Buffer.from(payload)), 'a block sent as framed'],
  ];
  for (const [enc, body, what] of cases) {
    const r = await post(body, enc);
    assert.equal(r.status, 400, `${what}: ${r.text}`);
  }
});

test('unknown encodings (lz4 included: no lz4 dependency) still answer 415 naming the supported ones', async () => {
  for (const enc of ['lz4', 'br', 'compress', 'gzip, zstd']) {
    const r = await post(payload, enc);
    assert.equal(r.status, 415, enc);
    assert.match(r.text, /unsupported content encoding .*supported: gzip, deflate, zlib, zstd, snappy, x-snappy-framed/);
  }
});
