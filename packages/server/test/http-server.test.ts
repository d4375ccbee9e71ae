// The HTTP listener on a real socket (port 0): health, readiness, metrics and closing.

import { request } from 'node:http';
import { createServer } from 'node:net';
import { ErrorCode } from '@weir/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { type HttpServer, type Readiness, createMetrics, startHttpServer } from '../src/index.js';

let server: HttpServer | undefined;
let readiness: Readiness = { ready: false, reason: 'waiting for the metadata log' };

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(): Promise<string> {
  const metrics = createMetrics(7);
  metrics.observe('controllerActive', () => true);
  metrics.observe('metadataOffset', () => 42n);
  server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    registry: metrics.registry,
    isReady: () => readiness,
  });
  expect(server.port).toBeGreaterThan(0);
  return `http://127.0.0.1:${server.port}`;
}

describe('startHttpServer', () => {
  it('answers /healthz while up', async () => {
    const base = await start();
    const response = await fetch(`${base}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('ok\n');
  });

  it('answers /readyz 503 with the reason, then 200 once ready', async () => {
    const base = await start();
    readiness = { ready: false, reason: 'waiting for the metadata log' };
    let response = await fetch(`${base}/readyz`);
    expect(response.status).toBe(503);
    expect(await response.text()).toBe('waiting for the metadata log\n');
    readiness = { ready: true };
    response = await fetch(`${base}/readyz?verbose=1`);
    expect(response.status).toBe(200);
  });

  it("serves the registry's metrics in the Prometheus text format", async () => {
    const base = await start();
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await response.text();
    expect(text).toContain('weir_controller_active{node_id="7"} 1');
    expect(text).toContain('weir_metadata_offset{node_id="7"} 42');
    expect(text).toContain('weir_process_cpu_user_seconds_total');
  });

  it('answers 404 for unknown paths and 405 for other methods', async () => {
    const base = await start();
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/metricsx`)).status).toBe(404);
    const post = await fetch(`${base}/healthz`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });

  it('closes promptly with an idle keep-alive connection open', async () => {
    await start();
    const port = server!.port;
    const agentResponse = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/healthz', headers: { connection: 'keep-alive' } },
        (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(agentResponse).toBe(200);
    const started = Date.now();
    await server!.close();
    expect(Date.now() - started).toBeLessThan(500);
    await server!.close(); // a second close is harmless
    server = undefined;
  });

  it('reports a port in use as INVALID_CONFIG naming the address', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as { port: number };
    try {
      await expect(
        startHttpServer({
          host: '127.0.0.1',
          port,
          registry: createMetrics(1).registry,
          isReady: () => ({ ready: true }),
        }),
      ).rejects.toMatchObject({
        code: ErrorCode.INVALID_CONFIG,
        message: expect.stringContaining(`cannot listen for HTTP on 127.0.0.1:${port}`) as string,
      });
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
