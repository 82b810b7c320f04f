# One image for every role; ROLES picks what a container runs.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY services/package.json services/
COPY web/package.json web/
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build:web

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8787
COPY --from=build /app /app
# The embedded engine is not used in server mode, but its package is a
# dependency; the data directory holds only the disk spool here.
VOLUME ["/app/data"]
EXPOSE 8787
USER node
CMD ["node", "services/src/server.ts"]
