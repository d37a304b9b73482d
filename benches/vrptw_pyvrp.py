"""PyVRP on the same Solomon instances, for the side-by-side comparison with benches/vrptw.rs.

DIMACS convention (round_func="dimacs": every value scaled by 10 and truncated), distance only,
one thread, a time budget per instance. Each solution is written in the VRPLIB layout and checked
by `hestami route check` (the same rules as the Rust benchmark's) before its distance is compared
with the best-known. Build the CLI first: `cargo build --release -p hestami-cli`.

    python3 benches/vrptw_pyvrp.py [--seconds S] [--seed N] [--only C101,R101] [--csv PATH]
"""
import argparse, csv, os, re, subprocess, sys, tempfile, time

import vrplib
from pyvrp import solve
from pyvrp.read import ROUND_FUNCS, _InstanceParser, _ProblemDataBuilder
from pyvrp.stop import MaxRuntime

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "vrptw", "solomon")
HESTAMI = os.path.join(HERE, "..", "target", "release", "hestami")


def check(path, routes):
    """Vehicles, DIMACS distance and errors of `routes`, as `hestami route check` finds them."""
    with tempfile.NamedTemporaryFile("w", suffix=".sol", delete=False) as f:
        f.write("".join(f"Route #{i + 1}: {' '.join(map(str, r))}\n" for i, r in enumerate(routes)))
    out = subprocess.run([HESTAMI, "route", "check", path, f.name], capture_output=True, text=True)
    os.unlink(f.name)
    m = re.search(r"^dimacs: vehicles=(\d+) distance=([0-9.]+) errors=(.*)$", out.stdout, re.M)
    if not m:
        sys.exit(f"hestami route check failed: {out.stderr}")
    return int(m.group(1)), float(m.group(2)), ([] if m.group(3) == "[]" else [m.group(3)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default=None)
    ap.add_argument("--csv", default=os.path.join(HERE, "vrptw-pyvrp-results.csv"))
    a = ap.parse_args()
    bks = {r["instance"]: r for r in csv.DictReader(open(os.path.join(DATA, "bks_distance_only.csv")))}
    names = sorted(f[:-4] for f in os.listdir(DATA) if f.endswith(".txt"))
    if a.only:
        names = [n for n in names if n in a.only.split(",")]
    rows, gaps = [], []
    for name in names:
        path = os.path.join(DATA, name + ".txt")
        inst = vrplib.read_instance(path, instance_format="solomon", compute_edge_weights=True)
        inst["dimension"] = len(inst["node_coord"])
        data = _ProblemDataBuilder(_InstanceParser(inst, ROUND_FUNCS["dimacs"])).data()
        start = time.perf_counter()
        res = solve(data, stop=MaxRuntime(a.seconds), seed=a.seed, display=False)
        elapsed = time.perf_counter() - start
        routes = [[a.idx + 1 for a in r if a.is_client()] for r in res.best.routes()]
        v, d, errs = check(path, routes)
        b = float(bks[name]["distance"])
        gap = 100 * (d - b) / b
        ok = res.best.is_feasible() and not errs
        print(f"{name:<9} pyvrp  {v:>4} {bks[name]['vehicles']:>4} {d:>10.2f} {b:>10.2f} {gap:>7.2f} "
              f"{res.num_iterations:>9} {'yes' if ok else 'NO'}", flush=True)
        rows.append([name, "pyvrp-dimacs", a.seconds, a.seed, v, f"{d:.4f}", bks[name]["vehicles"], b,
                     f"{gap:.4f}", res.num_iterations, f"{elapsed:.3f}", ok])
        gaps.append(gap)
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["instance", "mode", "seconds", "seed", "vehicles", "distance", "bks_vehicles",
                    "bks_distance", "gap_percent", "iterations", "elapsed_s", "feasible"])
        w.writerows(rows)
    gaps.sort()
    print(f"summary pyvrp-dimacs: {len(gaps)} instances, mean gap {sum(gaps) / len(gaps):.2f}%, "
          f"median {gaps[len(gaps) // 2]:.2f}%, max {gaps[-1]:.2f}%")


if __name__ == "__main__":
    main()
