// The committed (prebuilt) BPF objects must be built from the committed sources: each
// bpf/<probe>/<probe>.bpf.o.srchash holds the hash bpf/srchash.sh computed when the object was
// built; it is recomputed here, in TypeScript, the same way. Fix a failure with `make -C bpf`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bpfDir = fileURLToPath(new URL('../../bpf/', import.meta.url));
const probes = ['tcp', 'proc'];

/** sha256 over the lines "<sha256 hex>  <path>\n" of the probe's sources, paths relative to bpf/. */
function sourceHash(probe: string, dir = bpfDir): string {
  const includes = readdirSync(`${dir}include`).filter((f) => f.endsWith('.h')).sort().map((f) => `include/${f}`);
  const files = [`${probe}/${probe}.bpf.c`, `${probe}/${probe}.h`, ...includes];
  let manifest = '';
  for (const f of files) manifest += `${createHash('sha256').update(readFileSync(dir + f)).digest('hex')}  ${f}\n`;
  return createHash('sha256').update(manifest).digest('hex');
}

for (const p of probes) {
  test(`bpf/${p}/${p}.bpf.o is up to date with its sources`, () => {
    const obj = `${bpfDir}${p}/${p}.bpf.o`;
    assert.ok(existsSync(obj), `${obj} missing: run make -C bpf`);
    const elf = readFileSync(obj);
    assert.deepEqual([...elf.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], 'not an ELF file');
    assert.equal(elf.readUInt16LE(18), 247, 'ELF machine is not EM_BPF');
    const recorded = readFileSync(`${obj}.srchash`, 'utf8').trim();
    assert.equal(recorded, sourceHash(p), `bpf/${p}/${p}.bpf.o is stale: run make -C bpf and commit the objects`);
  });
}

test('the TypeScript hash agrees with bpf/srchash.sh (what make writes)', () => {
  for (const p of probes) {
    const r = spawnSync('sh', ['./srchash.sh', p], { cwd: bpfDir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), sourceHash(p));
  }
});

test('the hash changes when a source changes (the check can fail)', () => {
  // a copy of the sources with one header altered: both hashes move, and still agree
  const dir = mkdtempSync(join(tmpdir(), 'kscope-srchash-')) + '/';
  try {
    for (const d of ['tcp', 'include']) cpSync(bpfDir + d, dir + d, { recursive: true });
    cpSync(`${bpfDir}srchash.sh`, `${dir}srchash.sh`);
    const shHash = () => spawnSync('sh', ['./srchash.sh', 'tcp'], { cwd: dir, encoding: 'utf8' }).stdout.trim();
    assert.equal(sourceHash('tcp', dir), sourceHash('tcp'));
    appendFileSync(`${dir}tcp/tcp.h`, '\n');
    assert.notEqual(sourceHash('tcp', dir), sourceHash('tcp'));
    assert.equal(shHash(), sourceHash('tcp', dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.notEqual(sourceHash('tcp'), sourceHash('proc'));
});
