"""libtorrent's view of torrents, for btmini's interop tests (run with Debian's /usr/bin/python3).

  lt.py info FILE.torrent              -> JSON: what libtorrent reads from the file
  lt.py create PATH OUT MODE [TRACKER] -> makes a torrent; MODE is v1, hybrid or v2
  lt.py recheck FILE.torrent SAVE_PATH -> JSON: libtorrent checks the data against the torrent
  lt.py download FILE.torrent SAVE_PATH IP [PEER] -> downloads (from PEER, or via the
                                         trackers); prints JSON once complete, with the
                                         peers it connected to that it learnt of by PEX
  lt.py magnet MAGNET SAVE_PATH IP PEER -> fetches the metadata and data of MAGNET from PEER;
                                         prints JSON once complete (or after 120 s)
  lt.py seed FILE.torrent SAVE_PATH IP [RATE] -> seeds on IP (TCP only, upload capped at RATE
                                         bytes/s if given) until stdin closes; prints
                                         "ready PORT" once the data is checked and it listens;
                                         a line "connect HOST:PORT" on stdin dials that peer;
                                         prints "uploaded BYTES" when stdin closes; lines
                                         "choke" sets its upload slots to 0 (local
                                         peers included; unchoke rounds every second)
  lt.py peer FILE.torrent SAVE_PATH IP -> a leecher held to 1 KB/s (so it has next to nothing
                                         to give); prints "ready PORT"; "connect
                                         HOST:PORT" on stdin dials a peer and prints
                                         "connected" once the handshakes are done; prints JSON with
                                         its payload counts when stdin closes
"""
import json
import os
import sys
import time

import libtorrent as lt


def info(path):
    ti = lt.torrent_info(path)
    fs = ti.files()
    files = []
    for i in range(fs.num_files()):
        files.append({
            "path": fs.file_path(i),
            "size": fs.file_size(i),
            "padding": bool(fs.file_flags(i) & lt.file_storage.flag_pad_file),
        })
    tiers = {}
    for t in ti.trackers():
        tiers.setdefault(t.tier, []).append(t.url)
    print(json.dumps({
        "name": ti.name(),
        "info_hash": str(ti.info_hashes().v1),
        "total_size": ti.total_size(),
        "piece_length": ti.piece_length(),
        "piece_count": ti.num_pieces(),
        "private": ti.priv(),
        "trackers": [tiers[k] for k in sorted(tiers)],
        "files": files,
    }))


def create(path, out, mode, tracker=None):
    import os
    fs = lt.file_storage()
    lt.add_files(fs, path)
    flags = {"v1": lt.create_torrent.v1_only, "hybrid": 0, "v2": lt.create_torrent.v2_only}[mode]
    ct = lt.create_torrent(fs, 0, flags=flags)
    if tracker:
        ct.add_tracker(tracker)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))


def add(ses, path, save_path):
    """Adds the torrent at `path`, data in `save_path`, started at once; returns its handle."""
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(path)
    atp.save_path = save_path
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    return ses.add_torrent(atp)


def recheck(path, save_path):
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    })
    h = add(ses, path, save_path)
    # A torrent added without resume data is checked in full; the alert says when that ends.
    deadline = time.monotonic() + 120
    checked = False
    while not checked and time.monotonic() < deadline:
        ses.wait_for_alert(500)
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_checked_alert):
                checked = True
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                print(json.dumps({"error": a.message()}))
                sys.exit(1)
    if not checked:
        print(json.dumps({"error": "libtorrent did not finish checking in 120 s"}))
        sys.exit(1)
    st = h.status()
    print(json.dumps({
        "info_hash": str(h.info_hashes().v1),
        "state": str(st.state),
        "pieces_have": st.num_pieces,
        "piece_count": h.torrent_file().num_pieces(),
        "progress": st.progress,
    }))


def wait_seeding(ses, h):
    """Returns once H seeds (its data checked); exits 1 after 120 s."""
    deadline = time.monotonic() + 120
    while not h.status().is_seeding:
        if time.monotonic() > deadline:
            print("error: not seeding after 120 s", flush=True)
            sys.exit(1)
        ses.wait_for_alert(200)
        ses.pop_alerts()


