import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.js';
import { bucketIdentity } from '../../src/registry/binding.js';
import { credentialsOf, decodeListed } from '../../src/sources/s3.js';
import { parseS3Url } from '../../src/sources/s3-url.js';

describe('S3 source: URLs, keys and credentials', () => {
  it('parses s3://BUCKET[/PREFIX] with the prefix as a folder', () => {
    expect(parseS3Url('s3://logs')).to.deep.equal({ bucket: 'logs', prefix: '' });
    expect(parseS3Url('s3://logs/')).to.deep.equal({ bucket: 'logs', prefix: '' });
    expect(parseS3Url('s3://logs/2026')).to.deep.equal({ bucket: 'logs', prefix: '2026/' });
    expect(parseS3Url('s3://logs/a/b/')).to.deep.equal({ bucket: 'logs', prefix: 'a/b/' });
    for (const bad of ['s3://', 's3:///x', 's3://a b/x', 's3://b?x=1']) expect(() => parseS3Url(bad), bad).to.throw(/BUCKET_URL .*expected s3:\/\/BUCKET/);
  });

  it('decodes keys of a url-encoded listing: + is a space, %2B a plus, and the rest exactly', () => {
    expect(decodeListed('a+b%2Bc%25d%20e')).to.equal('a b+c%d e');
    expect(decodeListed('%C3%A9%2F%E6%97%A5')).to.equal('é/日');
    expect(decodeListed('tab%09x')).to.equal('tab\tx');
  });

  it('takes keys from the environment, then AWS_PROFILE or the shared files, else goes unsigned', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bi-s3-creds-'));
    try {
      const none = { AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'), AWS_CONFIG_FILE: join(dir, 'none2') };
      expect(credentialsOf({ ...none, AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'S', AWS_SESSION_TOKEN: 'T' }))
        .to.deep.equal({ kind: 'keys', accessKeyId: 'AK', secretAccessKey: 'S', sessionToken: 'T' });
      expect(credentialsOf(none)).to.deep.equal({ kind: 'anonymous' });
      expect(credentialsOf({ ...none, AWS_PROFILE: 'ci' })).to.include({ kind: 'profile', profile: 'ci' });
      await writeFile(join(dir, 'credentials'), '[default]\naws_access_key_id = AK\naws_secret_access_key = S\n');
      expect(credentialsOf({ ...none, AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials') })).to.include({ kind: 'profile', profile: 'default' });
      // Half a pair is a mistake, said without the half that is set.
      expect(() => credentialsOf({ ...none, AWS_SECRET_ACCESS_KEY: 'S3CRET-VALUE' })).to.throw(/AWS_ACCESS_KEY_ID is not set/).that.satisfies((e: Error) => !e.message.includes('S3CRET-VALUE'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('lists an S3 bucket unless FILES_LIST_KEY is set where BUCKET_URL is, or above it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bi-s3-config-'));
    try {
      await writeFile(join(dir, 'config.ini'), '[default]\nBUCKET_URL = examples/sample-bucket\nFILES_LIST_KEY = files_list.data\n[s3]\nBUCKET_URL = s3://b/p\nFILES_LIST_KEY = idx.txt\n');
      const key = (env: Record<string, string>, profile?: string): string => loadConfig({ cwd: dir, env, profile }).settings.FILES_LIST_KEY;
      expect(key({ BUCKET_URL: 's3://b' })).to.equal(''); // the profile's key is for its own bucket
      expect(key({ BUCKET_URL: 's3://b', FILES_LIST_KEY: 'files_list.data' })).to.equal('files_list.data');
      expect(key({}, 's3')).to.equal('idx.txt');
      expect(key({})).to.equal('files_list.data'); // other buckets keep their index
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names an S3 bucket by bucket, prefix and server, never by credentials', () => {
    const id = (url: string, endpoint = '', key = ''): string => bucketIdentity({ BUCKET_URL: url, FILES_LIST_KEY: key, S3_ENDPOINT: endpoint });
    expect(id('s3://b/p')).to.equal(id('s3://b/p/'));
    expect(id('s3://b/p')).to.not.equal(id('s3://b/q'));
    expect(id('s3://b/p', 'http://127.0.0.1:9000')).to.not.equal(id('s3://b/p', 'http://127.0.0.1:9001'));
    expect(id('s3://b/p', 'http://127.0.0.1:9000/')).to.equal(id('s3://b/p', 'HTTP://127.0.0.1:9000'));
    expect(id('s3://b/p', '', 'index.txt')).to.not.equal(id('s3://b/p'));
  });
});
