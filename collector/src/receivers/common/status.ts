// Pipeline error → transport status, as the OTLP spec and otelcol's receiver do it:
//   ThrottledError  → gRPC RESOURCE_EXHAUSTED (+ RetryInfo) / HTTP 429 (+ Retry-After)
//   RetryableError  → gRPC UNAVAILABLE / HTTP 503 (+ Retry-After when a delay is known)
//   ShutdownError   → UNAVAILABLE / 503
//   PermanentError  → INVALID_ARGUMENT / 400
//   anything else   → INTERNAL... except that an unexpected error is still retryable for the
//                     sender's sake (data was not accepted): UNAVAILABLE / 503.
import { PermanentError, RetryableError, ShutdownError, ThrottledError } from '../../component/errors.ts';

export const GRPC = { OK: 0, INVALID_ARGUMENT: 3, RESOURCE_EXHAUSTED: 8, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16, UNIMPLEMENTED: 12 } as const;

export interface TransportStatus {
  http: number;
  grpc: number;
  message: string;
  retryAfterMs?: number;
}

export function statusOf(err: unknown): TransportStatus {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ThrottledError) return { http: 429, grpc: GRPC.RESOURCE_EXHAUSTED, message, retryAfterMs: err.retryAfterMs };
  if (err instanceof RetryableError) return { http: 503, grpc: GRPC.UNAVAILABLE, message, ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}) };
  if (err instanceof ShutdownError) return { http: 503, grpc: GRPC.UNAVAILABLE, message };
  if (err instanceof PermanentError) return { http: 400, grpc: GRPC.INVALID_ARGUMENT, message };
  return { http: 503, grpc: GRPC.UNAVAILABLE, message: `internal error: ${message}` };
}

/** Retry-After is whole seconds, at least 1. */
export function retryAfterHeader(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}
