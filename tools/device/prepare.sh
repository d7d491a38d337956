#!/usr/bin/env bash
# Prepares, on this machine, what a run on the lent GPU machine (the `device` tool) needs, since
# that machine has no Deno and no network (see bench/gpu_throughput.ts and tools/device/run.sh):
#   .device/deno.xz   the Deno binary of npm's deno@2.9.6, xz-compressed (~30 MB)
#   .gl/*.deb         the Vulkan and GL loaders (Debian amd64), unpacked there by run.sh
# Both are ignored by git; name them in the run's `carry`: [".device", ".gl"].
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=2.9.6
mkdir -p .device
if [ ! -s .device/deno.xz ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm init -y >/dev/null && npm i --silent "deno@$VERSION" >/dev/null)
  bin=$(find "$tmp/node_modules" -type f -name deno -perm -u+x | grep -v '/bin/deno$' | head -1)
  [ -n "$bin" ] || bin=$(find "$tmp/node_modules" -type f -name deno | head -1)
  "$bin" --version | head -1
  xz -6 -T0 -c "$bin" > .device/deno.xz
  rm -rf "$tmp"
fi
if ! ls .gl/*.deb >/dev/null 2>&1; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update >/dev/null
  # shellcheck disable=SC2086
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .device .gl
