/** Application errors: transports translate these codes into HTTP statuses (and later gRPC codes). */
export type ErrorCode =
  | "bad_request"
  | "validation"
  | "unauthorized"
  | "not_found"
  | "conflict"
  | "payload_too_large"
  | "unsupported_media_type"
  | "too_many_requests"
  | "unavailable"
  | "internal";

export interface FieldError {
  path: string;
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly fieldErrors: FieldError[] = [],
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends AppError {
  constructor(message: string, fieldErrors: FieldError[] = []) {
    super("validation", message, fieldErrors);
  }
}

export class NotFoundError extends AppError {
  constructor(message: string) {
    super("not_found", message);
  }
}

export const API_KEY_REQUIRED = "A valid API key is required in the X-API-KEY header.";

/** Which credential was missing or wrong (HTTP words its challenge: http/challenges.ts). */
export type Credential = "api-key" | "bearer" | "invalid-bearer" | "metrics-token";

export class UnauthorizedError extends AppError {
  constructor(
    message = API_KEY_REQUIRED,
    readonly credential?: Credential,
  ) {
    super("unauthorized", message);
  }
}

export class PayloadTooLargeError extends AppError {
  constructor(message: string) {
    super("payload_too_large", message);
  }
}

export class UnsupportedMediaTypeError extends AppError {
  constructor(message: string) {
    super("unsupported_media_type", message);
  }
}

export class ConflictError extends AppError {
  constructor(message: string) {
    super("conflict", message);
  }
}

/**
 * A refusal the client may retry after `retryAfterSeconds` (sent as `Retry-After`): too many
 * attempts, or a server too busy for the request right now.
 */
export class RetryLaterError extends AppError {
  constructor(
    code: "too_many_requests" | "unavailable",
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(code, message);
  }
}

export class TooManyRequestsError extends RetryLaterError {
  constructor(message: string, retryAfterSeconds: number) {
    super("too_many_requests", message, retryAfterSeconds);
  }
}

/** A command-line usage mistake: the CLI prints it with the usage and exits with code 2. */
export class UsageError extends Error {
  override name = "UsageError";
  constructor(
    message: string,
    /** The usage text of the command that was misused, when known. */
    readonly usage?: string,
  ) {
    super(message);
  }
}

/** A configuration problem found at startup: every bad variable in one message. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join("; ")}`);
  }
}
