// The safety checker on hand-made situations: each Raft invariant it claims to check must
// notice its violation (the simulator's own runs rarely produce them on purpose).

import { describe, expect, it } from 'vitest';
import type { RaftCore } from '../src/core/raft.js';
import { type Entry, type HardState, NO_NODE, type Ready, type Role } from '../src/core/types.js';
import { type CheckedNode, KvStateMachine, SafetyChecker, StorageModel } from '../src/sim/index.js';

interface FakeNode extends CheckedNode {
  core: RaftCore | undefined;
}

function node(id: number): FakeNode {
  return { id, core: undefined, storage: new StorageModel(), kv: new KvStateMachine() };
}

/** A core as the checker sees it: role, term, commit and applied index. */
function fakeCore(role: Role, term: number, commitIndex = 0): RaftCore {
  return { role, term, commitIndex, appliedIndex: 0 } as unknown as RaftCore;
}

function entry(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(text) };
}

function ready(hardState: HardState | undefined, entries: Entry[] = []): Ready {
  return {
    hardState,
    entries,
    snapshot: undefined,
    messages: [],
    committedEntries: [],
    readStates: [],
    role: 'follower',
    leaderId: NO_NODE,
  };
}

/** Persists a Ready on `n` and tells the checker, as the simulated driver does. */
function persist(checker: SafetyChecker, n: FakeNode, r: Ready): void {
  const from = n.storage.persist(r, (index, term) => checker.chainOf(index, term));
  checker.onPersisted(n, from);
}

function setup(count: number): { checker: SafetyChecker; nodes: FakeNode[] } {
  const nodes = Array.from({ length: count }, (_, i) => node(i + 1));
  return { checker: new SafetyChecker(nodes), nodes };
}

describe('SafetyChecker', () => {
  it('Election Safety: two leaders in one term', () => {
    const { checker, nodes } = setup(3);
    const [a, b, c] = nodes as [FakeNode, FakeNode, FakeNode];
    a.core = fakeCore('leader', 2);
    checker.observe(a);
    c.core = fakeCore('leader', 3);
    checker.observe(c); // another term: fine
    b.core = fakeCore('leader', 2);
    expect(() => checker.observe(b)).toThrow('two leaders in term 2: n1 and n2');
  });

  it('one vote per term, across restarts', () => {
    const { checker, nodes } = setup(3);
    const a = nodes[0]!;
    persist(checker, a, ready({ term: 4, vote: 2, commit: 0 }));
    persist(checker, a, ready({ term: 4, vote: 2, commit: 0 }));
    expect(() => persist(checker, a, ready({ term: 4, vote: 3, commit: 0 }))).toThrow(
      'n1 voted for n2 and then for n3 in term 4',
    );
  });

  it('a term that goes back', () => {
    const { checker, nodes } = setup(3);
    const a = nodes[0]!;
    persist(checker, a, ready({ term: 4, vote: NO_NODE, commit: 0 }));
    expect(() => persist(checker, a, ready({ term: 3, vote: NO_NODE, commit: 0 }))).toThrow(
      'monotonic term',
    );
  });

  it('Log Matching: the same (index, term) over different prefixes', () => {
    const { checker, nodes } = setup(3);
    const [a, b] = nodes as [FakeNode, FakeNode];
    persist(checker, a, ready(undefined, [entry(1, 1, 'x'), entry(2, 1)]));
    expect(() => persist(checker, b, ready(undefined, [entry(1, 1, 'y'), entry(2, 1)]))).toThrow(
      'Log Matching',
    );
  });

  it('a committed entry replaced by another', () => {
    const { checker, nodes } = setup(3);
    const [a, b] = nodes as [FakeNode, FakeNode];
    persist(checker, a, ready({ term: 1, vote: 1, commit: 1 }, [entry(1, 1)]));
    expect(() =>
      persist(checker, b, ready({ term: 2, vote: 2, commit: 1 }, [entry(1, 2)])),
    ).toThrow('committed entries are final');
  });

  it('Leader Completeness: a new leader without an entry committed before', () => {
    const { checker, nodes } = setup(3);
    const [a, b] = nodes as [FakeNode, FakeNode];
    persist(checker, a, ready({ term: 1, vote: 1, commit: 2 }, [entry(1, 1), entry(2, 1)]));
    b.core = fakeCore('leader', 2);
    expect(() =>
      persist(checker, b, ready({ term: 2, vote: 2, commit: 0 }, [entry(1, 1), entry(2, 2)])),
    ).toThrow('n2, leader of term 2, holds an entry of term 2 at index 2, committed in term 1');
  });

  it('State Machine Safety: applying something else than what was committed', () => {
    const { checker, nodes } = setup(3);
    const [a, b] = nodes as [FakeNode, FakeNode];
    persist(
      checker,
      a,
      ready({ term: 1, vote: 1, commit: 1 }, [
        { ...entry(1, 1), type: 'noop', data: new Uint8Array(0) },
      ]),
    );
    persist(
      checker,
      b,
      ready({ term: 1, vote: 1, commit: 1 }, [
        { ...entry(1, 1), type: 'noop', data: new Uint8Array(0) },
      ]),
    );
    checker.onApplied(a, { ...entry(1, 1), type: 'noop', data: new Uint8Array(0) });
    expect(() => checker.onApplied(b, entry(1, 1))).toThrow('State Machine Safety');
  });

  it('applying an entry before its commit is durable', () => {
    const { checker, nodes } = setup(3);
    const a = nodes[0]!;
    persist(checker, a, ready({ term: 1, vote: 1, commit: 0 }, [entry(1, 1)]));
    expect(() => checker.onApplied(a, entry(1, 1))).toThrow('apply only committed entries');
  });

  it('a granted vote or an acknowledgement that is not yet on disk', () => {
    const { checker, nodes } = setup(3);
    const a = nodes[0]!;
    persist(checker, a, ready({ term: 1, vote: NO_NODE, commit: 0 }));
    const vote = { type: 'voteResponse', from: 1, to: 2, term: 1, granted: true } as const;
    expect(() => checker.onSend(a, vote)).toThrow('n1 granted its vote to n2 in term 1');
    const ack = {
      type: 'appendResponse',
      from: 1,
      to: 2,
      term: 1,
      success: true,
      index: 1,
      hintIndex: 0,
      hintTerm: 0,
    } as const;
    expect(() => checker.onSend(a, ack)).toThrow('acknowledged index 1');
    persist(checker, a, ready({ term: 1, vote: 2, commit: 0 }, [entry(1, 1)]));
    checker.onSend(a, vote);
    checker.onSend(a, ack);
  });
});
