// Errors are classes with stable codes. A consumer rejects with one of these; the code decides
// what the caller does (retry, refuse with a status, drop and count).

export type ErrorCode =
  | 'RETRYABLE' // transient: retry with backoff (gRPC UNAVAILABLE, HTTP 503)
  | 'THROTTLED' // refuse with a retry delay (gRPC RESOURCE_EXHAUSTED + RetryInfo, HTTP 429 + Retry-After)
  | 'PERMANENT' // never retry (gRPC INVALID_ARGUMENT, HTTP 400)
  | 'CONFIG' // invalid configuration, names the field
  | 'SHUTDOWN'; // the component is shutting down

export class PipelineError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Transient failure; `retryAfterMs` is a server-suggested delay, if any. */
export class RetryableError extends PipelineError {
  constructor(message: string, readonly retryAfterMs?: number, options?: { cause?: unknown }) {
    super('RETRYABLE', message, options);
  }
}

/** Over a limit: the sender should wait `retryAfterMs` and send again. */
export class ThrottledError extends PipelineError {
  constructor(message: string, readonly retryAfterMs: number, options?: { cause?: unknown }) {
    super('THROTTLED', message, options);
  }
}

/** The data can never be accepted (malformed, too large, unknown tenant...). */
export class PermanentError extends PipelineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PERMANENT', message, options);
  }
}

/** A configuration error; `field` is the dotted path of the offending field. */
export class ConfigError extends PipelineError {
  constructor(readonly field: string, message: string) {
    super('CONFIG', field ? `${field}: ${message}` : message);
  }
}

export class ShutdownError extends PipelineError {
  constructor(message = 'component is shut down') {
    super('SHUTDOWN', message);
  }
}

export function isRetryable(err: unknown): boolean {
  return err instanceof RetryableError || err instanceof ThrottledError || err instanceof ShutdownError;
}

export function retryDelayOf(err: unknown): number | undefined {
  if (err instanceof RetryableError || err instanceof ThrottledError) return err.retryAfterMs;
  return undefined;
}
