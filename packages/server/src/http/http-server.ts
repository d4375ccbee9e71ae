// The node's HTTP listener for operators and orchestrators:
//   GET /healthz  200 while the process is up (a liveness probe: restart only a wedged process)
//   GET /readyz   200 once the node can serve, else 503 with the reason (a readiness probe)
//   GET /metrics  the Prometheus text exposition of the node's registry

import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, WeirError } from '@weir/protocol';
import type { Registry } from 'prom-client';

export interface Readiness {
  readonly ready: boolean;
  /** Why the node is not ready, for the 503 body (e.g. "waiting for the metadata log"). */
  readonly reason?: string;
}

export interface HttpServerOptions {
  readonly host: string;
  /** 0 picks a free port; `HttpServer.port` tells which. */
  readonly port: number;
  readonly registry: Registry;
  readonly isReady: () => Readiness;
  /** How long close() lets in-flight requests finish before it drops their connections. */
  readonly closeGraceMs?: number;
}

export interface HttpServer {
  readonly host: string;
  /** The bound port (the one the OS picked when the options said 0). */
  readonly port: number;
  /** Stops listening and closes every connection, idle keep-alive ones included. */
  close(): Promise<void>;
}

const DEFAULT_CLOSE_GRACE_MS = 1_000;
const TEXT = 'text/plain; charset=utf-8';

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const server = createServer((request, response) => {
    void handle(options, request, response);
  });
  const port = await listen(server, options.host, options.port);
  let closing: Promise<void> | undefined;
  return {
    host: options.host,
    port,
    close() {
      closing ??= closeServer(server, options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS);
      return closing;
    },
  };
}

async function handle(
  options: HttpServerOptions,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  try {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const route = ROUTES[path];
    if (route === undefined) return send(response, 404, TEXT, `no such endpoint: ${path}\n`);
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('Allow', 'GET, HEAD');
      return send(response, 405, TEXT, `${path} answers GET and HEAD only\n`);
    }
    const { status, contentType, body } = await route(options);
    send(response, status, contentType, body);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (!response.headersSent) send(response, 500, TEXT, `${reason}\n`);
    else response.destroy();
  }
}

interface Reply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

const ROUTES: Readonly<Record<string, (options: HttpServerOptions) => Promise<Reply>>> = {
  '/healthz': () => Promise.resolve({ status: 200, contentType: TEXT, body: 'ok\n' }),
  '/readyz': (options) => {
    const { ready, reason } = options.isReady();
    return Promise.resolve(
      ready
        ? { status: 200, contentType: TEXT, body: 'ready\n' }
        : { status: 503, contentType: TEXT, body: `${reason ?? 'not ready'}\n` },
    );
  },
  '/metrics': async ({ registry }) => ({
    status: 200,
    contentType: registry.contentType,
    body: await registry.metrics(),
  }),
};

function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  // HEAD gets the headers of the GET answer without its body.
  response.end(response.req.method === 'HEAD' ? undefined : body);
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      reject(
        new WeirError(
          ErrorCode.INVALID_CONFIG,
          `cannot listen for HTTP on ${host}:${port}: ${error.message}; choose another --http-port or --listen-host`,
          { cause: error },
        ),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    force.unref();
    server.close((error) => {
      clearTimeout(force);
      if (error === undefined) resolve();
      else reject(error);
    });
    server.closeIdleConnections();
  });
}
