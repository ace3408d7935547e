# bucket-ingest container image.
#
#   docker build -t bucket-ingest .
#   docker run --rm -v ingest-data:/data -v ingest-registry:/registry bucket-ingest
#
# The default command runs the daemon with the `docker` profile of config.ini
# (DATABASE_URL=sqlite:///data/bucket-ingest.sqlite3,
# REGISTRY_PATH=/registry/docker.json). Any config key can be overridden with
# an environment variable of the same name, e.g. -e BUCKET_URL=... .
# Set HTTP_PORT=9464 and HTTP_HOST=0.0.0.0 to expose /healthz (docker-compose.yml
# does); the HEALTHCHECK below is a no-op while HTTP_PORT is unset.

########################################################################
# Builder: install all dependencies (better-sqlite3 is a native addon and may
# have to be compiled from source), compile TypeScript, then drop the
# dev dependencies so node_modules can be copied as-is to the runtime.
########################################################################
FROM node:20-bookworm-slim AS builder

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so this layer is cached until the lockfile changes.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY tsconfig*.json ./
COPY src ./src
COPY scripts ./scripts
COPY web ./web
# tsc, then esbuild links dist/bundle/ (the CLI the image runs; the database drivers stay in node_modules).
# cli.js is made executable here, so the runtime's `bucket-ingest` command (a link to it) adds no layer copy.
RUN npm run build \
    && chmod 755 dist/bundle/cli.js \
    && npm prune --omit=dev --no-audit --no-fund

########################################################################
# Runtime: same base image as the builder, so the compiled better-sqlite3
# binding matches its glibc and Node ABI.
########################################################################
FROM node:20-bookworm-slim AS runtime

# tini as PID 1: forwards SIGTERM/SIGINT to node and reaps zombies, so the
# daemon can finish its in-flight work and shut down cleanly on `docker stop`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Application files stay owned by root (read-only for the `node` user);
# only /data and /registry are writable.
COPY --from=builder /app/node_modules ./node_modules
COPY --from=builder /app/dist ./dist
COPY package.json config.ini ./
COPY examples ./examples
COPY schemas ./schemas

# Created in the image (owned by node) so that fresh named volumes mounted
# here are initialised with the right owner. `bucket-ingest` on PATH, for the
# operator commands: `docker compose exec ingest bucket-ingest status`.
RUN mkdir -p /data /registry \
    && chown node:node /data /registry \
    && ln -s /app/dist/bundle/cli.js /usr/local/bin/bucket-ingest

VOLUME ["/data", "/registry"]

# No heap cap here: the CLI limits V8's heap growth itself (src/cli.ts), which keeps peak RSS flat as buckets
# grow (README, Performance) without the hard ceiling of --max-old-space-size, where a bigger registry would
# crash the daemon instead of costing a few MB.
ENV NODE_ENV=production \
    PROFILE=docker

USER node

EXPOSE 9464

# Passes when HTTP_PORT is unset/off (the HTTP server is disabled then);
# otherwise requires GET /healthz on loopback to answer 2xx within 4 s.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["node", "-e", "const p=Number(process.env.HTTP_PORT);if(!Number.isInteger(p)||p<=0)process.exit(0);fetch('http://127.0.0.1:'+p+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),e=>{console.error(String(e));process.exit(1)})"]

ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/bundle/cli.js"]
CMD ["run", "--profile", "docker"]
