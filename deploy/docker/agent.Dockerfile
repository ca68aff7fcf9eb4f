# syntax=docker/dockerfile:1
# Agent image: build stage compiles the BPF objects (and checks them against the committed
# prebuilt ones), the native addon and type-checks the TypeScript; the runtime stage carries only
# libbpf, Node and the app. Runs as root with only the capabilities the DaemonSet grants.
FROM node:20.20.2-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool make g++ python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
COPY agent/native agent/native
RUN npm ci --no-audit --no-fund
COPY . .
# vmlinux.h comes from the build host's BTF; CO-RE relocates at load time on the node's kernel.
RUN if [ -r /sys/kernel/btf/vmlinux ]; then make -C bpf; fi
RUN npx tsc -p tsconfig.json --noEmit && npm run build:dist && npm prune --omit=dev

FROM node:20.20.2-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libbpf1 libelf1 zlib1g \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/agent agent
COPY --from=build /src/collector collector
COPY --from=build /src/proto proto
COPY --from=build /src/lib lib
COPY --from=build /src/dist dist
COPY --from=build /src/bpf/tcp/tcp.bpf.o bpf/tcp/
COPY --from=build /src/bpf/proc/proc.bpf.o bpf/proc/
ENV NODE_ENV=production
# Two glibc malloc arenas instead of one per thread (ring reader, libuv and V8 workers): ~5 MB
# less RSS at 10k events/s for the same CPU (tests/bench/agent-pipeline.bench.ts, paced run).
ENV MALLOC_ARENA_MAX=2
EXPOSE 8081
# The esbuild bundle: no TypeScript loader at run time (~40 MB less RSS per node). A young
# generation capped at 8 MiB semi-spaces keeps RSS ~10 MB lower at 10k events/s for the same CPU.
# --single-threaded: V8 garbage-collects and compiles on the main thread instead of in four
# helper threads; at 10k events/s the CPU per event is the same and the RSS peak drops from
# 91–99 MB to a steady 90 MB (docs/performance.md). The bench reads these flags and ENV lines
# from here (scripts/image-runtime.mjs); tests/e2e/dist-bundle.test.ts checks scripts/start.sh
# uses the same.
ENTRYPOINT ["node", "--max-semi-space-size=8", "--single-threaded", "dist/agent.mjs"]
CMD ["run"]
