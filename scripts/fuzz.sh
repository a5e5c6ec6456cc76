#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (one per parser of untrusted input; DESIGN.md invariant 3).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     # default: 60 s, every target
#
# CI runs it as a smoke test (`.ci/run`: 15 s per target, a crash fails the run); longer runs by
# hand before a release or after touching a parser. See docs/fuzzing.md.
#
# * installs cargo-fuzz if missing (`cargo install cargo-fuzz --locked`, a few minutes once);
# * uses the stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z sanitizer flags);
# * release build with debug assertions and overflow checks (-O -a) and AddressSanitizer;
# * a single allocation above 512 MB counts as a crash (-malloc_limit_mb=512: "never allocate
#   unboundedly from a length field"), as does RSS above libFuzzer's default 2 GB;
# * builds into a separate target dir ($CARGO_TARGET_DIR, default /root/.cache/mw-target-fuzz);
# * runs each target for SECONDS_PER_TARGET with libFuzzer's -max_total_time, the growing corpus
#   in fuzz/corpus/<target>/ (git-ignored) seeded from fuzz/seeds/<target>/;
# * stops at the first crash and prints where the reproducer is (fuzz/artifacts/<target>/).
set -euo pipefail

secs="${1:-60}"
shift || true
case "$secs" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/mw-target-fuzz}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    nice -n 10 cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

nice -n 10 cargo fuzz build -O -a

for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    seeds="fuzz/seeds/$t"
    mkdir -p "$corpus"
    [ -d "$seeds" ] || seeds=""
    log="$CARGO_TARGET_DIR/fuzz-$t.log"
    echo "fuzz.sh: $t for ${secs}s (log: $log)" >&2
    set +e
    # Later corpus dirs are read-only inputs: the seeds are never modified.
    nice -n 10 cargo fuzz run -O -a "$t" "$corpus" $seeds -- \
        -max_total_time="$secs" -malloc_limit_mb=512 -print_final_stats=1 2>&1 | tee "$log" | grep -E '^(#[0-9]+ *DONE|Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread .* panicked)' >&2
    rc=${PIPESTATUS[0]}
    set -e
    if [ "$rc" -ne 0 ]; then
        echo "fuzz.sh: $t FAILED (exit $rc); last lines of $log:" >&2
        tail -n 40 "$log" >&2
        artifact="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/Test unit written to //')"
        if [ -n "$artifact" ]; then
            echo "fuzz.sh: reproducer: $artifact" >&2
            echo "fuzz.sh: replay with: RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo fuzz run -O -a $t $artifact" >&2
        fi
        exit 1
    fi
    execs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)"
    echo "fuzz.sh: $t ok, ${execs:-?} executions in ${secs}s" >&2
done
echo "fuzz.sh: all ${#targets[@]} target(s) ran ${secs}s each without a crash" >&2
