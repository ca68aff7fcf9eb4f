// Throwaway test PKI made with the openssl CLI (node:crypto cannot issue certificates): a CA, a
// server certificate for 127.0.0.1 / localhost, and client certificates whose CN is a tenant name.
// EC P-256 keys keep generation fast (a few ms per certificate).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function opensslAvailable(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface KeyPair {
  cert: string;
  key: string;
}

export interface TestCa extends KeyPair {
  name: string;
  /** Server certificate (serverAuth) for the given DNS names and IPs. */
  server(name: string, san?: { dns?: string[]; ip?: string[] }): KeyPair;
  /** Client certificate (clientAuth) with subject CN = `cn` (the tenant, for an mTLS receiver). */
  client(cn: string): KeyPair;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as Error & { stderr?: Buffer };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() || e.message}`);
  }
}

function newKey(file: string, dir: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], dir);
}

/** Creates a CA named `name` under `dir` (files `<name>.ca.pem`, `<name>.ca.key`). */
export function createCa(dir: string, name = 'test'): TestCa {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  const cert = join(dir, `${name}.ca.pem`);
  const key = join(dir, `${name}.ca.key`);
  newKey(key, dir);
  openssl(['req', '-x509', '-new', '-key', key, '-out', cert, '-days', '2', '-subj', `/CN=kscope test CA ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  let serial = 1;
  const issue = (file: string, cn: string, ext: string): KeyPair => {
    const out = { cert: join(dir, `${file}.pem`), key: join(dir, `${file}.key`) };
    const csr = join(dir, `${file}.csr`);
    const extFile = join(dir, `${file}.ext`);
    newKey(out.key, dir);
    openssl(['req', '-new', '-key', out.key, '-out', csr, '-subj', `/CN=${cn}`], dir);
    writeFileSync(extFile, ext);
    openssl(['x509', '-req', '-in', csr, '-CA', cert, '-CAkey', key, '-set_serial', String(serial++), '-days', '2', '-out', out.cert, '-extfile', extFile], dir);
    return out;
  };
  return {
    name,
    cert,
    key,
    server(file, san = { dns: ['localhost'], ip: ['127.0.0.1', '::1'] }) {
      const alt = [...(san.dns ?? []).map((d) => `DNS:${d}`), ...(san.ip ?? []).map((i) => `IP:${i}`)].join(',');
      return issue(`${name}.${file}`, san.dns?.[0] ?? file, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${alt}\n`);
    },
    client(cn) {
      if (!/^[A-Za-z0-9._-]+$/.test(cn)) throw new Error(`client CN must be a plain name, got ${JSON.stringify(cn)}`);
      return issue(`${name}.client-${cn}`, cn, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
    },
  };
}
