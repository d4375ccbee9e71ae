import { describe, expect, it } from 'vitest';
import { ErrorCode } from '@weir/protocol';
import { checkVoterMembership, parseQuorumVoters } from './quorum-voters.js';

describe('parseQuorumVoters', () => {
  it('parses ids, host names, IPv4 and bracketed IPv6 addresses', () => {
    expect(parseQuorumVoters('1@localhost:9093, 2@10.0.0.2:9093,3@[::1]:19093')).toEqual([
      { id: 1, host: 'localhost', port: 9093 },
      { id: 2, host: '10.0.0.2', port: 9093 },
      { id: 3, host: '::1', port: 19093 },
    ]);
  });

  it.each([
    ['', /no voters/],
    ['1@host', /not id@host:port/],
    ['one@host:9093', /not id@host:port/],
    ['1@host:70000', /out of range/],
    ['1@a:9093,1@b:9093', /voter id 1 appears twice/],
    ['1@a:9093,2@a:9093', /address a:9093 appears twice/],
  ])('refuses %j and says why', (spec, why) => {
    expect(() => parseQuorumVoters(spec)).toThrow(why);
    expect(() => parseQuorumVoters(spec)).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_CONFIG }),
    );
  });

  it('refuses a controller that is not a voter', () => {
    const voters = parseQuorumVoters('1@a:9093,2@b:9093,3@c:9093');
    expect(() => checkVoterMembership(4, voters)).toThrow(
      expect.objectContaining({ code: ErrorCode.INCONSISTENT_VOTER_SET }),
    );
    expect(() => checkVoterMembership(2, voters)).not.toThrow();
  });
});
