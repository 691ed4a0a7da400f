"""The demo: train, evaluate and export the default model on the embedded corpus, serve it,
query it with example messages, and keep serving until Ctrl-C.

    fanzha demo [--port 3000] [--retrain]      # what `make demo` runs after `make setup`
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from data import settings
from serving.server import stop_process_group

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = [
    "【ETC服务】您的ETC认证已失效，车辆将无法通行，请点击 http://etc-renz.cn 重新认证。",
    "【招商银行】您的验证码为 482913，5分钟内有效，请勿泄露给他人。",
    "双十一狂欢价！全场服装低至3折，满299再减50，进店有礼，回复TD退订。",
]


def run(step: str, argv: list[str]) -> None:
    print(f"\n=== {step}: fanzha {' '.join(argv)}", flush=True)
    started = time.time()
    subprocess.run([sys.executable, "-m", "fanzha", *argv], cwd=REPO, check=True)
    print(f"=== {step} took {time.time() - started:.0f}s", flush=True)


def post(url: str, payload: dict) -> object:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_ready(base: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server was not ready within {timeout:.0f}s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=settings.get_int("PORT"))
    parser.add_argument("--retrain", action="store_true", help="train again even if the demo model exists")
    parser.add_argument("--no-wait", action="store_true", help="stop the server after the examples (for scripts)")
    parser.add_argument("--root", type=Path, default=REPO / "artifacts" / "demo",
                        help="where the demo's corpus, model and serving artifact live")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    model, serving, corpus = root / "model", root / "serving", root / "corpus"
    if args.retrain or not (serving / "fanzha.json").is_file():
        run("corpus", ["corpus", "--out", str(corpus), "--n", "8000"])
        run("train", ["train", "--config", "configs/default.yaml", "--set", f"output_dir={model}"])
        run("evaluate", ["evaluate", str(model), str(corpus), "--out", str(root / "eval"), "--obfuscate"])
        # the demo model is small and trained for minutes: if int8 misses the accuracy guard, serve fp32
        run("export", ["export", str(model), str(serving), "--int8-optional",
                       "--eval-report", str(root / "eval" / "report.json")])  # the model card's figures
    metrics = json.loads((model / "metrics.json").read_text(encoding="utf-8"))
    print(f"\nheld-out synthetic test: macro-F1 {metrics['test']['macro_f1']:.4f}, accuracy {metrics['test']['accuracy']:.4f}"
          f"\nevaluation report: {root / 'eval' / 'report.html'}")

    base = f"http://127.0.0.1:{args.port}"
    # The server runs in its own session (a terminal's Ctrl-C reaches only us): a SIGTERM (kill,
    # timeout, a supervisor) must also unwind through `finally`, or the server would be orphaned.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    server = subprocess.Popen([sys.executable, "-m", "fanzha", "serve", "--model", str(serving), "--port", str(args.port)],
                              cwd=REPO, start_new_session=True)
    try:
        wait_ready(base, server)
        print(f"\n=== service ready at {base}; example answers:")
        for text, result in zip(EXAMPLES, post(base + "/classify", {"texts": EXAMPLES})):
            print(f"\n{text}\n  -> {result['action'].upper():5} {result['label']} (score {result['score']:.3f}, "
                  f"fraud {result['fraud_score']:.3f}, spam {result['spam_score']:.3f})")
        print("\nTry it yourself:\n  curl -s -X POST " + base + "/classify -H 'Content-Type: application/json' "
              "-d '{\"texts\": [\"您的快递丢件了，我是客服，现在给您双倍理赔，请加微信 kf_2211\"]}'")
        print(f"  curl -s {base}/info\n\nServing until Ctrl-C.", flush=True)
        if not args.no_wait:
            server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_process_group(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
