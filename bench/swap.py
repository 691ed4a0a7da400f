"""Hot swap under load: a service following an alias, the alias moved and rolled back while
closed-loop clients send SMS; how long each swap took, failed requests, latency, memory.

    python -m bench.swap --ref fanzha-sms@champion --to fanzha-sms:VERSION [--concurrency 8] [--promote]
    python -m bench.swap --ref fanzha-sms@champion --to fanzha-sms:VERSION --shadow fanzha-sms:OTHER

The service is `bentoml serve serving.service:Fanzha` with FANZHA_MODEL_TAG=REF on the model
store of this process (BENTOML_HOME) and FANZHA_MODEL_CHECK_S=1. After a warm-up the alias is
moved to --to (with --promote: `fanzha promote --to --force --reason`, which runs the gate first,
under the same load), the time until `/info` names the new tag is the swap time; then `fanzha
rollback` and the time back. Swap time includes the polling interval (up to 1 s) and the new
model's integrity check, load and warm-up. Prints one JSON object: swaps, request counts by
status (a failed request is any non-200), p50/p99 latency, the worker's resident memory before
and its peak (VmHWM) after. Exit 1 if any request failed.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.request

from bench import load
from bench.servers import REPO, free_port, running

MESSAGES = ["【ETC服务】您的ETC认证已失效，请点击 http://etc-rz.top 重新认证", "您的验证码为 482913，5分钟内有效。",
            "双十一狂欢价！全场低至3折，回复TD退订", "妈，我手机掉水里了，这是新号，急需转账3000元",
            "明天下午三点开会，记得带材料", "【顺丰速运】您的快件已到达驿站，取件码 8-2-1103"]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def wait_tag(base: str, tag: str, timeout: float = 120) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if get(base + "/info")["model_tag"] == tag:
            return round(time.perf_counter() - started, 2)
        time.sleep(0.05)
    raise SystemExit(f"the service did not serve {tag} within {timeout:.0f}s")


def closed_loop(url: str, concurrency: int, stop: threading.Event) -> dict:
    """bench/load.py's connections, each sending one SMS after the other until `stop` is set."""
    import asyncio
    from urllib.parse import urlsplit

    import numpy as np

    parts, payloads = urlsplit(url), load.bodies(MESSAGES)
    latencies, statuses = [], {}

    async def worker(k: int) -> None:
        conn, i = load._Conn(parts.hostname, parts.port, parts.path), k
        while not stop.is_set():
            i += 1
            t0 = time.perf_counter()
            try:
                status = await conn.request(payloads[i % len(payloads)])
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
                status = 0
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    async def all_workers():
        await asyncio.gather(*(worker(k) for k in range(concurrency)))

    began = time.perf_counter()
    asyncio.run(all_workers())
    lat = np.array(latencies) * 1e3
    ok = statuses.get(200, 0)
    return {"requests": len(latencies), "seconds": round(time.perf_counter() - began, 1),
            "throughput_rps": round(ok / (time.perf_counter() - began), 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(lat.max()), 1), "errors": len(latencies) - ok,
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.swap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", required=True, help="alias the service follows, e.g. fanzha-sms@champion")
    parser.add_argument("--to", required=True, help="tag to move the alias to, then roll back from")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of load before, between and after swaps")
    parser.add_argument("--promote", action="store_true", help="move with `fanzha promote --force` (runs the gate)")
    parser.add_argument("--shadow", help="also score in the shadow with this model (FANZHA_SHADOW_TAG)")
    args = parser.parse_args(argv)
    from serving.lifecycle.aliases import AliasStore, split_ref

    name, alias, _ = split_ref(args.ref)
    store = AliasStore()
    start_tag = store.holder(name, alias)
    port = free_port()
    env = {"FANZHA_MODEL": "", "FANZHA_MODEL_TAG": args.ref, "FANZHA_MODEL_CHECK_S": "1"}
    if args.shadow:
        env["FANZHA_SHADOW_TAG"] = args.shadow
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:Fanzha", "--host", "127.0.0.1",
               "--port", str(port), "--working-dir", str(REPO)]
    out: dict = {"ref": args.ref, "from": start_tag, "to": args.to, "concurrency": args.concurrency}
    with running(command, "/readyz", port, env) as base:
        out["memory_before"] = get(base + "/info")["memory"]
        result: dict = {}
        stop = threading.Event()
        thread = threading.Thread(target=lambda: result.update(closed_loop(base + "/classify", args.concurrency, stop)),
                                  daemon=True)
        thread.start()
        time.sleep(args.settle)
        moved = time.perf_counter()
        if args.promote:
            from serving.lifecycle.promote import promote

            promote(args.to, alias, force=True, reason="bench.swap: forced promotion under load",
                    log=lambda s: print(s, file=sys.stderr))
            out["promote_seconds"] = round(time.perf_counter() - moved, 1)
        else:
            store.set(name, alias, args.to, reason="bench.swap", forced=True)
        out["swap_seconds"] = wait_tag(base, args.to)
        out["swap"] = get(base + "/info")["last_swap"]
        time.sleep(args.settle)
        store.rollback(name, alias, reason="bench.swap: rollback")
        out["rollback_seconds"] = wait_tag(base, start_tag)
        out["rollback"] = get(base + "/info")["last_swap"]
        time.sleep(args.settle)
        info = get(base + "/info")
        out["memory_after"], out["shadow"] = info["memory"], info["shadow"]
        stop.set()
        thread.join(60)
    out["load"] = result
    out["failed_requests"] = result.get("errors")
    print(json.dumps(out, ensure_ascii=False, indent=1))
    return 1 if result.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
