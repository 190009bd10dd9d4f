"""Transmission 3.00's DHT (jech/dht) and btmini's, both ways, in a private network namespace.

  unshare -n /usr/bin/python3 tr_dht.py BTMINI WORKDIR  -> one JSON line with what happened

Transmission's DHT drops every packet from 127.0.0.0/8 and will not search or announce
before it knows at least 9 nodes (4 of them good), so this runs where `lo` carries
10.77.0.x, with ten libtorrent DHT nodes (10.77.0.11-20) that know each other:

- btmini seeds torrent A on 10.77.0.2, its DHT bootstrapped from one libtorrent node;
- transmission-daemon on 10.77.0.3, its DHT bootstrapped from a dht.dat that lists btmini's
  node first and then the libtorrent nodes, seeds torrent B and is given A as a trackerless
  magnet;
- btmini on 10.77.0.4 is given B as a trackerless magnet, its DHT bootstrapped from another
  libtorrent node.

No tracker, no peer given: each side can only find the other through the DHT. Prints
{"tr_got_a": .., "btmini_got_b": .., "a_seconds": .., "b_seconds": .., ...} and exits.
"""
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lt as ltpy  # noqa: E402  (tests/support/lt.py)

LIMIT = 150
RPC = "10.77.0.3:39091"


def sh(*cmd, **kw):
    return subprocess.run(list(cmd), check=True, **kw)


def payload(path, size, seed):
    """Deterministic bytes (so a failed run can be compared by hand)."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 64
    with open(path, "wb") as f:
        f.write(bytes(out[:size]))


def remote(*args):
    return subprocess.run(["transmission-remote", RPC, *args], capture_output=True, text=True,
                          timeout=20).stdout


def tr_percent(name):
    """Transmission's "Percent Done" of the torrent called NAME, or None."""
    for block in remote("-t", "all", "-i").split("NAME\n"):
        if f"Name: {name}\n" in block:
            for line in block.splitlines():
                if "Percent Done:" in line:
                    return line.split(":", 1)[1].strip()
    return None


