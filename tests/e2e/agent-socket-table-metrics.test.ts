// The live agent sizes the tcp probe's socket-owner table from probes.max_sockets and exports the
// table's counters on /metrics next to the ring's lost events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { hasBpf, requires } from '../lib/env.ts';
import { nativeAvailable } from '../../agent/src/bpf/native.ts';
import { parseAgentConfig } from '../../agent/src/config.ts';
import { Agent } from '../../agent/src/agent.ts';
import { defaultRegistry } from '../../collector/src/components.ts';

test('probes.max_sockets reaches the map; the socket table counters are on /metrics', { timeout: 60_000 }, async (t) => {
  if (!requires(t, hasBpf() && nativeAvailable(), 'root, BPF and the native addon')) return;
  const config = parseAgentConfig({
    probes: { tcp: true, proc: false, max_sockets: 131_072, target_tgid: process.pid },
    enrich: { k8s: { enabled: false } },
    exporter: { type: 'none' },
    server: { address: '127.0.0.1:0' },
    log: { level: 'warn' },
  }, {});
  const agent = new Agent({ config, registry: defaultRegistry() });
  await agent.start();
  try {
    assert.equal(agent.mode, 'live');
    assert.deepEqual(agent.bpfFailures, []);
    // a few connections of this process, so the counters move
    const server = net.createServer((c) => c.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1', () => c.end());
        c.on('close', () => resolve());
        c.on('error', reject);
      });
    }
    server.close();
    await new Promise((r) => setTimeout(r, 300));
    const text = await (await fetch(`http://127.0.0.1:${agent.serverPort}/metrics`)).text();
    const value = (name: string): number => {
      const m = new RegExp(`^${name}\\{probe="tcp"\\} (\\d+)`, 'm').exec(text);
      assert.ok(m, `${name} on /metrics:\n${text.split('\n').filter((l) => l.includes('socket_table')).join('\n')}`);
      return Number(m[1]);
    };
    assert.equal(value('kscope_agent_tcp_socket_table_capacity'), 131_072);
    assert.ok(value('kscope_agent_tcp_socket_table_inserts_total') >= 5);
    assert.ok(value('kscope_agent_tcp_socket_table_deletes_total') >= 1);
    assert.equal(value('kscope_agent_tcp_socket_table_insert_failures_total'), 0);
    assert.ok(value('kscope_agent_tcp_socket_table_entries') < 131_072);
    assert.match(text, /^kscope_agent_ring_lost_events_total\{probe="tcp"\} 0/m);
  } finally {
    await agent.stop();
  }
});
