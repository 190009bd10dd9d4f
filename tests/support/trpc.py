"""The `transmission-rpc` package from PyPI (what many tools and *arr helpers use) driving a
btmini daemon: `python3 trpc.py PORT USER PASS TORRENT DIR` adds TORRENT (its bytes, as
metainfo) into DIR, waits until it is complete, reads the session and the stats, stops,
starts, moves it to the top of the queue, sets a download limit, removes it (keeping the
data), and prints one JSON line of what it saw.
"""
import json
import sys
import time

from transmission_rpc import Client


def main():
    port, user, password, torrent, out = sys.argv[1:6]
    c = Client(host="127.0.0.1", port=int(port), username=user, password=password, timeout=20)
    seen = {"rpc_version": c.get_session().rpc_version}
    with open(torrent, "rb") as f:
        added = c.add_torrent(f.read(), download_dir=out)
    seen["added_id"] = added.id
    seen["added_name"] = added.name
    deadline = time.monotonic() + 60
    t = c.get_torrent(added.id)
    while t.percent_done < 1.0 and time.monotonic() < deadline:
        time.sleep(0.2)
        t = c.get_torrent(added.id)
    seen["percent_done"] = t.percent_done
    seen["total_size"] = t.total_size
    seen["hash"] = t.hash_string
    seen["files"] = [f.name for f in t.get_files()]
    s = c.get_session()
    seen["download_dir"] = s.download_dir
    seen["torrent_count"] = c.session_stats().torrent_count
    c.stop_torrent(added.id)
    seen["after_stop"] = c.get_torrent(added.id).status.value
    c.start_torrent(added.id)
    deadline = time.monotonic() + 20
    while c.get_torrent(added.id).status.value == "stopped" and time.monotonic() < deadline:
        time.sleep(0.2)
    seen["after_start"] = c.get_torrent(added.id).status.value
    c.queue_top(added.id)
    c.change_torrent(added.id, download_limit=40, download_limited=True)
    t = c.get_torrent(added.id)
    seen["download_limit"] = [t.download_limit, t.download_limited]
    seen["recently_active"] = len(c.get_recently_active_torrents()[0])
    c.remove_torrent(added.id, delete_data=False)
    seen["after_remove"] = len(c.get_torrents())
    print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    main()
