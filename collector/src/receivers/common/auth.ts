// Tenant identity for receivers. Sources are tried in the configured order: a bearer token looked
// up in a token → tenant map, a header such as X-Scope-OrgID, or the CN of a verified mTLS client
// certificate. The tenant table gives each tenant its QoS tier; a tenant not in a non-empty table
// is refused (UNAUTHENTICATED / 401) unless `unknown_tenant: allow`.
import { ConfigError } from '../../component/errors.ts';
import type { ConfigReader } from '../../config/reader.ts';

export type AuthSource = 'bearer' | 'header' | 'mtls';

export interface AuthConfig {
  sources: AuthSource[];
  /** Lower-cased header carrying the tenant for the `header` source. */
  header: string;
  /** Bearer token → tenant. */
  tokens: Map<string, string>;
  /** Tenant → tier ('' = no tier). Empty map: any tenant accepted. */
  tenants: Map<string, string>;
  unknownTenant: 'refuse' | 'allow';
  /** With no identity presented: refuse, or use `default_tenant` (may be empty: no tenant). */
  requireTenant: boolean;
  defaultTenant: string;
}

export class AuthError extends Error {
  readonly code = 'UNAUTHENTICATED';
}

export function readAuthConfig(r: ConfigReader): AuthConfig {
  const sources = r.strList('sources', []) as AuthSource[];
  sources.forEach((s, i) => {
    if (!['bearer', 'header', 'mtls'].includes(s)) throw new ConfigError(`${r.field('sources')}[${i}]`, `must be one of bearer, header, mtls, got ${JSON.stringify(s)}`);
  });
  const tenants = new Map<string, string>();
  for (const [name, tr] of r.map('tenants')) {
    tenants.set(name, tr.str('tier', ''));
    tr.done();
  }
  const cfg: AuthConfig = {
    sources,
    header: r.str('header', 'X-Scope-OrgID').toLowerCase(),
    tokens: r.strMap('tokens'),
    tenants,
    unknownTenant: r.oneOf('unknown_tenant', ['refuse', 'allow'] as const, 'refuse'),
    requireTenant: r.bool('require_tenant', sources.length > 0),
    defaultTenant: r.str('default_tenant', ''),
  };
  for (const [token, tenant] of cfg.tokens) {
    if (tenants.size > 0 && !tenants.has(tenant)) throw new ConfigError(`${r.field('tokens')}.${token.slice(0, 4)}…`, `maps to tenant ${JSON.stringify(tenant)} which is not in tenants`);
  }
  r.done();
  return cfg;
}

export interface Identity {
  tenant?: string;
  tier?: string;
}

/** What a transport knows about a request: lower-cased headers and the verified client cert CN. */
export interface AuthInput {
  header(name: string): string | undefined;
  clientCertCN?: string;
}

export function resolveIdentity(cfg: AuthConfig, req: AuthInput): Identity {
  let tenant: string | undefined;
  for (const src of cfg.sources) {
    if (src === 'bearer') {
      const h = req.header('authorization');
      if (h && /^bearer /i.test(h)) {
        const t = cfg.tokens.get(h.slice(7).trim());
        if (t === undefined) throw new AuthError('invalid bearer token');
        tenant = t;
      }
    } else if (src === 'header') {
      const v = req.header(cfg.header);
      if (v) tenant = v.trim();
    } else if (src === 'mtls' && req.clientCertCN) {
      tenant = req.clientCertCN;
    }
    if (tenant !== undefined) break;
  }
  if (tenant === undefined) {
    if (cfg.requireTenant) throw new AuthError('no tenant identity presented');
    tenant = cfg.defaultTenant || undefined;
    if (tenant === undefined) return {};
  }
  if (cfg.tenants.size > 0) {
    const tier = cfg.tenants.get(tenant);
    if (tier === undefined) {
      if (cfg.unknownTenant === 'refuse') throw new AuthError(`unknown tenant ${JSON.stringify(tenant.slice(0, 64))}`);
      return { tenant };
    }
    return tier ? { tenant, tier } : { tenant };
  }
  return { tenant };
}
