#!/bin/bash
# a copy of HEAD's embsearch with only esapn19's files from the working tree
set -e
rm -rf /tmp/esapn19/new && mkdir -p /tmp/esapn19/new
cd /work/main
git archive HEAD embsearch benchmarks/bench_esapn.py | tar -x -C /tmp/esapn19/new
for f in embsearch/controllers/esapn*.py embsearch/embeddings/supernets/growing.py benchmarks/bench_esapn.py; do cp $f /tmp/esapn19/new/$f; done
git rev-parse --short HEAD > /tmp/esapn19/new/REV
