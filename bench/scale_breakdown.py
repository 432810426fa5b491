#!/usr/bin/env python3
"""Where the time until all environments are Ready went (bench/operator_scale.sh).

Two views of one run:
- CPU: seconds each process of the control plane and the operator used between the apply
  and the last Ready (from /proc/<pid>/stat; on a machine with few cores the components
  compete for them, so CPU time is where wall time goes).
- Latency: each environment's path, from timestamps the API server recorded (second
  resolution, averaged over all environments):
    queue       environment created -> the operator's first write for it
    operator    first write -> its Deployment created (keyring, service account, ...)
    kube        Deployment created -> Available (controller-manager, scheduler, kwok)
    status      Deployment Available -> the environment's Ready condition
Reconcile time comes from the operator's histogram (API calls included).

usage: scale_breakdown.py CPU_BEFORE CPU_AFTER ENVS_JSON OWNED_JSON METRICS START_MS END_MS
CPU_* are lines `name ticks`; *_JSON are `kubectl get -o json` lists.
"""

import json
import os
import statistics
import sys
from datetime import datetime


def ts(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").timestamp()


def cpu(path):
    out = {}
    for line in open(path):
        name, ticks = line.split()
        out[name] = out.get(name, 0) + int(ticks)
    return out


def condition(obj, kind):
    for c in obj.get("status", {}).get("conditions") or []:
        if c["type"] == kind and c["status"] == "True":
            return ts(c["lastTransitionTime"])
    return None


def main():
    before, after, envs_f, owned_f, metrics_f, start_ms, end_ms = sys.argv[1:8]
    hz = os.sysconf("SC_CLK_TCK")
    b, a = cpu(before), cpu(after)
    used = {k: (a.get(k, 0) - b.get(k, 0)) / hz for k in a}
    total = sum(used.values())
    wall = (int(end_ms) - int(start_ms)) / 1000
    print(f"CPU seconds from the apply to all Ready ({wall:.0f} s wall, "
          f"{os.cpu_count()} cores on this machine):")
    for k, v in sorted(used.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<24} {v:7.1f} s  {100 * v / total:5.1f}%")
    op_share = 100 * used.get("operator", 0) / total if total else 0

    envs = json.load(open(envs_f))["items"]
    owned = json.load(open(owned_f))["items"]
    first_write, deploy = {}, {}
    for o in owned:
        env = (o["metadata"].get("labels") or {}).get("parity.dev/environment")
        if not env:
            continue
        t = ts(o["metadata"]["creationTimestamp"])
        first_write[env] = min(first_write.get(env, t), t)
        if o["kind"] == "Deployment":
            deploy[env] = (t, condition(o, "Available"))
    phases = {"queue": [], "operator": [], "kube": [], "status": []}
    created = []
    for e in envs:
        name = e["metadata"]["name"]
        c = ts(e["metadata"]["creationTimestamp"])
        created.append(c)
        r = condition(e, "Ready")
        if name not in first_write or name not in deploy or None in deploy[name] or r is None:
            continue
        d_created, d_avail = deploy[name]
        phases["queue"].append(first_write[name] - c)
        phases["operator"].append(d_created - first_write[name])
        phases["kube"].append(d_avail - d_created)
        phases["status"].append(r - d_avail)
    apply_s = max(created) - int(start_ms) / 1000 if created else 0
    print(f"the API server took {apply_s:.0f} s to accept all {len(envs)} environments "
          "(kubectl apply)")
    print(f"per environment ({len(phases['queue'])} with a Deployment; mean / p50 / max s):")
    means = {}
    for k, v in phases.items():
        if v:
            means[k] = statistics.mean(v)
            print(f"  {k:<9} {means[k]:7.1f} {statistics.median(v):7.1f} {max(v):7.1f}")
    path = sum(means.values())
    if path:
        print("  the operator's phases (queue, operator, status) are "
              f"{100 * (means['queue'] + means['operator'] + means['status']) / path:.0f}% "
              "of the mean path, but are mostly waits on the API server: see CPU")

    rec_sum = rec_count = 0.0
    for line in open(metrics_f):
        if line.startswith("parity_operator_reconcile_duration_seconds_sum"):
            rec_sum = float(line.split()[-1])
        elif line.startswith("parity_operator_reconcile_duration_seconds_count"):
            rec_count = float(line.split()[-1])
    if rec_count:
        print(f"reconciles: {rec_count:.0f}, {rec_sum:.0f} s inside reconcile in all "
              f"(mean {1000 * rec_sum / rec_count:.0f} ms, API calls included)")
    print(f"the operator's own share (its CPU time of all): {op_share:.1f}%")


if __name__ == "__main__":
    main()
