import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { deadLocalClaimers } from '../src/registry/db-registry.js';

describe('database registry: claims of dead local workers', () => {
  const gone = spawnSync(process.execPath, ['-e', '0']).pid as number; // a pid that has exited
  it('frees claims of exited processes and of an earlier incarnation of this pid, under this host name only', () => {
    const me = `h1:${process.pid}:aaaaaa`;
    const claimers = [
      null, me, `h1:${gone}:bbbbbb`, `h1:${process.pid}:cccccc`, `h1:${process.ppid}:dddddd`, `h2:${gone}:eeeeee`, 'garbage',
    ];
    expect(deadLocalClaimers(claimers, me, 'h1')).to.deep.equal([`h1:${gone}:bbbbbb`, `h1:${process.pid}:cccccc`]);
  });
});