def session_on(ip, forced_rc4=False):
    """A session that speaks plain TCP (or uTP alone, LT_TRANSPORT=utp) on one loopback
    address (IPv4 or IPv6), with nothing that reaches out;
    with FORCED_RC4 (or LT_ENC=rc4 in the environment), only encrypted (MSE, RC4) connections
    both ways; with LT_ENC=off, no MSE at all (a plaintext-only peer)."""
    enc = {}
    mode = "rc4" if forced_rc4 else os.environ.get("LT_ENC", "")
    if mode == "rc4":
        # pe_forced both ways, RC4 only (allowed_enc_level 2).
        enc = {"out_enc_policy": 0, "in_enc_policy": 0, "allowed_enc_level": 2}
    elif mode == "off":
        # pe_disabled both ways.
        enc = {"out_enc_policy": 2, "in_enc_policy": 2}
    # LT_TRANSPORT=utp: uTP only (TCP off both ways); otherwise TCP only.
    utp = os.environ.get("LT_TRANSPORT", "") == "utp"
    transport = {"enable_outgoing_utp": utp, "enable_incoming_utp": utp,
                 "enable_outgoing_tcp": not utp, "enable_incoming_tcp": not utp}
    return lt.session({**enc, **transport,
        "listen_interfaces": f"[{ip}]:0" if ":" in ip else f"{ip}:0",
        "outgoing_interfaces": ip,
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    })


def seed(path, save_path, ip, rate=None):
    ses = session_on(ip)
    if rate:
        # Peers on local addresses are exempt from the global limit: cap their class too.
        ses.apply_settings({"upload_rate_limit": int(rate)})
        pc = ses.get_peer_class(lt.session.local_peer_class_id)
        pc["upload_limit"] = int(rate)
        ses.set_peer_class(lt.session.local_peer_class_id, pc)
    ses.apply_settings({"unchoke_interval": 1})
    h = add(ses, path, save_path)
    wait_seeding(ses, h)
    print(f"ready {ses.listen_port()}", flush=True)
    # Serve until the test closes our stdin; "connect HOST:PORT" lines make us dial a peer
    # (for clients that never dial loopback peers themselves, like transmission).
    for line in sys.stdin:
        if line.startswith("connect "):
            host, port = line.split()[1].rsplit(":", 1)
            h.connect_peer((host, int(port)))
        elif line.strip() == "choke":
            # Local peers ignore the slot limit unless their class is told otherwise.
            pc = ses.get_peer_class(lt.session.local_peer_class_id)
            pc["ignore_unchoke_slots"] = False
            ses.set_peer_class(lt.session.local_peer_class_id, pc)
            ses.apply_settings({"unchoke_slots_limit": 0})
    print(f"uploaded {h.status().total_payload_upload}", flush=True)


def peer(path, save_path, ip):
    ses = session_on(ip)
    # Upload mode would not do: a seed drops a peer that only uploads. A trickle keeps it a
    # leecher connected to its seeder.
    ses.apply_settings({"download_rate_limit": 1000})
    pc = ses.get_peer_class(lt.session.local_peer_class_id)
    pc["download_limit"] = 1000
    ses.set_peer_class(lt.session.local_peer_class_id, pc)
    h = add(ses, path, save_path)
    print(f"ready {ses.listen_port()}", flush=True)
    for line in sys.stdin:
        if line.startswith("connect "):
            host, port = line.split()[1].rsplit(":", 1)
            h.connect_peer((host, int(port)))
            deadline = time.monotonic() + 60
            busy = lt.peer_info.handshake | lt.peer_info.connecting
            while time.monotonic() < deadline and not any(
                    p.ip == (host, int(port)) and not int(p.flags) & int(busy)
                    for p in h.get_peer_info()):
                ses.wait_for_alert(100)
                ses.pop_alerts()
            print("connected", flush=True)
    st = h.status()
    print(json.dumps({"uploaded": st.total_payload_upload,
                      "downloaded": st.total_payload_download}), flush=True)


def download(path, save_path, ip, peer=None, forced_rc4=False):
    """Downloads on IP, from PEER (ip:port) if given, else from the torrent's trackers;
    prints JSON with the progress once complete (or after 120 s)."""
    ses = session_on(ip, forced_rc4)
    h = add(ses, path, save_path)
    if peer:
        host, port = peer.rsplit(":", 1)
        host = host.strip("[]")
        h.connect_peer((host, int(port)))
    deadline = time.monotonic() + 120
    pex = set()
    rc4 = False

    def look():
        nonlocal rc4
        peers = h.get_peer_info()
        pex.update(f"{p.ip[0]}:{p.ip[1]}" for p in peers if p.source & 4)
        # peer_info flag bit 19: rc4_encrypted (include/libtorrent/peer_info.hpp@v2.0.8).
        rc4 |= any(int(p.flags) & (1 << 19) for p in peers)
    # The peers are looked at once more at the end, and every 20 ms where the RC4 flag is
    # the point (download_rc4): a small download can be over, and its connection gone,
    # between two looks 200 ms apart. Elsewhere every 200 ms: this is also the benchmarks'
    # leecher, and looking costs it CPU.
    every = 20 if forced_rc4 else 200
    while not h.status().is_seeding and time.monotonic() < deadline:
        ses.wait_for_alert(every)
        ses.pop_alerts()
        look()
    look()
    st = h.status()
    print(json.dumps({"seeding": st.is_seeding, "progress": st.progress,
                      "downloaded": st.total_payload_download,
                      "pex_sources": sorted(pex), "rc4": rc4}), flush=True)


