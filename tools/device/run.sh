#!/usr/bin/env bash
# Runs on the lent GPU machine (the `device` tool), after tools/device/prepare.sh here:
#   run: command "bash tools/device/run.sh", carry [".device", ".gl"], timeout_s 540
# Unpacks the loaders and Deno, then bench/gpu_throughput.ts --write; GPU_RESULTS.md, the log and
# the Vulkan summary come back in $OUT. RADAM_DEVICE_ARGS adds arguments (e.g. --small).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/radam-out}
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
DENO=/tmp/deno
xz -dc .device/deno.xz > "$DENO" && chmod +x "$DENO"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$DENO" --version
} > "$OUT/machine.txt" 2>&1
# shellcheck disable=SC2086
timeout 480 "$DENO" run --no-prompt --allow-sys=cpus --allow-write=bench \
  bench/gpu_throughput.ts --write ${RADAM_DEVICE_ARGS:-} > "$OUT/gpu_throughput.log" 2>&1
rc=$?
cp bench/GPU_RESULTS.md "$OUT/" 2>/dev/null
tail -40 "$OUT/gpu_throughput.log"
exit $rc
