# syntax=docker/dockerfile:1
# Collector image: pure TypeScript plus the zstd bindings; runs as a non-root user.
FROM node:20.20.2-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
# The agent's native addon is not needed here: skip install scripts, then build only zstd-napi.
RUN npm ci --no-audit --no-fund --ignore-scripts && npm rebuild zstd-napi
COPY collector collector
COPY proto proto
COPY lib lib
COPY tsconfig.json ./
COPY scripts/build-dist.mjs scripts/
RUN node scripts/build-dist.mjs collector && npm prune --omit=dev

FROM node:20.20.2-bookworm-slim
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/collector collector
COPY --from=build /src/proto proto
COPY --from=build /src/lib lib
COPY --from=build /src/dist dist
RUN groupadd --system --gid 10001 kscope && useradd --system --uid 10001 --gid kscope kscope
USER 10001:10001
ENV NODE_ENV=production
EXPOSE 4317 4318 8888
# the esbuild bundle: no TypeScript loader at run time; 64 MiB semi-spaces so a decoded request
# dies young (collector/src/runtime.ts says why; a test keeps the two equal)
ENTRYPOINT ["node", "--max-semi-space-size=64", "dist/collector.mjs"]
