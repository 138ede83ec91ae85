"""The baseline a user would write first: aiokafka plus sentence-transformers, one event at a time.

``python -m bench.naive_consumer --bootstrap B --group G --topics a,b,c --output T``

For every record: parse the JSON, embed each of its texts with
``SentenceTransformer.encode([text])`` (torch, one text per call), score the
categories zero-shot against the taxonomy, and send a small result record.
Offsets are auto-committed every 0.5 s. It is deliberately what a first version
looks like, without the worker's guarantees (no dedupe, no DLQ, auto-commit);
the point of comparison is the per-event model call. Needs the ``train`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

import numpy as np
import torch
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sentence_transformers import SentenceTransformer

from memberstream.config import Settings
from memberstream.domain.taxonomy import Taxonomy
from memberstream.ml.onnx_export import default_source_dir

log = logging.getLogger("naive")


def texts_of(event: dict) -> list[str]:
    if "items" in event:
        return [item["title"] for item in event["items"]]
    if "rating" in event:
        return ["\n".join(p for p in (event.get("title"), event.get("text")) if p)]
    text = event.get("title") or event.get("query")
    return [text] if text else []


async def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    model = SentenceTransformer(str(args.model or default_source_dir()), device="cpu")
    taxonomy = Taxonomy.load()
    categories = model.encode(taxonomy.descriptions(), normalize_embeddings=True)
    # --bootstrap, and the security settings (MEMBERSTREAM_KAFKA__*) from the environment
    kafka = Settings(kafka_bootstrap_servers=args.bootstrap).kafka_client_kwargs()
    consumer = AIOKafkaConsumer(
        *args.topics.split(","),
        **kafka,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        auto_commit_interval_ms=500,
    )
    producer = AIOKafkaProducer(**kafka)
    await consumer.start()
    await producer.start()
    try:
        async for msg in consumer:
            event = json.loads(msg.value)
            scores = []
            for text in texts_of(event):
                emb = model.encode([text], normalize_embeddings=True, show_progress_bar=False)[0]
                logits = categories @ emb / 0.05
                scores.append(taxonomy.ids[int(np.argmax(logits))])
            result = {"event_id": event["event_id"], "categories": scores}
            await producer.send(args.output, json.dumps(result).encode(), key=msg.key)
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topics", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--model", default=None, help="sentence-transformers checkpoint dir")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on 2 busy cores, 2 threads made each call ~10x slower)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
