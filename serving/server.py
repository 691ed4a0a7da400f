"""Start the BentoML HTTP service for a serving artifact.

    fanzha serve --model artifacts/demo/serving [--port 3000] [--host 127.0.0.1]
    fanzha serve --model artifacts/sms/serving --chat-model artifacts/chat/serving    # POST /chat on its own model
    fanzha serve --model artifacts/sms/serving --policy /etc/fanzha/policy.yaml       # one policy file for every model
    fanzha serve --model fanzha-sms@champion [--shadow fanzha-sms@challenger]        # follow an alias (hot swap), shadow

--model is an artifact folder (FANZHA_MODEL), a pinned tag `name:version` or an alias `name@alias`
of the BentoML model store (FANZHA_MODEL_TAG; an alias is followed: serving/lifecycle/live.py).
Sets FANZHA_MODEL / FANZHA_MODEL_TAG (and FANZHA_CHAT_MODEL: without it POST /chat uses the
--model; FANZHA_SHADOW_TAG for --shadow) and runs `bentoml serve serving.service:Fanzha` in this process.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from serving.policy import Policy, PolicyError
from serving.predictor import ArtifactError, ArtifactMeta, check_policy_for

REPO = Path(__file__).resolve().parent.parent


def stop_process_group(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a server started with start_new_session=True: SIGTERM to its whole process group (the
    BentoML arbiter and its workers; in-flight requests drain), SIGKILL after `timeout` seconds."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="serving artifact folder (fanzha export), or a model "
                        "store tag name:version, or an alias name@champion to follow")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--chat-model", type=Path, help="serving artifact of the chat model for POST /chat "
                        "(default: --model)")
    parser.add_argument("--shadow", help="a second model (name@alias, name:version or folder) that scores every batch "
                        "off the answer path, to compare decisions (fanzha_shadow_* metrics)")
    parser.add_argument("--policy", type=Path, help="decision policy file for every model served (FANZHA_POLICY; "
                        "default: the --model artifact's policy.yaml); re-read when it changes")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    try:  # fail here, clearly, rather than inside a worker
        model = Path(args.model)
        if not model.is_dir() and (":" in args.model or "@" in args.model):
            from serving.lifecycle.live import locate

            model = locate(args.model)[1]
            env["FANZHA_MODEL_TAG"] = args.model
            env.pop("FANZHA_MODEL", None)
        else:
            env["FANZHA_MODEL"] = str(model.resolve())
            env.pop("FANZHA_MODEL_TAG", None)
        ArtifactMeta.load(model)
        if args.chat_model:
            ArtifactMeta.load(args.chat_model)
        if args.shadow:
            from serving.lifecycle.live import locate

            shadow = Path(args.shadow) if Path(args.shadow).is_dir() else locate(args.shadow)[1]
            ArtifactMeta.load(shadow)
            env["FANZHA_SHADOW_TAG"] = str(shadow.resolve()) if Path(args.shadow).is_dir() else args.shadow
        if args.policy:
            policy = Policy.load(args.policy)
            for folder in filter(None, (model, args.chat_model)):
                check_policy_for(folder, policy)
    except (ArtifactError, PolicyError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    if args.chat_model:
        env["FANZHA_CHAT_MODEL"] = str(args.chat_model.resolve())
    if args.policy:
        env["FANZHA_POLICY"] = str(args.policy.resolve())
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:Fanzha",
               "--host", args.host, "--port", str(args.port), "--working-dir", str(REPO)]
    os.execve(sys.executable, command, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
