// Server TLS settings shared by receivers: cert/key, and an optional client CA for mTLS.
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../component/errors.ts';
import type { ConfigReader } from '../../config/reader.ts';

export interface ServerTlsConfig {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
  requireClientCert: boolean;
}

export function readServerTls(r: ConfigReader): ServerTlsConfig | undefined {
  if (!r.has('tls')) {
    r.skip('tls');
    return undefined;
  }
  const t = r.sub('tls');
  const read = (key: string, required: boolean): Buffer | undefined => {
    const f = t.str(key);
    if (!f) {
      if (required) throw new ConfigError(t.field(key), 'is required');
      return undefined;
    }
    try {
      return readFileSync(f);
    } catch (err) {
      throw new ConfigError(t.field(key), `cannot read ${f}: ${(err as Error).message}`);
    }
  };
  const cfg: ServerTlsConfig = {
    cert: read('cert_file', true)!,
    key: read('key_file', true)!,
    clientCa: read('client_ca_file', false),
    requireClientCert: t.bool('require_client_cert', false),
  };
  if (cfg.requireClientCert && !cfg.clientCa) throw new ConfigError(t.field('client_ca_file'), 'is required when require_client_cert is true');
  t.done();
  return cfg;
}
