// The logger's two formats and the per-node metrics registry.

import { describe, expect, it } from 'vitest';
import { NODE_GAUGES, createLogger, createMetrics } from '../src/index.js';

function capture(): { lines: string[]; write: (line: string) => void } {
  const lines: string[] = [];
  return { lines, write: (line) => void lines.push(line) };
}

describe('createLogger', () => {
  it('writes JSON lines carrying the node id, at the configured level', () => {
    const out = capture();
    const logger = createLogger({ nodeId: 3, level: 'info', format: 'json', destination: out });
    logger.debug('hidden');
    logger.info({ topic: 'orders', partition: 0 }, 'partition created');
    expect(out.lines).toHaveLength(1);
    expect(JSON.parse(out.lines[0]!)).toMatchObject({
      level: 30,
      nodeId: 3,
      topic: 'orders',
      partition: 0,
      msg: 'partition created',
    });
  });

  it('writes one compact line per entry in the pretty format', () => {
    const out = capture();
    const logger = createLogger({ nodeId: 1, level: 'debug', format: 'pretty', destination: out });
    logger.child({ group: 'g 1' }).warn({ port: 9092, on: true }, 'listening');
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} WARN {2}node=1 listening group="g 1" port=9092 on=true\n$/,
    );
  });

  it('puts an error stack under the pretty line', () => {
    const out = capture();
    const logger = createLogger({ nodeId: 1, level: 'info', format: 'pretty', destination: out });
    logger.error({ err: new Error('disk full') }, 'append failed');
    const [first, ...stack] = out.lines[0]!.trimEnd().split('\n');
    expect(first).toMatch(/ERROR node=1 append failed err="disk full"$/);
    expect(stack[0]).toBe('    Error: disk full');
  });
});

describe('createMetrics', () => {
  it('exports only the gauges given a source, read at scrape time', async () => {
    const metrics = createMetrics(2);
    let term = 1;
    metrics.observe('raftTerm', () => term);
    metrics.observe('brokerFenced', () => false);
    term = 5;
    let text = await metrics.registry.metrics();
    expect(text).toContain('weir_raft_term{node_id="2"} 5');
    expect(text).toContain('weir_broker_fenced{node_id="2"} 0');
    expect(text).not.toContain(NODE_GAUGES.partitionsOffline.name);

    metrics.observe('raftTerm', () => 9);
    metrics.registerGauge({ name: 'weir_custom_bytes', help: 'a test gauge', collect: () => 8 });
    text = await metrics.registry.metrics();
    expect(text).toContain('weir_raft_term{node_id="2"} 9');
    expect(text).toContain('weir_custom_bytes{node_id="2"} 8');
  });

  it('keeps registries of two nodes apart', async () => {
    const a = createMetrics(1);
    const b = createMetrics(2);
    a.observe('topics', () => 3);
    b.observe('topics', () => 4);
    expect(await a.registry.metrics()).toContain('weir_topics{node_id="1"} 3');
    expect(await b.registry.metrics()).toContain('weir_topics{node_id="2"} 4');
  });
});
