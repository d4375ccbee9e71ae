// The static voter set, KRaft's `controller.quorum.voters`: `1@host:9093,2@host:9093,...`.

import { ErrorCode, WeirError } from '@weir/protocol';
import type { NodeId } from '../core/types.js';

export interface QuorumVoter {
  readonly id: NodeId;
  readonly host: string;
  readonly port: number;
}

const VOTER = /^(\d+)@(\[[0-9a-fA-F:.]+\]|[^:@\s,]+):(\d+)$/;

function invalid(spec: string, why: string): WeirError {
  return new WeirError(
    ErrorCode.INVALID_CONFIG,
    `invalid --quorum-voters "${spec}": ${why}; expected id@host:port,... such as 1@10.0.0.1:9093,2@10.0.0.2:9093,3@10.0.0.3:9093`,
  );
}

/** Parses and checks a voter list: ids unique, addresses unique, ports in range. */
export function parseQuorumVoters(spec: string): QuorumVoter[] {
  const items = spec
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
  if (items.length === 0) throw invalid(spec, 'no voters given');
  const voters = items.map((item) => {
    const match = VOTER.exec(item);
    if (match === null) throw invalid(spec, `"${item}" is not id@host:port`);
    const port = Number(match[3]);
    if (port < 1 || port > 65535)
      throw invalid(spec, `port ${port} of voter ${match[1]} is out of range`);
    return { id: Number(match[1]), host: match[2]!.replace(/^\[|\]$/g, ''), port };
  });
  const ids = new Set<number>();
  const addresses = new Set<string>();
  for (const voter of voters) {
    if (ids.has(voter.id)) throw invalid(spec, `voter id ${voter.id} appears twice`);
    const address = `${voter.host}:${voter.port}`;
    if (addresses.has(address)) throw invalid(spec, `address ${address} appears twice`);
    ids.add(voter.id);
    addresses.add(address);
  }
  return voters;
}

/** A controller must be one of the voters it is configured with. */
export function checkVoterMembership(id: NodeId, voters: readonly QuorumVoter[]): void {
  if (!voters.some((voter) => voter.id === id)) {
    throw new WeirError(
      ErrorCode.INCONSISTENT_VOTER_SET,
      `node ${id} runs the controller role but is not in --quorum-voters (${voters.map((v) => v.id).join(',')}); add it, or run it as a broker only`,
    );
  }
}
