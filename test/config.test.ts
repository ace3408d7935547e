import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../src/config/load.js';
import { ConfigError } from '../src/errors.js';
import { tempDir } from './helpers/cli.js';

describe('config', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    writeFileSync(join(dir, 'config.ini'), [
      '[default]', 'BUCKET_URL = http://127.0.0.1:1/bucket', 'CONCURRENCY = 4', '',
      '[other]', 'BUCKET_URL = other-dir', 'DATABASE_URL = sqlite://other.sqlite3', '',
      '[typo]', 'CONCURENCY = 3', '',
      '[badnum]', 'CONCURRENCY = lots', '',
      '[secret]', 'BUCKET_URL = https://user:hunter2@example.invalid/b', 'MAX_ATTEMPTS = 0', '',
    ].join('\n'));
  });
  afterEach(() => cleanup());

  const load = (opts: Parameters<typeof loadConfig>[0] = {}) => loadConfig({ cwd: dir, env: {}, ...opts });
  const failure = (fn: () => unknown): ConfigError => {
    try {
      fn();
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigError);
      return err as ConfigError;
    }
    throw new Error('expected a ConfigError');
  };

  it('takes flag over environment over profile over built-in default', () => {
    expect(load().settings.CONCURRENCY).to.equal(4);
    expect(load().sources.CONCURRENCY).to.equal('profile');
    expect(load({ env: { CONCURRENCY: '7' } }).settings.CONCURRENCY).to.equal(7);
    expect(load({ env: { CONCURRENCY: '7' }, overrides: { CONCURRENCY: 9 } }).settings.CONCURRENCY).to.equal(9);
    expect(load().settings.MAX_ATTEMPTS).to.equal(5);
    expect(load().sources.MAX_ATTEMPTS).to.equal('default');
  });

  it('picks the profile from --profile, then PROFILE, and derives the default registry path from it', () => {
    expect(load({ profile: 'other' }).settings.BUCKET_URL).to.equal('other-dir');
    expect(load({ env: { PROFILE: 'other' } }).settings.DATABASE_URL).to.equal('sqlite://other.sqlite3');
    expect(load({ profile: 'other' }).settings.REGISTRY_PATH).to.equal('registry/other.json');
  });

  it('names an unknown profile and the ones that exist, with a suggestion', () => {
    const err = failure(() => load({ profile: 'othre' }));
    expect(err.message).to.contain('profile "othre"').and.contain('did you mean other?').and.contain('profiles: default, other');
  });

  it('takes constructor, __proto__ or toString for unknown profiles, not for Object.prototype (regression: ran on the defaults)', () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      expect(failure(() => load({ profile: name })).message).to.contain(`profile "${name}" is not in`).and.contain('profiles: default, other');
      expect(failure(() => load({ env: { PROFILE: name } })).message).to.contain(`profile "${name}" is not in`);
    }
  });

  it('refuses a line with no key before "=", naming its line (regression: ignored)', () => {
    writeFileSync(join(dir, 'keyless.ini'), ['; settings', '[default]', 'BUCKET_URL = b', '= 5', ''].join('\n'));
    expect(failure(() => load({ configPath: 'keyless.ini' })).message).to.match(/keyless\.ini:4: "= 5" has no key before "="$/);
    writeFileSync(join(dir, 'keyless.ini'), ['[default]', '  =x', '[other]', 'BUCKET_URL = b'].join('\r\n'));
    expect(failure(() => load({ configPath: 'keyless.ini', profile: 'other' })).message).to.match(/keyless\.ini:2: "=x" has no key/);
  });

  it('rejects an unknown key with a did-you-mean', () => {
    const err = failure(() => load({ profile: 'typo' }));
    expect(err.message).to.contain('unknown key CONCURENCY in [typo]').and.contain('did you mean CONCURRENCY?');
  });

  it('rejects bad numbers naming the key and where it came from', () => {
    expect(failure(() => load({ profile: 'badnum' })).message).to.match(/^CONCURRENCY in \[badnum\] of .*config\.ini: expected an integer from 1 to 256, got "lots"$/);
    expect(failure(() => load({ env: { POLL_INTERVAL_SECONDS: '-1' } })).message).to.contain('POLL_INTERVAL_SECONDS in the environment');
    expect(failure(() => load({ overrides: { CONCURRENCY: 0 } })).message).to.contain('CONCURRENCY on the command line');
  });

  it('AFTER_LOAD: keep by default; delete; move:PREFIX with a prefix inside the bucket; anything else refused naming the key', () => {
    expect(load({ profile: 'other' }).settings.AFTER_LOAD).to.deep.equal({ kind: 'keep' });
    expect(load({ profile: 'other', env: { AFTER_LOAD: 'delete' } }).settings.AFTER_LOAD).to.deep.equal({ kind: 'delete' });
    expect(load({ profile: 'other', env: { AFTER_LOAD: 'move: done/2026/' } }).settings.AFTER_LOAD).to.deep.equal({ kind: 'move', prefix: 'done/2026/' });
    for (const [value, why] of [
      ['move:../elsewhere/', 'leads outside the bucket (..)'], ['move:a/../../b/', 'leads outside the bucket (..)'], ['move:/var/archive/', 'is absolute'],
      ['move:', 'the prefix is empty'], ['move:a//b/', 'empty segment'], ['move:./a/', '"." segment'], ['move:archive', 'must end with "/" (a folder of the bucket: move:archive/)'],
      ['archive', 'expected keep, delete or move:PREFIX'],
    ] as const) {
      const err = failure(() => load({ profile: 'other', env: { AFTER_LOAD: value } }));
      expect(err.message, value).to.match(/^AFTER_LOAD in the environment: /).and.contain(why);
      expect(err.message.split('\n'), value).to.have.length(1);
    }
  });

  it('AFTER_LOAD other than keep is refused for an HTTP bucket, which cannot delete, in one line', () => {
    const err = failure(() => load({ env: { AFTER_LOAD: 'move:archive/' } }));
    expect(err.code).to.equal('BI_CONFIG');
    expect(err.message).to.equal('AFTER_LOAD in the environment: move:archive/ needs a bucket the daemon can delete from (a local directory or S3); ' +
      'an HTTP bucket http://127.0.0.1:1/bucket is read-only: use AFTER_LOAD=keep');
    expect(load({ env: { AFTER_LOAD: 'keep' } }).settings.AFTER_LOAD.kind).to.equal('keep');
  });

  it('never repeats a password from a URL in an error', () => {
    const err = failure(() => load({ profile: 'secret', env: { BUCKET_URL: 'https://u:hunter2@x.invalid', MAX_ATTEMPTS: 'x' } }));
    expect(err.message).to.not.contain('hunter2');
  });

  it('PII_HASH_KEY: empty by default, from the environment or the profile as written; a schema with personal data refuses to load without it', () => {
    mkdirSync(join(dir, 'types'));
    writeFileSync(join(dir, 'types', 'customer.json'), JSON.stringify({
      title: 'customer', type: 'object', 'x-table': 'customers',
      properties: { email: { type: 'string', format: 'email', maxLength: 254, 'x-pii': 'hash' } }, required: ['email'], 'x-key': ['email'],
    }));
    expect(load().settings.PII_HASH_KEY).to.equal('');
    const err = failure(() => load({ env: { SCHEMAS: 'types' } }));
    expect(err.message).to.match(/^PII_HASH_KEY is not set, and .*types\/customer\.json at #\/properties\/email\/x-pii declares "email" personal data/);
    const fromEnv = load({ env: { SCHEMAS: 'types', PII_HASH_KEY: ' k e y ' } });
    expect(fromEnv.settings.PII_HASH_KEY).to.equal(' k e y ');
    expect(fromEnv.catalog.options.piiKey).to.equal(' k e y ');
    writeFileSync(join(dir, 'pii.ini'), ['[default]', 'SCHEMAS = types', 'PII_HASH_KEY = true', ''].join('\n'));
    expect(load({ configPath: 'pii.ini' }).catalog.options.piiKey, 'ini reads true as a boolean').to.equal('true');
    // Two keys, two catalogs: the same directory hashes differently with each.
    expect(load({ env: { SCHEMAS: 'types', PII_HASH_KEY: 'a' } }).catalog).to.not.equal(load({ env: { SCHEMAS: 'types', PII_HASH_KEY: 'b' } }).catalog);
  });

  it('never shows PII_HASH_KEY, not even when its value is refused', () => {
    writeFileSync(join(dir, 'pii.ini'), ['[default]', 'PII_HASH_KEY[] = QXsecret1', 'PII_HASH_KEY[] = QXsecret2', ''].join('\n'));
    const err = failure(() => load({ configPath: 'pii.ini' }));
    expect(err.message).to.match(/^PII_HASH_KEY in \[default\] of .*pii\.ini: expected a string, got \(not shown: a secret\)$/);
    expect(err.message).to.not.contain('QX');
  });

  it('fails clearly when the named config file is missing', () => {
    expect(failure(() => load({ configPath: 'nope.ini' })).message).to.match(/config file .*nope\.ini does not exist/);
  });
});