def main():
    btmini, work = sys.argv[1], sys.argv[2]
    sh("ip", "link", "set", "lo", "up")
    for i in range(2, 21):
        sh("ip", "addr", "add", f"10.77.0.{i}/32", "dev", "lo")
    procs = []
    result = {}
    try:
        # Two payloads and their trackerless torrents.
        for name, seed in (("a.bin", "A"), ("b.bin", "B")):
            payload(os.path.join(work, name), 2_000_003, seed)
            sh(btmini, "create", os.path.join(work, name), "-o", os.path.join(work, name + ".torrent"),
               "-q", "-l", "64K")
        hashes = {}
        for name in ("a.bin", "b.bin"):
            out = sh(btmini, "info", "--json", os.path.join(work, name + ".torrent"),
                     capture_output=True, text=True).stdout
            hashes[name] = json.loads(out)["info_hash"]

        # Ten libtorrent DHT nodes that know each other.
        nodes = [ltpy.dht_session(f"10.77.0.{11 + i}") for i in range(10)]
        addrs = [(f"10.77.0.{11 + i}", s.listen_port()) for i, s in enumerate(nodes)]
        for s in nodes:
            for a in addrs:
                s.add_dht_node(a)
        stop = threading.Event()

        def pump():  # keep the sessions' alert queues drained
            while not stop.is_set():
                for s in nodes:
                    s.pop_alerts()
                time.sleep(0.2)
        threading.Thread(target=pump, daemon=True).start()

        # btmini seeds A.
        seed_dir = os.path.join(work, "seed")
        os.makedirs(seed_dir)
        os.link(os.path.join(work, "a.bin"), os.path.join(seed_dir, "a.bin"))
        seed_port = 41002
        seed_log = open(os.path.join(work, "btmini-seed.log"), "w")
        procs.append(subprocess.Popen(
            [btmini, os.path.join(work, "a.bin.torrent"), "-o", seed_dir, "--seed", "-v",
             "--bind", "10.77.0.2", "--port", str(seed_port), "--dht-node", "%s:%d" % addrs[0]],
            stderr=seed_log, stdout=subprocess.DEVNULL))

        # transmission-daemon: B's data in place, a dht.dat naming btmini's node first.
        cfg = os.path.join(work, "tr")
        dl = os.path.join(work, "tr-dl")
        os.makedirs(cfg)
        os.makedirs(dl)
        os.link(os.path.join(work, "b.bin"), os.path.join(dl, "b.bin"))
        settings = {
            "bind-address-ipv4": "10.77.0.3", "bind-address-ipv6": "::1", "peer-port": 41003,
            "rpc-port": 39091, "rpc-bind-address": "10.77.0.3", "rpc-authentication-required": False,
            "rpc-whitelist-enabled": False, "rpc-host-whitelist-enabled": False,
            "dht-enabled": True, "utp-enabled": False, "pex-enabled": True, "lpd-enabled": False,
            "port-forwarding-enabled": False, "encryption": 1, "download-dir": dl,
            "message-level": 3, "ratio-limit-enabled": False, "download-queue-enabled": False,
            "seed-queue-enabled": False, "peer-port-random-on-start": False,
        }
        with open(os.path.join(cfg, "settings.json"), "w") as f:
            json.dump(settings, f)
        compact = b"".join(bytes(int(x) for x in ip.split(".")) + port.to_bytes(2, "big")
                           for ip, port in [("10.77.0.2", seed_port)] + addrs)
        own_id = hashlib.sha1(b"transmission in the netns").digest()
        with open(os.path.join(cfg, "dht.dat"), "wb") as f:
            f.write(b"d2:id20:" + own_id + b"5:nodes%d:" % len(compact) + compact + b"e")
        tr_log = os.path.join(work, "transmission.log")
        procs.append(subprocess.Popen(["transmission-daemon", "-f", "-g", cfg, "--logfile", tr_log],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env=dict(os.environ, TR_DHT_VERBOSE="1")))
        deadline = time.monotonic() + 20
        while not remote("-si").strip():
            if time.monotonic() > deadline:
                raise RuntimeError("transmission-daemon's RPC did not come up")
            time.sleep(0.2)
        start = time.monotonic()
        remote("-a", os.path.join(work, "b.bin.torrent"))
        remote("-a", f"magnet:?xt=urn:btih:{hashes['a.bin']}")

        # btmini fetches B.
        leech_dir = os.path.join(work, "leech")
        leech_log = open(os.path.join(work, "btmini-leech.log"), "w")
        leech = subprocess.Popen(
            [btmini, f"magnet:?xt=urn:btih:{hashes['b.bin']}", "-o", leech_dir, "-v",
             "--min-share", "0", "--bind", "10.77.0.4", "--port", "41004",
             "--dht-node", "%s:%d" % addrs[5]],
            stderr=leech_log, stdout=subprocess.DEVNULL)
        procs.append(leech)

        a_done = b_done = None
        while time.monotonic() - start < LIMIT and (a_done is None or b_done is None):
            if b_done is None and leech.poll() is not None:
                b_done = time.monotonic() - start
            if a_done is None and tr_percent("a.bin") == "100%":
                a_done = time.monotonic() - start
            time.sleep(0.5)
        stop.set()
        got_a = os.path.exists(os.path.join(dl, "a.bin")) and \
            open(os.path.join(dl, "a.bin"), "rb").read() == open(os.path.join(work, "a.bin"), "rb").read()
        got_b = leech.returncode == 0 and os.path.exists(os.path.join(leech_dir, "b.bin")) and \
            open(os.path.join(leech_dir, "b.bin"), "rb").read() == open(os.path.join(work, "b.bin"), "rb").read()
        seed_log.flush()
        leech_log.flush()
        result = {
            "tr_got_a": bool(a_done is not None and got_a), "a_seconds": a_done,
            "btmini_got_b": bool(got_b), "b_seconds": b_done,
            "tr_peers_a": remote("-t", hashes["a.bin"], "-pi"),
            "leech_log": open(os.path.join(work, "btmini-leech.log")).read()[-6000:],
            "seed_log": open(os.path.join(work, "btmini-seed.log")).read()[-4000:],
            "tr_log": open(tr_log).read()[-4000:] if os.path.exists(tr_log) else "",
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
