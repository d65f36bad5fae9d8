#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan + UBSan) in build-fuzz/ and run
# each for FUZZ_SECONDS (default 60) on a copy of its seed corpus, so the
# seeds in tests/fuzz/corpus/ stay as committed. Fails if any target finds a
# crash, a leak, a timeout or an out-of-memory; the crashing inputs are left
# in build-fuzz/artifacts/<target>/ and the log in build-fuzz/logs/.
#
#   tests/fuzz/run.sh                  every target, 60 s each
#   FUZZ_SECONDS=600 tests/fuzz/run.sh fuzz_output
#   FUZZ_JOBS=2 tests/fuzz/run.sh      two targets at a time
#
# Reproduce a crash: build-fuzz/fuzz/<target> build-fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
BUILD=build-fuzz
ALL="fuzz_spec fuzz_batch fuzz_route fuzz_output fuzz_node"
TARGETS=${*:-$ALL}

if ! command -v clang >/dev/null; then
  echo "run.sh: clang is needed (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
if ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "run.sh: the libFuzzer runtime is missing; installing libclang-rt-14-dev" >&2
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-rt-14-dev
fi

cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DJOBD_FUZZ=ON -DJOBD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "$(nproc)" --target $TARGETS

mkdir -p "$BUILD/artifacts" "$BUILD/logs" "$BUILD/work" "$BUILD/tmp"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Output files go to a tmpfs when there is one: the output target writes many.
if [ -w /dev/shm ]; then TMPDIR=$(mktemp -d /dev/shm/jobd-fuzz-XXXXXX); else TMPDIR=$PWD/$BUILD/tmp; fi
export TMPDIR

dict_of() {
  case $1 in
    fuzz_spec) echo tests/fuzz/spec.dict ;;
    fuzz_batch) echo tests/fuzz/batch.dict ;;
    fuzz_route) echo tests/fuzz/route.dict ;;
    fuzz_node) echo tests/fuzz/node.dict ;;
    *) echo "" ;;
  esac
}

# Run one target; its status is written to $BUILD/logs/<target>.rc.
run_one() {
  local t=$1 work=$BUILD/work/$1 art=$BUILD/artifacts/$1 dict
  rm -rf "$work"
  mkdir -p "$work" "$art"
  cp tests/fuzz/corpus/"$t"/* "$work"/
  dict=$(dict_of "$t")
  local rc=0
  "$BUILD/fuzz/$t" ${dict:+-dict="$dict"} -max_total_time="$SECONDS_EACH" -timeout=5 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$art/" \
    "$work" >"$BUILD/logs/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$BUILD/logs/$t.rc"
}

running=0
for t in $TARGETS; do
  echo "fuzz: $t for ${SECONDS_EACH}s"
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
for t in $TARGETS; do
  rc=$(cat "$BUILD/logs/$t.rc")
  execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$BUILD/logs/$t.log")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$BUILD/logs/$t.log" | tail -1)
  if [ "$rc" = 0 ]; then
    echo "fuzz: $t ok: ${execs:-?} inputs in ${SECONDS_EACH}s, $cov"
  else
    echo "fuzz: $t FAILED (exit $rc), log $BUILD/logs/$t.log, inputs in $BUILD/artifacts/$t/:" >&2
    ls "$BUILD/artifacts/$t" >&2 || true
    grep -m1 -E 'ERROR: |runtime error:|fuzz check failed' "$BUILD/logs/$t.log" >&2 || true
    failed=1
  fi
done
rm -rf "$BUILD/tmp"
[ "$TMPDIR" = "$PWD/$BUILD/tmp" ] || rm -rf "$TMPDIR"
exit "$failed"
