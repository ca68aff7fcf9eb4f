// Server TLS settings shared by receivers: cert/key, and an optional client CA for mTLS; the gRPC
// credentials made from them and the verified client certificate CN (an mTLS tenant source).
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
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

/**
 * gRPC server credentials for these settings (insecure without TLS). grpc-js's createSsl either
 * requires a verified client certificate or never asks for one, so an optional client certificate
 * (client CA without require_client_cert, as on the HTTP side) goes through the certificate-
 * provider credentials, which request one and accept the handshake without it.
 */
export function grpcServerCredentials(tls: ServerTlsConfig | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  if (tls.clientCa && !tls.requireClientCert) {
    return grpc.experimental.createCertificateProviderServerCredentials(
      staticProvider({ certificate: tls.cert, privateKey: tls.key }),
      staticProvider(undefined, { caCertificate: tls.clientCa }),
      false,
    );
  }
  return grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.requireClientCert);
}

/**
 * A certificate provider for material read once at startup. Listeners get it on the next
 * microtask: grpc-js registers them before it adds the server's watcher, so a synchronous call
 * would update credentials no server is watching yet (and every connection would be dropped).
 */
function staticProvider(identity?: grpc.experimental.IdentityCertificateUpdate, ca?: grpc.experimental.CaCertificateUpdate): grpc.experimental.CertificateProvider {
  return {
    addCaCertificateListener: (l) => queueMicrotask(() => l(ca ?? null)),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l) => queueMicrotask(() => l(identity ?? null)),
    removeIdentityCertificateListener: () => {},
  };
}

/**
 * CN of the client certificate on a gRPC call (unary or stream), or undefined without one.
 * grpc-js reports a peer certificate only when it verified against the client CA (socket
 * authorized), so with an optional client certificate an unverified one yields nothing.
 */
export function grpcClientCertCN(call: object): string | undefined {
  const c = call as { getAuthContext?: () => { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } | undefined };
  const cn = c.getAuthContext?.()?.sslPeerCertificate?.subject?.CN;
  return (Array.isArray(cn) ? cn[0] : cn) || undefined;
}
