#!/usr/bin/env python3
"""`parity kms`, local-kms and moto's KMS under the same load in one run (bench/kms_peers.sh).

Each server gets one key; GenerateDataKey and Decrypt requests are signed with SigV4
(botocore) and replayed by wrk at 1, 8 and 32 connections. wrk runs on one core, the server
on the other (taskset), so the load generator is not the bottleneck. Prints req/s, p50 and
p99 latency and the server's resident memory, and the ratio of parity kms to local-kms.
Healthz rows are the floor: a GET that does no work on parity kms's HTTP stack, so the round
trip at one connection that no request can beat on this machine.
A run with any non-2xx response is reported as failed, never as a figure.
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not listen on {port} within {timeout}s")


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time of `pid` so far (children excluded)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


STARTED = []


class Server:
    def __init__(self, name, argv, port, env=None, cpu="0"):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpu, *argv],
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        STARTED.append(self)
        wait_port(port, self.proc, name)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def client(url, key_id, secret):
    return boto3.client(
        "kms",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


def signed(url, key_id, secret, target, body):
    req = AWSRequest(
        method="POST",
        url=url + "/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"TrentService.{target}",
        },
    )
    SigV4Auth(Credentials(key_id, secret), "kms", REGION).add_auth(req)
    return dict(req.headers.items())


def lua(headers, body, path):
    def q(s):
        return json.dumps(s)

    lines = ['wrk.method = "POST"', f"wrk.body = {q(body)}"]
    for k, v in headers.items():
        if k.lower() in ("host", "content-length"):
            continue
        lines.append(f"wrk.headers[{q(k)}] = {q(v)}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def wrk(url, script, conns, seconds, cpu, path="/"):
    """wrk replaying `script` (a signed POST), or a plain GET of `path` without one."""
    argv = ["taskset", "-c", cpu, "wrk", "-t", "1", "-c", str(conns), "-d", f"{seconds}s",
            "--latency"]
    if script:
        argv += ["-s", script]
    out = subprocess.run(argv + [url + path], capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": ms(lat.get("50", "nan")),
        "p99": ms(lat.get("99", "nan")),
        "bad": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def measure(srv, op, conns, script, path, seconds, cpu):
    """One wrk run against `srv`, with the server's own CPU per request and its RSS."""
    cpu0 = cpu_seconds(srv.proc.pid)
    r = wrk(srv.url, script, conns, seconds, cpu, path)
    # The server's own CPU per request: at 1 connection, the rest of each round trip is
    # the kernel's loopback path, wake-ups and wrk.
    r["cpu_us"] = (cpu_seconds(srv.proc.pid) - cpu0) * 1e6 / max(r["rps"] * seconds, 1)
    r.update(server=srv.name, op=op, connections=conns,
             rss_mib=rss_kib(srv.proc.pid) / 1024,
             peak_rss_mib=rss_kib(srv.proc.pid, "VmHWM") / 1024)
    status = "FAILED: %d non-2xx" % r["bad"] if r["bad"] else ""
    print(f"{srv.name:>10} {op:>15} c={conns:<3} {r['rps']:>9.0f} req/s "
          f"p50 {r['p50']:6.2f} ms p99 {r['p99']:6.2f} ms "
          f"cpu {r['cpu_us']:5.1f} us/req "
          f"rss {r['rss_mib']:5.1f} MiB {status}", file=sys.stderr, flush=True)
    return r