def download_rc4(path, save_path, ip, peer):
    """`download` from PEER with encryption forced (MSE with RC4, nothing else)."""
    download(path, save_path, ip, peer, forced_rc4=True)


def magnet(link, save_path, ip, peer):
    ses = session_on(ip)
    atp = lt.parse_magnet_uri(link)
    atp.save_path = save_path
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    h = ses.add_torrent(atp)
    host, port = peer.rsplit(":", 1)
    host = host.strip("[]")
    h.connect_peer((host, int(port)))
    start = time.monotonic()
    metadata_at = None
    deadline = start + 120
    while not h.status().is_seeding and time.monotonic() < deadline:
        ses.wait_for_alert(100)
        ses.pop_alerts()
        if metadata_at is None and h.status().has_metadata:
            metadata_at = time.monotonic() - start
    st = h.status()
    print(json.dumps({"seeding": st.is_seeding, "has_metadata": st.has_metadata,
                      "metadata_seconds": metadata_at, "name": st.name}), flush=True)


def dht_session(ip):
    """A session on one explicit loopback address with the DHT on (libtorrent starts no DHT
    node on 0.0.0.0 or a device name) and nothing else reaching out; its rate limit raised
    (by default it bans a source over 5 packets/s), one IP per node not required. An IPv6
    IP (::1) gives an IPv6 node (BEP 32)."""
    return lt.session({
        "listen_interfaces": f"[{ip}]:0" if ":" in ip else f"{ip}:0",
        "outgoing_interfaces": ip,
        "enable_dht": True, "dht_bootstrap_nodes": "",
        "dht_block_ratelimit": 100000, "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False, "dht_enforce_node_id": False,
        "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        # uTP on, as libtorrent's default: btmini dials uTP first, and a SYN to a UDP port
        # that is open (the DHT's) but ignores uTP waits out its resends.
        "enable_outgoing_utp": True, "enable_incoming_utp": True,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification
        | lt.alert.category_t.dht_notification,
    })


def add_nodes(ses, nodes):
    for n in nodes.split(","):
        if n:
            host, port = n.rsplit(":", 1)
            ses.add_dht_node((host.strip("[]"), int(port)))


def dht_node(ip, nodes=""):
    """A DHT node with no torrent, bootstrapped from NODES (HOST:PORT,...); prints "ready
    PORT" (its UDP port, the listen port) and runs until stdin closes; then prints how many
    nodes its table has."""
    ses = dht_session(ip)
    add_nodes(ses, nodes)
    print(f"ready {ses.listen_port()}", flush=True)
    for line in sys.stdin:
        if line.startswith("add "):
            add_nodes(ses, line.split()[1])
    ses.post_dht_stats()
    print("done", flush=True)


def dht_seed(path, save_path, ip, nodes):
    """Seeds PATH with the DHT on, bootstrapped from NODES, announcing every 2 s (a test
    cannot wait libtorrent's 15 minutes); prints "ready PORT" once seeding."""
    ses = dht_session(ip)
    add_nodes(ses, nodes)
    h = add(ses, path, save_path)
    wait_seeding(ses, h)
    print(f"ready {ses.listen_port()}", flush=True)
    while True:
        h.force_dht_announce()
        end = time.monotonic() + 2
        while time.monotonic() < end:
            ses.wait_for_alert(200)
            ses.pop_alerts()


def dht_download(link, save_path, ip, nodes):
    """Downloads a trackerless magnet through the DHT alone, bootstrapped from NODES;
    prints JSON once complete (or after 120 s)."""
    ses = dht_session(ip)
    add_nodes(ses, nodes)
    atp = lt.parse_magnet_uri(link)
    atp.save_path = save_path
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    h = ses.add_torrent(atp)
    deadline = time.monotonic() + 120
    last = 0
    sources = set()
    while not h.status().is_seeding and time.monotonic() < deadline:
        if time.monotonic() - last > 2:
            h.force_dht_announce()
            last = time.monotonic()
        ses.wait_for_alert(100)
        ses.pop_alerts()
        # Peers' sources while they are connected (a seed leaves a seed at the end).
        sources.update(p.source for p in h.get_peer_info())
    st = h.status()
    sources = sorted(sources)
    print(json.dumps({"seeding": st.is_seeding, "has_metadata": st.has_metadata,
                      "peer_sources": sources}), flush=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"info": info, "create": create, "recheck": recheck, "seed": seed, "download": download,
     "download_rc4": download_rc4,
     "peer": peer, "magnet": magnet, "dht_node": dht_node, "dht_seed": dht_seed,
     "dht_download": dht_download}[cmd](*args)
