#!/usr/bin/env bash
# The GPU half of rtsep's checks in one command, for a machine with an NVIDIA GPU:
#   1. the CUDA tests (pytest -m gpu): CUDA graph = eager, the streaming law on CUDA, CUDA = CPU,
#      eight streams in one graph launch = each stream alone;
#   2. rtsep bench --device cuda, eager vs CUDA graph: live sizes (each model's own hop, then
#      128-sample blocks where the hop is configurable), 1 / 8 / 64 streams, paper sizes.
# Everything lands in $OUT (default out/device): log.txt and results.tgz (bench JSON, Markdown, PNGs,
# the tests' JUnit XML), packed again after every stage so that a cut-short run keeps what it finished.
#
# Usage: bash tools/device_check.sh          (PYTHON=python3 by default; needs torch with CUDA)
#        STAGES="tests compiled" bash tools/device_check.sh     (a subset; the list is below)
# Wheels in .whl/ (packages the machine lacks) are installed to /tmp/site first, when present; a
# folder .devweights/ of config-only checkpoints stands in for weights/ when weights/ is absent, so
# that the bench times models with the shipped hyperparameters without carrying the weights.
set -uo pipefail
PY=${PYTHON:-python3}
OUT=${OUT:-out/device}
WORK=$(mktemp -d)
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
if [ ! -d weights ] && [ -d .devweights ]; then cp -r .devweights weights; fi
pack() { tar czf "$OUT/results.tgz" -C "$WORK" . ; }
stage() {  # stage NAME SECONDS COMMAND...: run with a time limit, say how it ended, pack the results
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "=== $name (limit ${limit}s)"
    timeout "$limit" "$@"
    rc=$?
    echo "=== $name: rc $rc in $((SECONDS - start)) s"
    pack
}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu --format=csv
$PY -c "import torch, numba; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numba', numba.__version__, \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA')"
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu GRAPH=off: a dry run of this script on a machine without a GPU
GRAPH=${GRAPH:-both}
bench=("$PY" -m rtsep bench --device "$DEVICE" --repeats "${REPEATS:-200}" --max-seconds 2)
STAGES=${STAGES:-tests live block128 streams paper}  # also: compiled simulate
for name in $STAGES; do
    case $name in
        tests) stage tests 120 $PY -m pytest -q -p no:cacheprovider -m gpu tests/models/test_graph.py tests/engine/test_processor_graph.py --timeout 120 \
            --junitxml="$WORK/gpu-tests.xml" ;;
        live) stage live 110 "${bench[@]}" --arch all --graph $GRAPH --out "$WORK/live" ;;
        block128) stage block128 40 "${bench[@]}" --arch tasnet,convtasnet,wave_unet,demucs --graph $GRAPH \
            --blocksize 128 --out "$WORK/block128" ;;
        streams) stage streams 90 "${bench[@]}" --arch all --graph ${GRAPH/both/on} --streams 1,8,64 \
            --out "$WORK/streams" ;;
        paper) stage paper 140 "${bench[@]}" --arch all --size paper --graph $GRAPH --out "$WORK/paper" ;;
        # torch.compile's fused kernels under the graph, for the models with the most kernels per hop
        compiled) stage compiled 200 "${bench[@]}" --arch convtasnet,tasnet,wave_unet,openunmix --variant causal \
            --graph ${GRAPH/both/on} --compile --blocksize 128 --out "$WORK/compiled" ;;
        # steps paced at the hop rate for 5 s each, deadline misses counted
        simulate) stage simulate 80 "${bench[@]}" --arch all --variant causal --graph ${GRAPH/both/on} \
            --simulate 5 --out "$WORK/simulate" ;;
        *) echo "unknown stage $name (tests live block128 streams paper compiled simulate)"; exit 2 ;;
    esac
done
ls -R "$WORK"
