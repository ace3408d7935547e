import { expect } from 'chai';
import { dialects, withMigratedDatabase } from './helpers/databases.js';

describe('database errors', function () {
  this.timeout(60_000);
  for (const dialect of dialects()) {
    it(`${dialect.name}: a refused statement's error names the SQL, never the values bound to it`, () => withMigratedDatabase(dialect, async (db) => {
      // NOT NULL columns left out: every dialect refuses the row.
      const err = (await db('songs').insert({ artist_name: 'QX-record-value', title: 'QX-title' }).catch((e: unknown) => e)) as Error;
      expect(err).to.be.instanceOf(Error);
      expect(err.message).to.match(/insert into .songs./i);
      expect(err.message).to.not.contain('QX');
    }));
  }
});
