# Sourced by the GPU attention scripts (gpu-attention-hopper*.sh): Node on the PATH (unpacked from .device on the
# GPU machine), the log folder $out (OUT, default gpu-logs), the card in $out/env.txt, and `step NAME COMMAND…`,
# which runs one command in its own process (a kernel that crashes the CUDA context cannot hide the others), logs
# it to $out/NAME.log, shows its test and timing lines (at most $STEP_LINES, default 60) and sets $status to 1 when
# the command fails.
out=${OUT:-gpu-logs}; mkdir -p "$out"
if ! command -v node >/dev/null; then tar xJf .device/node.tar.xz -C /opt && export PATH=/opt/node/bin:$PATH; fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$out/env.txt"
status=0
step() {  # name, command...
  local name=$1; shift
  echo "== $name"
  timeout 300 "$@" > "$out/$name.log" 2>&1
  local rc=$?
  grep -E '^ +(hopper-|auto |mma |tiled |decode )|✔|✖|﹣|ℹ (tests|pass|fail|skipped)|Error' "$out/$name.log" | grep -v '^ *at ' | head -"${STEP_LINES:-60}"
  echo "   exit $rc"
  [[ $rc -ne 0 ]] && status=1
}
