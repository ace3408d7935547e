/**
 * A bare HTTP server on 127.0.0.1 (port 0) for tests that need responses the test bucket does not make (bodies
 * streamed without Content-Length, broken gzip, Last-Modified without ETag): the test writes each response itself.
 *
 * @example
 *   const server = await startRawServer((req, res) => res.end('[]'));
 *   // … GET ${server.url}/x …
 *   await server.close();
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface RawRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

export interface RawServer {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  /** Every request in arrival order. */
  requests: RawRequest[];
  /** Stops the server, destroying open sockets. Idempotent. */
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1, port 0, tracking sockets so `stop` can end hanging responses too; a client going away
 * mid-response never crashes the test run. Shared by the test bucket and the raw server.
 */
export async function listenOnLoopback(server: Server): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket: Socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    }),
  };
}

export async function startRawServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<RawServer> {
  const requests: RawRequest[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '/', headers: req.headers });
    handler(req, res);
  });
  const { port, stop } = await listenOnLoopback(server);
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => (closing ??= stop()),
  };
}
