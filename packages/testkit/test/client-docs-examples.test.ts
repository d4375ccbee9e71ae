// The producer and consumer examples of docs/client.md, run as they are written against a real
// three-node cluster, so that the documentation cannot drift from the SDK. Only the bootstrap
// address is replaced; the examples are kept to JavaScript syntax so that they run without a
// compile step.

import { readFile } from 'node:fs/promises';
import * as client from '@weir/client';
import { partitionForKey } from '@weir/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessCluster } from '../src/index.js';

const DOC = new URL('../../../docs/client.md', import.meta.url);
const DOC_BOOTSTRAP = "'127.0.0.1:9092'";

let cluster: InProcessCluster;
let bootstrap: string;

beforeAll(async () => {
  cluster = await InProcessCluster.start(3);
  bootstrap = [...cluster.ports.values()].map((p) => `127.0.0.1:${p.broker}`).join(',');
  await cluster.createTopic('orders', 6, 3);
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

/** The `ts` code blocks of a `## heading` section that import the SDK. */
function examples(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  expect(start, `section '${heading}' in docs/client.md`).toBeGreaterThanOrEqual(0);
  const end = markdown.indexOf('\n## ', start + 1);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((match) => match[1]!)
    .filter((code) => code.includes("from '@weir/client'"));
}

type Example = (
  sdk: typeof client,
  console: { log: (...values: unknown[]) => void },
) => Promise<void>;

/** Turns an example into a function of the SDK's exports and a console that records. */
function compile(code: string): Example {
  expect(code).toContain(DOC_BOOTSTRAP);
  const body = code
    .replaceAll(DOC_BOOTSTRAP, JSON.stringify(bootstrap))
    .replace(/^import \{([^}]*)\} from '@weir\/client';$/m, 'const {$1} = sdk;');
  // The constructor of async functions (not a global): compiles the example's own text.
  const { constructor: AsyncFunction } = Object.getPrototypeOf(run) as {
    constructor: new (...args: string[]) => Example;
  };
  return new AsyncFunction('sdk', 'console', body);
}

async function run(code: string): Promise<unknown[][]> {
  const logged: unknown[][] = [];
  await compile(code)(client, { log: (...values) => logged.push(values) });
  return logged;
}

describe('docs/client.md examples', () => {
  it('the producer example sends two keyed records where the comment says', async () => {
    const markdown = await readFile(DOC, 'utf8');
    const [example] = examples(markdown, 'The producer');
    const logged = await run(example!);
    expect(logged).toEqual([
      [
        [
          { topic: 'orders', partition: partitionForKey('customer-42', 6), offset: 0n },
          { topic: 'orders', partition: partitionForKey('customer-7', 6), offset: 0n },
        ],
      ],
    ]);
    expect(example).toContain(
      "// [ { topic: 'orders', partition: 3, offset: 0n }, { topic: 'orders', partition: 1, offset: 0n } ]",
    );
  });

  it('the consumer example reads them back', async () => {
    const markdown = await readFile(DOC, 'utf8');
    const [example] = examples(markdown, 'The consumer');
    const logged = await run(example!);
    const lines = logged.slice(0, -1);
    expect(lines).toContainEqual([1, 0n, 'customer-7', JSON.stringify({ total: 12 })]);
    expect(logged.at(-1)).toEqual([[JSON.stringify({ total: 99.5 })]]);
  });
});
