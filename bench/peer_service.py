"""The peer: a plain FastAPI + transformers-pipeline web service with the same model, as one
would write it without fanzha — the baseline `make bench` compares the service against.

    python -m bench.peer_service --model artifacts/demo/model --port 3001

`POST /classify {"texts": [...]}` returns the pipeline's label and score per text; `GET /readyz`.
PyTorch eager on CPU, one uvicorn worker, a sync endpoint (FastAPI runs it in its thread pool),
the pipeline's own tokenization (`truncation=True`, head only) and no batching across requests.
"""
from __future__ import annotations

import argparse
import sys

from pydantic import BaseModel


class Request(BaseModel):
    texts: list[str]


def build_app(model_dir: str, max_length: int):
    import torch
    from fastapi import FastAPI
    from transformers import pipeline

    torch.set_grad_enabled(False)
    classifier = pipeline("text-classification", model=model_dir, device=-1)
    app = FastAPI(title="peer: transformers pipeline")

    @app.post("/classify")
    def classify(request: Request) -> list[dict]:
        return classifier(request.texts, truncation=True, max_length=max_length, batch_size=len(request.texts) or 1)

    @app.get("/readyz")
    def readyz() -> dict:
        return {"ready": True}

    classifier("预热")  # first call allocates; the service warms up too
    return app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_service", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model artifact folder (Hugging Face layout)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(build_app(args.model, args.max_length), host=args.host, port=args.port, log_level="warning",
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
