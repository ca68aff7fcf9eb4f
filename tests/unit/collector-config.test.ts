import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { parseConfig, substituteEnv } from '../../collector/src/config/load.ts';
import { ConfigReader } from '../../collector/src/config/reader.ts';
import { ConfigError } from '../../collector/src/component/errors.ts';
import { defaultRegistry } from '../../collector/src/components.ts';
import { validateConfig } from '../../collector/src/pipeline/service.ts';

function cfg(yaml: string, env: NodeJS.ProcessEnv = {}) {
  return parseConfig(parseYaml(yaml), env);
}

function expectField(fn: () => unknown, field: string, msg?: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    assert.equal(err.field, field);
    if (msg) assert.match(err.message, msg);
    return true;
  });
}

test('env substitution: whole value becomes a scalar, defaults, $$ escape, missing var names the field', () => {
  const out = substituteEnv({ a: '${env:PORT}', b: 'x-${env:NAME}-y', c: '${env:NOPE:-dflt}', d: '$$5', e: ['${env:T}'] }, '', {
    PORT: '4317',
    NAME: 'n',
    T: 'true',
  }) as Record<string, unknown>;
  assert.deepEqual(out, { a: 4317, b: 'x-n-y', c: 'dflt', d: '$5', e: [true] });
  expectField(() => substituteEnv({ x: { y: '${env:MISSING}' } }, '', {}), 'x.y', /MISSING/);
});

test('reader: durations, sizes, unknown fields and ranges name the dotted path', () => {
  const r = new ConfigReader({ t: '1.5s', s: '2MiB', n: 5, extra: 1 }, 'processors.x');
  assert.equal(r.duration('t', 0), 1500);
  assert.equal(r.size('s', 0), 2 * 1024 * 1024);
  expectField(() => r.num('n', 0, { max: 3 }), 'processors.x.n', /<= 3/);
  expectField(() => r.done(), 'processors.x.extra', /unknown field/);
  expectField(() => new ConfigReader({ d: 'soon' }, 'a').duration('d', 0), 'a.d', /duration/);
});

test('service section: pipelines reference configured components, errors name the entry', () => {
  const base = `
receivers: { nopr: {} }
exporters: { debug: {} }
`;
  expectField(() => cfg(base + 'service: { pipelines: { traces: { receivers: [nopr], exporters: [missing] } } }'), 'service.pipelines.traces.exporters[0]', /missing/);
  expectField(() => cfg(base + 'service: { pipelines: { spans: { receivers: [nopr], exporters: [debug] } } }'), 'service.pipelines.spans');
  expectField(() => cfg(base + 'service: { pipelines: { traces: { receivers: [nopr] } } }'), 'service.pipelines.traces.exporters');
  expectField(() => cfg(base + 'service: { pipelines: {} }'), 'service.pipelines');
  expectField(() => cfg(base + 'bogus: 1\nservice: { pipelines: { traces: { receivers: [nopr], exporters: [debug] } } }'), 'bogus');
  const ok = cfg(base + 'service: { pipelines: { traces/a: { receivers: [nopr], exporters: [debug] } }, telemetry: { metrics: { address: "127.0.0.1:0" } } }');
  assert.equal(ok.pipelines[0].signal, 'traces');
  assert.equal(ok.pipelines[0].id, 'traces/a');
  assert.equal(ok.telemetry.metricsAddress, '127.0.0.1:0');
});

test('factory validation: unknown type and bad component fields name the path', () => {
  const reg = defaultRegistry();
  const c1 = cfg(`
receivers: { nopr: {} }
exporters: { debug: { verbosity: loud } }
service: { pipelines: { traces: { receivers: [nopr], exporters: [debug] } } }`);
  expectField(() => validateConfig(c1, reg), 'receivers.nopr', /unknown receiver type/);
  // with the receiver valid, the exporter's own field is the one named
  const c2 = cfg(`
receivers: { otlp: { protocols: { grpc: { endpoint: "127.0.0.1:0" } } } }
exporters: { debug: { verbosity: loud } }
service: { pipelines: { traces: { receivers: [otlp], exporters: [debug] } } }`);
  expectField(() => validateConfig(c2, reg), 'exporters.debug.verbosity', /loud/);
});

test('the example config collector/testdata/collector.yaml validates with every factory; errors there name the field', async () => {
  const { loadConfigFile } = await import('../../collector/src/config/load.ts');
  const { fullRegistry } = await import('../../collector/src/registry-full.ts');
  const file = new URL('../../collector/testdata/collector.yaml', import.meta.url).pathname;
  const c = loadConfigFile(file, {});
  validateConfig(c, fullRegistry());
  assert.deepEqual(c.pipelines.map((p) => p.id), ['traces', 'metrics', 'logs']);
  const { readFileSync, writeFileSync, mkdtempSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const bad = join(mkdtempSync(join(tmpdir(), 'kscope-cfg-')), 'bad.yaml');
  writeFileSync(bad, readFileSync(file, 'utf8').replace('max_size: 160', 'max_size: 1'));
  expectField(() => validateConfig(loadConfigFile(bad, {}), fullRegistry()), 'processors.histogram_to_exponential.max_size', />= 2/);
});

test('collector binary: validate exits 0 on the example and 2 naming the field on a bad config', async () => {
  const { spawnSync } = await import('node:child_process');
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const root = new URL('../../', import.meta.url).pathname;
  const ok = spawnSync(process.execPath, ['--import', 'tsx', 'collector/bin/collector.ts', 'validate', '--config', 'collector/testdata/collector.yaml'], { cwd: root, encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /configuration OK: 3 pipeline/);
  const bad = join(mkdtempSync(join(tmpdir(), 'kscope-cfg-')), 'bad.yaml');
  writeFileSync(bad, 'receivers: { otlp: { protocols: { http: { endpoint: "nohost" } } } }\nexporters: { debug: {} }\nservice: { pipelines: { traces: { receivers: [otlp], exporters: [debug] } } }\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'collector/bin/collector.ts', 'validate', '--config', bad], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /receivers\.otlp\.protocols\.http\.endpoint: expected host:port/);
});

test('on/off sections refuse other keys: a typo in target_info or resource_to_telemetry_conversion fails validation', () => {
  const reg = defaultRegistry();
  for (const [exp, extra] of [
    ['prometheus', 'target_info: { enabeld: false }'],
    ['prometheusremotewrite', 'endpoint: http://127.0.0.1:9/api/v1/write, resource_to_telemetry_conversion: { enable: true }'],
  ] as const) {
    const c = cfg(`
receivers: { otlp: { protocols: { grpc: { endpoint: "127.0.0.1:0" } } } }
exporters: { ${exp}: { ${extra} } }
service: { pipelines: { metrics: { receivers: [otlp], exporters: [${exp}] } } }`);
    const key = extra.includes('enabeld') ? 'target_info.enabeld' : 'resource_to_telemetry_conversion.enable';
    expectField(() => validateConfig(c, reg), `exporters.${exp}.${key}`, /unknown field/);
  }
});
