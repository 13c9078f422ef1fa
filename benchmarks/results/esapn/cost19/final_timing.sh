#!/bin/bash
# the brief's command, HEAD-before (8aa344b's esapn files) and new trees alternating
OUT=/work/main/benchmarks/results/esapn/cost19
for i in 1 2; do
  for t in old new; do
    cd /tmp/esapn19/$t && PYTHONPATH=/tmp/esapn19/$t nice -n 5 python /tmp/esapn19/$t/benchmarks/bench_esapn.py --out /tmp/e --datasets frappe,synthetic --timing 5 --timing-out $OUT/timing_cpu_${t}_$i.json 2>&1 | sed "s/^/$t $i /"
  done
done
cd /tmp/esapn19/new && PYTHONPATH=/tmp/esapn19/new nice -n 5 python /tmp/esapn19/ab.py frappe,synthetic 7 $OUT/old_new_one_process.json
