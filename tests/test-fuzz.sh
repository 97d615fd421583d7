#!/bin/sh
# Hostile QMP and HMP input to the access-rate tracker and the adaptive
# capability, with measurements and migrations running (issue 13): a
# short seeded run of scripts/fuzz-monitor.  `make fuzz` runs the long
# one.  Any failure prints the seed and case; rerun it with
#   scripts/fuzz-monitor --seed SEED --cases N -v
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
exec "$top/scripts/fuzz-monitor" --seed "${FUZZ_SEED:-1}" \
    --cases "${FUZZ_CASES:-1000}"
