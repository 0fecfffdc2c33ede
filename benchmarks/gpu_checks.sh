#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md in one run, on one GPU; each part's JSON and log go to OUTDIR.
#
#   benchmarks/gpu_checks.sh OUTDIR [diffusion|resnet|all]
#
# diffusion (estimated 4 minutes on an H100-class GPU): LatentDiffusionGenerator at 512 px with
#   SD 1.5's architecture (random weights, the trained model's FLOPs): images/s and the
#   fraction of the GPU's peak for bf16 and fp16, batch 8/16/32, PNDM at 50 and 20 steps;
#   then bf16 batch 16 eager against torch.compile, PNDM and DPM-Solver++ at 50 and 20
#   steps. The JSON holds the projection for 1.1M images on 1, 8 and 64 GPUs.
# resnet (estimated 5-7 minutes at EPOCHS=3 with 16 CPU cores): builds the `small` preset (55,000
#   subjects) into data/small (resuming a build cut short), then trains the paper's ResNet18 at
#   224 px per noise level (batch 16, Adam 1e-3) and scores every baseline: Table 1 and 2
#   from full-resolution training.
#
# Environment: PYTHON (default python3), EPOCHS (default 3), WORKERS (build workers,
# default all cores). The package must import (pip install -e ".[all]", or PYTHONPATH).
# A step that fails is logged and the others still run; the exit status is the last
# failure's.
set -euo pipefail
out=${1:?usage: benchmarks/gpu_checks.sh OUTDIR [diffusion|resnet|all]}
part=${2:-all}
case $part in
    diffusion | resnet | all) ;;
    *) echo "gpu_checks.sh: unknown part '$part'; use diffusion, resnet or all" >&2 && exit 2 ;;
esac
py=${PYTHON:-python3}
out=$(mkdir -p "$out" && cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    "$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
} | tee "$out/gpu.txt"

rc=0
step() {  # run one measurement; on failure say so and carry on
    "$@" || { rc=$?; echo "gpu_checks.sh: failed ($rc): $*" >&2; }
}

if [[ $part == diffusion || $part == all ]]; then
    {
        step "$py" benchmarks/bench_diffusion.py --device cuda --dtype bf16 fp16 \
            --scheduler pndm --steps 50 20 --batch-size 8 16 32 \
            --out "$out/bench_sd_dtype_batch.json"
        step "$py" benchmarks/bench_diffusion.py --device cuda --dtype bf16 --compile off on \
            --scheduler pndm dpm --steps 50 20 --batch-size 16 --out "$out/bench_sd_compile.json"
    } > >(tee "$out/diffusion.log") 2>&1
fi

if [[ $part == resnet || $part == all ]]; then
    {
        start=$SECONDS
        step "$py" -m synthoct_bench.cli build --preset small --workers "${WORKERS:-$(nproc)}" \
            --out data/small --resume --no-progress
        echo "build of the small preset: $((SECONDS - start)) s"
        # the run's folder holds checkpoints and submissions; only its results travel to OUTDIR
        step "$py" baselines/results_table.py --data data/small --out runs/small224 \
            --epochs "${EPOCHS:-3}" --input-size 224 --batch-size 16 --device cuda \
            --no-progress --json "$out/small224.json"
        cp runs/small224/results.png "$out/small224.png" 2>/dev/null || true
    } > >(tee "$out/resnet.log") 2>&1
fi
wait  # for the tee processes to flush the logs
exit $rc
