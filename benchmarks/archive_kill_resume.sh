#!/bin/bash
# A whole-archive run killed in the middle and resumed, as issue 20 asks to check it:
#   benchmarks/archive_kill_resume.sh [N structures, default 120] [seconds before the kill, 45]
# The first N files of ../shared/data/pretrain, 2 torchrun workers, --resume and --table; the
# run is sent SIGTERM (the whole process group, as a scheduler does) after the given seconds, then
# re-run with the same command. Prints how many finished files the second run rewrote (0 is
# right), any hidden leftovers in OUT, the progress lines and the table's size. KEEP=1 keeps the
# work folder (printed) for a comparison with single-file predict.
set -u
N=${1:-120}
AFTER=${2:-45}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
W=$(mktemp -d)
export PYTHONPATH=$ROOT OMP_NUM_THREADS=1
find "$ROOT/../shared/data/pretrain" -maxdepth 1 -type f \
    \( -name '*.pdb' -o -name '*.cif' -o -name '*.pdb.gz' -o -name '*.cif.gz' \) | sort | head -"$N" > "$W/list.txt"
CMD=("$PY" -m torch.distributed.run --standalone --nproc-per-node 2 -m qfitlatent predict
     --list "$W/list.txt" --out "$W/out" --table "$W/t.parquet" --resume)
start=$(date +%s)
setsid "${CMD[@]}" > "$W/first.out" 2> "$W/first.err" &
pid=$!
sleep "$AFTER"
kill -TERM -- -"$pid"
wait "$pid"
echo "first run: exit $? after $(( $(date +%s) - start )) s, $(ls "$W/out" | wc -l) of $N folders"
find "$W/out" -mindepth 2 -type f ! -path '*/.*' -printf '%p %i %T@\n' | sort > "$W/before.txt"
start=$(date +%s)
"${CMD[@]}" > "$W/second.out" 2> "$W/second.err"
echo "second run: exit $? in $(( $(date +%s) - start )) s, $(grep -c '→' "$W/second.out") predicted"
find "$W/out" -mindepth 2 -type f -printf '%p %i %T@\n' | sort > "$W/after.txt"
echo "finished files rewritten: $(comm -23 "$W/before.txt" "$W/after.txt" | wc -l) of $(wc -l < "$W/before.txt")"
echo "hidden leftovers in OUT: $(find "$W/out" -mindepth 1 -name '.*' | wc -l)"
grep 'structures' "$W/second.err" | grep -v ETA
"$PY" -c "import pandas as pd; t = pd.read_parquet('$W/t.parquet'); print(f'table: {len(t):,} residues, {t.structure.nunique()} structures')"
if [ -n "${KEEP:-}" ]; then echo "kept: $W"; else rm -rf "$W"; fi
