#!/usr/bin/env bash
# GPU checks and timings, in parts that each fit one 10-minute call on a lent GPU machine.
#
#   bash benchmarks/gpu_check.sh PART [PART ...]   # parts: env precision kernels step tests alltests gowalla
#                                                  #        distill gowalla_distill netflix
#
# First GPU session (2026-11-25, H100, 30 min): env precision step kernels, gowalla, netflix (∞-AE only),
# tests (cut at 25 %), distill; gowalla_distill was cut at its 140 s limit. Next time, in this order:
# alltests (the suite has never run whole on a GPU), gowalla_distill with --compile-cache, netflix's EASE,
# then a second `precision` run with a warm compile cache to measure what the cache saves.
#
# Needs: cfbench's dependencies importable by `python3` (the GPU image has them), the datasets under
# $CFBENCH_DATA_DIR (default: .devdata/data, a copy of ../shared/data carried with the call), and $OUT
# (a folder whose files come back). Every part writes its log and results under $OUT and prints a
# short summary last. Not a test: the numbers go to docs/performance.md ("GPU").
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export CFBENCH_DATA_DIR=${CFBENCH_DATA_DIR:-$PWD/.devdata/data}
export PYTHONUNBUFFERED=1
PY=${PY:-python3}

install() {
  # No registry on the GPU machine: cfbench itself only (its dependencies are in the image).
  $PY -m pip install -q -e . --no-deps --no-build-isolation 2>&1 | tail -3
}

part_env() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
  $PY - <<'EOF'
import jax, jaxlib, numpy, scipy, platform, os
print("python", platform.python_version(), "jax", jax.__version__, "jaxlib", jaxlib.__version__,
      "numpy", numpy.__version__, "scipy", scipy.__version__, "cpus", os.cpu_count())
print("devices", jax.devices())
d = jax.devices("gpu")[0]
print("memory_stats", {k: v for k, v in (d.memory_stats() or {}).items() if "limit" in k or "in_use" in k})
EOF
}

# ML-1M full data, both models, on the GPU: true float32 (the default) and TF32 (JAX's default).
part_precision() {
  for prec in highest default; do
    echo "== ML-1M full, both models, matmul precision $prec"
    local t0=$SECONDS
    CFBENCH_MATMUL_PRECISION=$prec timeout 200 $PY -m cfbench.cli run --dataset ml-1m --samplers full \
      --models infinite-ae,ease --seeds 0 --device gpu --results-dir "$OUT/ml1m-full-$prec" --no-report -q
    echo "wall $((SECONDS - t0)) s"
    $PY benchmarks/unit_table.py "$OUT/ml1m-full-$prec/ml-1m" 2>&1 | tail -5
  done
}

part_kernels() {
  JAX_DEFAULT_MATMUL_PRECISION=highest timeout 240 $PY -m pytest tests/benchmarks --benchmark-only -q \
    -p no:cacheprovider --benchmark-json "$OUT/kernels.json" --benchmark-columns=median,min,max,rounds 2>&1 | tail -30
}

part_step() {
  JAX_DEFAULT_MATMUL_PRECISION=highest timeout 240 $PY benchmarks/distill_step.py --data-dir "$CFBENCH_DATA_DIR" \
    --budgets 50,500 --taus 5 --steps 8 2>&1 | tail -20
}

# The whole test suite on the GPU, serially (never run in parallel here: xdist is untested), Ray tests left out
# (the image has no Ray; they would be skipped anyway).
part_alltests() {
  XLA_PYTHON_CLIENT_PREALLOCATE=false timeout ${TESTS_TIMEOUT:-540} $PY -m pytest -q -p no:cacheprovider --durations=15 \
    --ignore=tests/test_executors.py 2>&1 | tail -25
}

part_tests() {
  XLA_PYTHON_CLIENT_PREALLOCATE=false timeout ${TESTS_TIMEOUT:-300} $PY -m pytest -q -p no:cacheprovider \
    tests/test_devices.py tests/test_ntk.py tests/test_models.py tests/test_numerics_shared.py tests/test_memory.py \
    tests/test_evaluation.py tests/samplers 2>&1 | tail -15
}

part_gowalla() {
  echo "== Gowalla full data, both models, on the GPU"
  local t0=$SECONDS
  timeout 560 $PY -m cfbench.cli run --dataset gowalla --samplers full --models infinite-ae,ease --seeds 0 \
    --device gpu --results-dir "$OUT/gowalla-full" --no-report -q
  echo "wall $((SECONDS - t0)) s"
  $PY benchmarks/unit_table.py "$OUT/gowalla-full/gowalla" 2>&1 | tail -5
}

# Whole Distill-CF distillations on the GPU: ML-1M at 500 synthetic users; Gowalla at 1,000 (user mini-batches).
part_distill() {
  local t0=$SECONDS
  timeout ${DISTILL_TIMEOUT:-300} $PY -m cfbench.cli run --dataset ml-1m --samplers distill-cf --budgets 500 \
    --models infinite-ae,ease --seeds 0 --device gpu --results-dir "$OUT/ml1m-distill" --no-report -q
  echo "wall $((SECONDS - t0)) s"
  $PY benchmarks/unit_table.py "$OUT/ml1m-distill/ml-1m" 2>&1 | tail -3
}

part_gowalla_distill() {
  local t0=$SECONDS
  timeout ${DISTILL_TIMEOUT:-300} $PY -m cfbench.cli run --dataset gowalla \
    --samplers distill-cf-robust:validation_users=4096 --budgets 1000 --models infinite-ae,ease --seeds 0 \
    --device gpu --results-dir "$OUT/gowalla-distill" --compile-cache /tmp/jax-cache --no-report -q
  echo "wall $((SECONDS - t0)) s"
  $PY benchmarks/unit_table.py "$OUT/gowalla-distill/gowalla" 2>&1 | tail -3
}

part_netflix() {
  echo "== synth-netflix, random users 500, both models, on the GPU"
  local t0=$SECONDS
  timeout 560 $PY -m cfbench.cli run --dataset synth-netflix --samplers random-users --budgets 500 \
    --models infinite-ae,ease --seeds 0 --device gpu --results-dir "$OUT/netflix" --no-report -q
  echo "wall $((SECONDS - t0)) s"
  $PY benchmarks/unit_table.py "$OUT/netflix/synth-netflix" 2>&1 | tail -5
}

install
for part in "$@"; do
  echo "######## $part $(date +%T)"
  "part_$part" 2>&1 | tee "$OUT/$part.log"
done
echo "######## done $(date +%T)"
# Results folders are many small files: one archive comes back.
(cd "$OUT" && tar czf results.tgz --exclude=results.tgz --exclude='*.log' . 2>/dev/null)
