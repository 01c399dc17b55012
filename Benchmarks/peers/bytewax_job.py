"""The job in Bytewax: Kafka input (stops at the end of the topic), keyed by visitor,
stateful_map.

usage: bytewax_job.py BROKER TOPIC EVENTS [DECISIONS_FILE]
Prints: events, seconds (dataflow start to end), decisions.
"""
import json
import sys
import time

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

import job

broker, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = sys.argv[4] if len(sys.argv) > 4 else None
seen = {"events": 0}
decisions = []

flow = Dataflow("beckon-peer")
messages = op.input("in", flow, KafkaSource([broker], [topic], tail=False))


def parse(message):
    seen["events"] += 1
    return job.parse(message.value)


events = op.filter("valid", op.map("parse", messages, parse), lambda e: e is not None)
keyed = op.key_on("visitor", events, lambda e: e[2])


def dwell(state, event):
    state, made = job.step(state, event)
    decisions.extend(made)
    return state, None


dwelled = op.stateful_map("dwell", keyed, dwell)
op.inspect("end", dwelled, lambda _step, _item: None)  # a dataflow needs an output step
started = time.monotonic()
run_main(flow)
seconds = time.monotonic() - started
if out:
    with open(out, "w") as f:
        json.dump(sorted(decisions), f)
print(json.dumps({"peer": "bytewax", "events": seen["events"], "seconds": round(seconds, 3), "decisions": len(decisions)}))
if seen["events"] != expected:
    sys.exit(f"bytewax: read {seen['events']} events, expected {expected}")
