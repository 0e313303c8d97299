#!/usr/bin/env bash
# One device call, from the repository root: the cuda tox suite (the whole test suite with the
# shared matrix on the GPU), then prefill and decode side by side with the peers.
#
#   bash benchmarks/gpu_all.sh "$OUT" [STEP ...]    STEP: tox, prefill, decode, hf (default: all)
#
# tox comes from wheels carried in .whl/ (the GPU machine has no network; tox.ini's [gpu] section
# says which). Each step has a wall-clock limit so that one call fits the device tool's 10 minutes;
# a step that fails or times out does not stop the others (PREFILL_ARGS replaces the prefill
# step's time limits and may pick dtypes, e.g. "--dtypes bf16 --prepare-s 120 --budget-s 300"). Writes under OUT: tox-cuda.log,
# prefill.log, prefill/{results.json,summary.md}, decode.log, decode/{results.json,summary.md},
# hf.log, hf_check.json.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_all.sh OUT [tox] [prefill] [decode] [hf]}
shift
steps=" ${*:-tox prefill decode hf} "
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader

if [[ $steps == *" tox "* ]]; then
site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/tox-site .whl/*.whl
start=$SECONDS
PYTHONPATH=/tmp/tox-site TQFA_GPU_SITE=$site timeout "${TOX_S:-200}" \
    python3 -m tox -e cuda --workdir /tmp/tox -- -v -rfE -n 14 -p no:cacheprovider --timeout 150 \
    >"$out/tox-cuda.log" 2>&1
echo "tox -e cuda: exit $? after $((SECONDS - start)) s"
grep -E "FAILED|ERROR" "$out/tox-cuda.log" | head -30
tail -n 2 "$out/tox-cuda.log"
fi

if [[ $steps == *" prefill "* ]]; then
start=$SECONDS
PYTHONPATH=src timeout "${PREFILL_S:-250}" python3 benchmarks/gpu_compare.py --out "$out/prefill" \
    --variants --skip-tests ${PREFILL_ARGS:---prepare-s 100 --budget-s 205} >"$out/prefill.log" 2>&1
echo "prefill: exit $? after $((SECONDS - start)) s"
rm -f "$out/prefill/jobs.jsonl"  # its errors are in results.json (job_errors)
tail -n 42 "$out/prefill/summary.md" 2>/dev/null || tail -n 20 "$out/prefill.log"
fi

if [[ $steps == *" decode "* ]]; then
start=$SECONDS
PYTHONPATH=src timeout "${DECODE_S:-165}" python3 benchmarks/gpu_decode.py --out "$out/decode" \
    --skip-tests --budget-s 140 >"$out/decode.log" 2>&1
echo "decode: exit $? after $((SECONDS - start)) s"
tail -n 60 "$out/decode/summary.md" 2>/dev/null || tail -n 20 "$out/decode.log"
fi

if [[ $steps == *" hf "* ]]; then
start=$SECONDS
PYTHONPATH=src timeout "${HF_S:-90}" python3 benchmarks/gpu_hf_check.py --out "$out" >"$out/hf.log" 2>&1
echo "hf: exit $? after $((SECONDS - start)) s"
tail -n 12 "$out/hf.log"
fi
