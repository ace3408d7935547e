import { expect } from 'chai';
import { IngestError } from '../../src/errors.js';
import { objectUrl } from '../../src/sources/http.js';

describe('objectUrl', () => {
  const base = 'http://127.0.0.1:8000/bucket';

  it('percent-encodes each segment of a key under the base path', () => {
    expect(objectUrl(base, 'a b/c?d#e.data')).to.equal('http://127.0.0.1:8000/bucket/a%20b/c%3Fd%23e.data');
    expect(objectUrl(`${base}/`, 'sub/x.data')).to.equal('http://127.0.0.1:8000/bucket/sub/x.data');
    // Names that only look like dot segments stay names: `%` is encoded, and `..x` is not `..`.
    expect(objectUrl(base, '%2e%2e/..x/x..')).to.equal('http://127.0.0.1:8000/bucket/%252e%252e/..x/x..');
    expect(objectUrl(base, 'a\\..\\b')).to.equal('http://127.0.0.1:8000/bucket/a%5C..%5Cb');
  });

  for (const key of ['../secret.data', 'sub/../../secret.data', 'sub/..', './a.data', 'sub/./a.data', '/secret.data', '//localhost/secret.data', 'a//b.data', 'dir/', '']) {
    it(`refuses ${JSON.stringify(key)} with BI_BAD_KEY naming the key`, () => {
      let error: unknown;
      try {
        objectUrl(base, key);
      } catch (err) {
        error = err;
      }
      expect(error).to.be.instanceOf(IngestError);
      expect(error).to.include({ code: 'BI_BAD_KEY', retriable: false });
      expect((error as Error).message).to.contain(`${key}: key `).and.contain('refused');
    });
  }
});
