import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import * as undici from 'undici';
import requestApi from 'undici/lib/api/api-request.js';
import { Agent, request } from '../src/sources/undici-core.js';

/**
 * undici-core.ts loads undici's Agent and request API from their own modules, not undici's index: they must still be
 * undici's own, and send what undici's public `request` sends.
 */
describe('undici, loaded in part', () => {
  let server: Server;
  let seen: Array<{ method: string | undefined; url: string | undefined; header: string | undefined }>;
  let base: string;
  before(async () => {
    seen = [];
    server = createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, header: req.headers['x-probe'] as string | undefined });
      res.writeHead(200, { 'Content-Length': 2, ETag: '"e"' }).end('ok');
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((ok) => server.close(() => ok())));

  it("are undici's public Agent and the request method undici gives every dispatcher", () => {
    expect(Agent).to.equal(undici.Agent);
    expect(requestApi).to.equal(undici.Dispatcher.prototype.request);
  });

  it("sends the path, query and headers undici's own request sends, and reads the response", async () => {
    const url = `${base}/dir%20one/file%2Bname.data?x=1&y=%C3%A9`;
    const agent = new Agent({ connections: 1 });
    try {
      const ours = await request(url, { method: 'GET', headers: { 'x-probe': 'ours' }, dispatcher: agent });
      expect(ours.statusCode).to.equal(200);
      expect(ours.headers.etag).to.equal('"e"');
      expect(await ours.body.text()).to.equal('ok');
      const theirs = await undici.request(url, { method: 'GET', headers: { 'x-probe': 'ours' }, dispatcher: agent });
      await theirs.body.dump();
      expect(seen).to.have.length(2);
      expect(seen[0]).to.deep.equal(seen[1]);
      expect(seen[0]).to.deep.equal({ method: 'GET', url: '/dir%20one/file%2Bname.data?x=1&y=%C3%A9', header: 'ours' });
    } finally {
      await agent.close();
    }
  });
});
