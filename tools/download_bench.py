#!/usr/bin/python3
"""Download a torrent from a libtorrent seeder through opentracker, with btmini and with
aria2c in turn, and print wall time, CPU time, peak RSS and peak anonymous RSS for each.

    tools/download_bench.py [MiB] [ROUNDS]          (default 1024 MiB, 3 rounds)
    tools/download_bench.py upload [MiB] [ROUNDS]   btmini seeding, a libtorrent leecher
                                                    downloading: upload throughput

Needs: opentracker, aria2, python3-libtorrent (Debian's /usr/bin/python3), cargo.
Everything runs on loopback: seeder on 127.0.0.2, btmini on 127.0.0.3, aria2c on
127.0.0.1 (aria2c cannot choose its address). The seeder's page cache is warm.
"""
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def measure(cmd, cwd=None):
    """Runs cmd; returns (wall s, cpu s, peak VmHWM KiB, peak RssAnon KiB)."""
    start = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_anon = 0
    hwm = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak_anon = max(peak_anon, int(line.split()[1]))
                    elif line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.05)
    wall = time.monotonic() - start
    return wall, p.returncode, hwm, peak_anon


def run_with_rusage(cmd, cwd=None):
    """measure(), plus CPU time from the child's rusage."""
    before = os.times()
    wall, rc, hwm, anon = measure(cmd, cwd)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, rc, hwm, anon


def upload(mib, rounds):
    """btmini seeds; libtorrent downloads from it with --peer-style connect; prints MiB/s."""
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    btmini = os.path.join(ROOT, "target/release/btmini")
    tmp = tempfile.mkdtemp(prefix="btmini-upbench-")
    try:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        payload = os.path.join(data, "payload.bin")
        with open(payload, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        torrent = os.path.join(tmp, "p.torrent")
        subprocess.run([btmini, "create", payload, "-o", torrent, "-q"], check=True)
        port = free_port()
        seed = subprocess.Popen([btmini, torrent, "-o", data, "-q", "--bind", "127.0.0.3", "--port", str(port)])
        # The seed hashes its data before it listens: wait for the port.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.3", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        rates = []
        for r in range(rounds):
            out = os.path.join(tmp, f"lt-{r}")
            start = time.monotonic()
            res = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests/support/lt.py"), "download",
                                  torrent, out, "127.0.0.4", f"127.0.0.3:{port}"], capture_output=True, text=True)
            secs = time.monotonic() - start
            ok = '"seeding": true' in res.stdout
            rates.append(mib / secs)
            print(f"round {r + 1}: {mib} MiB to libtorrent in {secs:.2f} s = {mib / secs:.1f} MiB/s "
                  f"(includes the leecher's start-up) {'ok' if ok else 'FAILED ' + res.stdout}", flush=True)
            shutil.rmtree(out, ignore_errors=True)
        print(f"median upload: {statistics.median(rates):.1f} MiB/s")
        seed.kill()
        seed.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "upload":
        mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
        rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
        return upload(mib, rounds)
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    btmini = os.path.join(ROOT, "target/release/btmini")
    tmp = tempfile.mkdtemp(prefix="btmini-bench-")
    procs = []
    try:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        payload = os.path.join(data, "payload.bin")
        with open(payload, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        port = free_port()
        torrent = os.path.join(tmp, "p.torrent")
        subprocess.run([btmini, "create", payload, "-o", torrent, "-q",
                        "-t", f"http://127.0.0.1:{port}/announce"], check=True)
        info = subprocess.run([btmini, "info", "--json", torrent], check=True,
                              capture_output=True, text=True).stdout
        info_hash = info.split('"info_hash":"')[1][:40]
        otdir = os.path.join(tmp, "ot")
        os.makedirs(otdir)
        with open(os.path.join(otdir, "whitelist.txt"), "w") as f:
            f.write(info_hash + "\n")
        procs.append(subprocess.Popen(["opentracker", "-i", "127.0.0.1", "-p", str(port), "-P", str(port),
                                       "-d", otdir, "-w", "whitelist.txt"], stdout=subprocess.DEVNULL))
        time.sleep(0.5)
        seeder = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests/support/lt.py"), "seed",
                                   torrent, data, "127.0.0.2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(seeder)
        print("seeder:", seeder.stdout.readline().strip(), flush=True)
        subprocess.run(["cat", payload], stdout=subprocess.DEVNULL, check=True)
        results = {"btmini": [], "aria2c": []}
        for r in range(rounds):
            for name in ("btmini", "aria2c"):
                out = os.path.join(tmp, f"out-{name}")
                shutil.rmtree(out, ignore_errors=True)
                if name == "btmini":
                    cmd = [btmini, torrent, "-o", out, "-q", "--bind", "127.0.0.3", "--port", str(free_port())]
                else:
                    cmd = ["aria2c", "--dir", out, "--seed-time=0", "--enable-dht=false", "--bt-enable-lpd=false",
                           "--enable-peer-exchange=false", "--summary-interval=0", "--quiet=true",
                           f"--listen-port={free_port()}", torrent]
                wall, cpu, rc, hwm, anon = run_with_rusage(cmd)
                ok = rc == 0 and subprocess.run(["cmp", "-s", payload, os.path.join(out, "payload.bin")]).returncode == 0
                results[name].append((wall, cpu, hwm, anon, ok))
                print(f"round {r + 1} {name:7} wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
                      f"VmHWM {hwm / 1024:7.1f} MiB  RssAnon peak {anon / 1024:6.1f} MiB  "
                      f"{'ok' if ok else 'FAILED'}", flush=True)
                shutil.rmtree(out, ignore_errors=True)
        print(f"\nmedians over {rounds} rounds, {mib} MiB:")
        base = None
        for name, rs in results.items():
            med = [statistics.median(x[i] for x in rs) for i in range(4)]
            if base is None:
                base = med
            print(f"{name:7} wall {med[0]:6.2f} s ({mib / med[0]:6.1f} MiB/s)  cpu {med[1]:6.2f} s  "
                  f"VmHWM {med[2] / 1024:7.1f} MiB  RssAnon {med[3] / 1024:6.1f} MiB  "
                  f"(wall x{med[0] / base[0]:.2f}, cpu x{med[1] / base[1]:.2f} of btmini)")
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
