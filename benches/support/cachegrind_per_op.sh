#!/bin/bash
# Instructions and simulated cache misses per operation of examples/profile_get,
# from cachegrind totals at two op counts (setup cancels out):
#   cargo build --profile bench --example profile_get
#   benches/support/cachegrind_per_op.sh target/release/examples/profile_get OUTDIR read larder-WTinyLfu
# WORKLOAD: read | evict (1 thread); CONTENDER: larder-<Policy> | quick_cache.
# D1 is cachegrind's default (the host's L1d); LL is set to 2 MiB, 16-way, to
# stand for one core's L2. Prints Ir, D1 and LL misses (reads, writes) per op.
# usage: cachegrind_per_op.sh BIN OUTDIR WORKLOAD CONTENDER [OPS1 OPS2]
BIN=$1; OUT=$2; W=$3; C=$4; N1=${5:-1000000}; N2=${6:-3000000}
mkdir -p "$OUT"
for N in $N1 $N2; do
  OPS=$N valgrind --tool=cachegrind --cache-sim=yes --LL=2097152,16,64 --cachegrind-out-file=$OUT/cg.$W.$C.$N $BIN $W 1 1 $C > $OUT/out.$W.$C.$N 2>&1
done
python3 - "$OUT" "$W" "$C" "$N1" "$N2" <<'PY'
import sys,re
out,w,c,t1,t2=sys.argv[1:]
def read(t):
    txt=open(f"{out}/out.{w}.{c}.{t}").read()
    ops=int(re.search(r"\((\d+) ops\)",txt).group(1))
    miss=re.search(r"miss ratio ([\d.]+)",txt).group(1)
    for line in open(f"{out}/cg.{w}.{c}.{t}"):
        if line.startswith("events:"): ev=line.split()[1:]
        if line.startswith("summary:"): vals=list(map(int,line.split()[1:]))
    return ops,miss,dict(zip(ev,vals))
o1,m1,a=read(t1); o2,m2,b=read(t2)
d=o2-o1
print(f"{w} {c}: ops {o1}->{o2} miss {m2} | " + " ".join(f"{k}/op {(b[k]-a[k])/d:.1f}" for k in ["Ir","D1mr","D1mw","DLmr","DLmw"]))
PY
