// probes.max_sockets: the size of the tcp probe's socket-owner table, validated, with an env override.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../collector/src/component/errors.ts';
import { DEFAULT_MAX_SOCKETS, MAX_MAX_SOCKETS, parseAgentConfig } from '../../agent/src/config.ts';

test('probes.max_sockets: default, value, env override', () => {
  assert.equal(parseAgentConfig({}, {}).probes.maxSockets, DEFAULT_MAX_SOCKETS);
  assert.equal(DEFAULT_MAX_SOCKETS, 65_536, 'the size compiled into bpf/tcp (KS_MAX_SOCKETS)');
  assert.equal(parseAgentConfig({ probes: { max_sockets: 262_144 } }, {}).probes.maxSockets, 262_144);
  assert.equal(parseAgentConfig({}, { KSCOPE_CFG__PROBES__MAX_SOCKETS: '131072' }).probes.maxSockets, 131_072);
});

test('probes.max_sockets: bad values name the field', () => {
  for (const bad of [0, 1023, 1.5, 'many', MAX_MAX_SOCKETS + 1, -5]) {
    assert.throws(() => parseAgentConfig({ probes: { max_sockets: bad } }, {}), (e: unknown) =>
      e instanceof ConfigError && e.field === 'probes.max_sockets', `max_sockets: ${String(bad)}`);
  }
});