def record(pid, out_dir, name, seconds):
    """perf record of `pid` for the length of one wrk run. Stacks are unwound from the DWARF
    call frame information; function names need a build with symbols
    (CARGO_PROFILE_RELEASE_STRIP=false)."""
    os.makedirs(out_dir, exist_ok=True)
    data = os.path.join(out_dir, f"perf-{name}.data")
    p = subprocess.Popen(["perf", "record", "-q", "-F", "999", "--call-graph", "dwarf",
                          "-p", str(pid), "-o", data, "--", "sleep", str(seconds)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return (p, data)


def fold(perf, out_dir, name):
    """Folded stacks (one line per stack, `a;b;c count`), the input of any flame graph tool."""
    p, data = perf
    p.wait()
    script = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True).stdout
    stacks, frames = {}, []
    for line in script.splitlines() + [""]:
        if not line.strip():
            if frames:
                key = ";".join(reversed(frames))
                stacks[key] = stacks.get(key, 0) + 1
            frames = []
        elif line.startswith(("\t", " ")):
            parts = line.split(None, 1)
            sym = parts[1].rsplit(" (", 1)[0] if len(parts) > 1 else "?"
            frames.append(sym.split("+0x")[0].replace(";", ":"))
    with open(os.path.join(out_dir, f"perf-{name}.folded"), "w") as f:
        for k, v in sorted(stacks.items()):
            f.write(f"{k} {v}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parity", required=True)
    ap.add_argument("--local-kms", required=True)
    ap.add_argument("--moto", required=True)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", default="1,8,32")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--servers", default="parity kms,local-kms,moto",
                    help="comma-separated subset to run (the ratios need all three)")
    ap.add_argument("--floor", help="bench/floor_server.rs built: measure the machine's floor")
    ap.add_argument("--perf-dir", help="record `perf` call stacks of parity kms during each of "
                    "its runs into this directory (perf-<op>-c<N>.data and .folded)")
    a = ap.parse_args()
    wanted = set(a.servers.split(","))
    server_cpu, load_cpu = "0", "1"
    work = tempfile.mkdtemp(prefix="kms-peers-")
    servers = []
    try:
        # parity kms over a keyring made as `parity dev` makes one (render --format compose).
        manifest = os.path.join(work, "env.yaml")
        with open(manifest, "w") as f:
            f.write("apiVersion: parity.dev/v1alpha1\nkind: ParityEnvironment\n"
                    "metadata: {name: bench}\nspec: {tier: Local, parityLevel: 0,"
                    " keys: {provider: Local, local: {source: Generated}}}\n")
        subprocess.run([a.parity, "render", "-f", manifest, "--format", "compose",
                        "--state-dir", os.path.join(work, "state")],
                       check=True, capture_output=True, cwd=work)
        st = os.path.join(work, "state", "bench")
        key_id = open(os.path.join(st, "kms-credentials", "access-key-id")).read().strip()
        secret = open(os.path.join(st, "kms-credentials", "secret-access-key")).read().strip()
        port = free_port()
        servers.append((Server("parity kms", [
            a.parity, "kms", f"--listen=127.0.0.1:{port}",
            f"--keyring={st}/keyring/keyring.json",
            f"--aliases-file={st}/topology/aliases",
            f"--secret-access-key-file={st}/kms-credentials/secret-access-key",
            f"--access-key-id={key_id}", f"--region={REGION}",
        ], port, {"RUST_LOG": "warn"}, server_cpu), key_id, secret, "alias/parity/bench"))

        if "local-kms" in wanted:
            port = free_port()
            data = os.path.join(work, "local-kms")
            os.makedirs(data)
            lk = Server("local-kms", [a.local_kms], port,
                        {"PORT": str(port), "KMS_REGION": REGION, "KMS_DATA_PATH": data,
                         "KMS_ACCOUNT_ID": "111122223333"}, server_cpu)
            k = client(lk.url, "bench", "bench").create_key()["KeyMetadata"]["KeyId"]
            servers.append((lk, "bench", "bench", k))

        if "moto" in wanted:
            port = free_port()
            mo = Server("moto", [a.moto, "-H", "127.0.0.1", "-p", str(port)], port, None,
                        server_cpu)
            k = client(mo.url, "bench", "bench").create_key()["KeyMetadata"]["KeyId"]
            servers.append((mo, "bench", "bench", k))
        servers = [s for s in servers if s[0].name in wanted]

        conns = [int(c) for c in a.connections.split(",")]
        results = []
        if a.floor:
            # The machine's floor: a fixed answer from a blocking thread, nothing else.
            port = free_port()
            floor = Server("floor", [a.floor, str(port)], port, None, server_cpu)
            for n in conns:
                results.append(measure(floor, "GET", n, None, "/", a.seconds, load_cpu))
            floor.stop()
        for srv, kid, sec, key in servers:
            c = client(srv.url, kid, sec)
            blob = c.generate_data_key(KeyId=key, KeySpec="AES_256")["CiphertextBlob"]
            bodies = {
                "GenerateDataKey": json.dumps({"KeyId": key, "KeySpec": "AES_256"}),
                "Decrypt": json.dumps({"CiphertextBlob": base64.b64encode(blob).decode(),
                                        "KeyId": key}),
            }
            # Healthz: a request that does no work (axum's `/healthz`) over the same HTTP
            # stack, loopback and wrk: what the stack itself costs beside the floor.
            ops = list(bodies.items())
            if srv.name == "parity kms":
                ops.append(("Healthz", None))
            for op, body in ops:
                for n in conns:
                    # Signed just before the run: the signature is valid for 5 minutes.
                    script = None
                    if body is not None:
                        script = os.path.join(work, f"{op}.lua")
                        lua(signed(srv.url, kid, sec, op, body), body, script)
                    perf = None
                    if a.perf_dir and srv.name == "parity kms":
                        perf = record(srv.proc.pid, a.perf_dir, f"{op}-c{n}", a.seconds)
                    r = measure(srv, op, n, script, "/" if script else "/healthz",
                                a.seconds, load_cpu)
                    if perf:
                        fold(perf, a.perf_dir, f"{op}-c{n}")
                        os.remove(perf[1])
                    results.append(r)
        print()
        print("| server | operation | connections | req/s | p50 ms | p99 ms | server CPU µs/req "
              "| RSS MiB (peak) |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            rps = "failed" if r["bad"] else f"{r['rps']:.0f}"
            print(f"| {r['server']} | {r['op']} | {r['connections']} | {rps} | {r['p50']:.2f} "
                  f"| {r['p99']:.2f} | {r['cpu_us']:.0f} "
                  f"| {r['rss_mib']:.1f} ({r['peak_rss_mib']:.1f}) |")
        by = {(r["server"], r["op"], r["connections"]): r for r in results}
        if len(servers) == 3:
            print()
            print("| operation | connections | parity kms / local-kms | parity kms / moto |")
            print("|---|---|---|---|")
        for op in ("GenerateDataKey", "Decrypt") if len(servers) == 3 else ():
            for n in conns:
                p, l, m = (by[(s, op, n)]["rps"] for s in ("parity kms", "local-kms", "moto"))
                print(f"| {op} | {n} | {p / l:.1f}x | {p / m:.1f}x |")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1)
        if any(r["bad"] for r in results):
            sys.exit("some runs had non-2xx responses (see above)")
    finally:
        for srv in STARTED:
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
