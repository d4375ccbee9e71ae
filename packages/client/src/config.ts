// The client's configuration: what `new Weir({...})` accepts, its defaults, and the checks
// that run at construction so a mistake is reported where it was made, with what to change,
// rather than as a connection failure later (CONVENTIONS.md, "From KafkaJS").

import { invalidConfig } from './config-values.js';

export interface WeirConfig {
  /**
   * Brokers to contact first, as `host:port`: one string with commas (`'a:9092,b:9092'`) or an
   * array. Any broker of the cluster answers admin requests; the others are tried in order when
   * one cannot be reached.
   */
  readonly bootstrap: string | readonly string[];
  /** Names this client to the brokers (the gRPC user agent); defaults to `weir`. */
  readonly clientId?: string;
  /**
   * How long one request may take in all, retries and moves to another broker included, before
   * it fails with the last error seen (REQUEST_TIMED_OUT when nothing answered). Default 30000.
   */
  readonly requestTimeoutMs?: number;
}

/** The configuration after validation, with defaults filled in. */
export interface ResolvedConfig {
  /** `host:port` of each bootstrap broker, in the order given, without duplicates. */
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly requestTimeoutMs: number;
}

export const DEFAULT_CLIENT_ID = 'weir';
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** setTimeout's limit; a longer timeout would fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const MAX_PORT = 65_535;

export function resolveConfig(config: WeirConfig): ResolvedConfig {
  if (typeof config !== 'object' || config === null) {
    throw invalidConfig("new Weir() needs options, e.g. new Weir({ bootstrap: '127.0.0.1:9092' })");
  }
  return {
    brokers: parseBootstrap(config.bootstrap),
    clientId: resolveClientId(config.clientId),
    requestTimeoutMs: resolveTimeout(config.requestTimeoutMs),
  };
}

/**
 * Splits and checks a bootstrap list: `'a:9092,b:9092'`, `['a:9092', 'b:9092']` or a mix.
 * IPv6 hosts go in brackets (`[::1]:9092`). Throws INVALID_CONFIG saying what to change.
 */
export function parseBootstrap(bootstrap: string | readonly string[] | undefined): string[] {
  if (typeof bootstrap !== 'string' && !Array.isArray(bootstrap)) {
    throw invalidConfig(
      "bootstrap is missing: give the brokers as 'host:port,host:port', e.g. '127.0.0.1:9092'",
    );
  }
  const parts = (typeof bootstrap === 'string' ? [bootstrap] : bootstrap).flatMap(
    (entry: unknown) => {
      if (typeof entry !== 'string') {
        throw invalidConfig(
          `bootstrap entries must be strings like '127.0.0.1:9092', got ${typeof entry}`,
        );
      }
      return entry.split(',').map((part) => part.trim());
    },
  );
  const brokers = parts.filter((part) => part !== '');
  if (brokers.length === 0) {
    throw invalidConfig(
      "bootstrap is empty: give at least one broker as 'host:port', e.g. '127.0.0.1:9092'",
    );
  }
  for (const broker of brokers) checkAddress(broker);
  return [...new Set(brokers)];
}

function checkAddress(address: string): void {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) {
    throw invalidConfig(
      `bootstrap entry '${address}' has a URL scheme: write just host:port, e.g. '127.0.0.1:9092'`,
    );
  }
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]/]+):([^:]*)$/.exec(address);
  if (match === null) {
    const example = /^[^\s:[\]/]+$/.test(address) ? `'${address}:9092'` : "'127.0.0.1:9092'";
    throw invalidConfig(
      `bootstrap entry '${address}' is not host:port: write it like ${example} (IPv6 hosts in brackets, '[::1]:9092')`,
    );
  }
  const port = match[2]!;
  if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > MAX_PORT) {
    throw invalidConfig(
      `bootstrap entry '${address}' has port '${port}': the port must be a whole number from 1 to ${MAX_PORT}`,
    );
  }
}

function resolveClientId(clientId: unknown): string {
  if (clientId === undefined) return DEFAULT_CLIENT_ID;
  if (typeof clientId !== 'string' || clientId.trim() === '') {
    throw invalidConfig(
      "clientId must be a non-empty string, e.g. 'orders-service'; or leave it out",
    );
  }
  return clientId;
}

function resolveTimeout(requestTimeoutMs: unknown): number {
  if (requestTimeoutMs === undefined) return DEFAULT_REQUEST_TIMEOUT_MS;
  if (
    typeof requestTimeoutMs !== 'number' ||
    !Number.isInteger(requestTimeoutMs) ||
    requestTimeoutMs <= 0 ||
    requestTimeoutMs > MAX_TIMEOUT_MS
  ) {
    throw invalidConfig(
      `requestTimeoutMs must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}, got ${typeof requestTimeoutMs === 'number' ? requestTimeoutMs : typeof requestTimeoutMs}; the default is ${DEFAULT_REQUEST_TIMEOUT_MS}`,
    );
  }
  return requestTimeoutMs;
}
