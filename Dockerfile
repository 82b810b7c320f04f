# One image for every role; ROLES picks what a container runs (docker-compose.yml).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/contract/package.json packages/contract/
COPY services/package.json services/
COPY web/package.json web/
# npm ci checks every workspace of the lockfile, so the client-test manifest is
# copied too; only the product's workspaces are installed (the real clients the
# tests run, Claude Code and the Codex CLI among them, never enter the image).
COPY tests/clients/package.json tests/clients/
RUN npm ci --no-audit --no-fund --include-workspace-root -w packages/contract -w services -w web
COPY . .
# The dashboard is static files after this; its toolchain, the tests' tools and
# the `node` dev dependency are not needed at run time (tests/compose.test.ts
# checks that the services import only their production dependencies).
RUN npm run build:web && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8787 DATA_DIR=/app/data
COPY --from=build /app /app
# The data directory holds the disk spool and the quarantine in server mode.
# It must exist and belong to `node` before VOLUME, or a fresh volume is
# created owned by root and the spool cannot be written.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME ["/app/data"]
EXPOSE 8787
USER node
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8787/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Graceful stop on SIGTERM: stop taking requests, flush or spill the rows in memory.
STOPSIGNAL SIGTERM
CMD ["node", "services/src/server.ts"]
