"""The job in Quix Streams: a stateful apply keyed by visitor (the message key).

usage: quix_job.py BROKER TOPIC EVENTS [DECISIONS_FILE]
Prints: events, seconds (start to the last event processed, group join included), decisions.
"""
import json
import shutil
import sys
import tempfile
import time

from quixstreams import Application

import job

broker, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = sys.argv[4] if len(sys.argv) > 4 else None
started = time.monotonic()
seen = {"events": 0, "last": started}
decisions = []


def apply(value, state):
    seen["events"] += 1
    seen["last"] = time.monotonic()
    event = job.parse(value)
    if event is None:
        return None
    current, made = job.step(state.get("dwell"), event)
    state.set("dwell", current)
    decisions.extend(made)
    return None


# Its RocksDB state goes to a folder of its own, removed afterwards (by default Quix
# writes ./state in the working directory, which is the repository).
state_dir = tempfile.mkdtemp(prefix="beckon-quix-")
app = Application(broker_address=broker, consumer_group=f"quix-{time.time_ns()}", auto_offset_reset="earliest", state_dir=state_dir)
sdf = app.dataframe(app.topic(topic, value_deserializer="bytes", key_deserializer="str"))
sdf = sdf.apply(apply, stateful=True)
try:
    app.run(sdf, timeout=10)
finally:
    shutil.rmtree(state_dir, ignore_errors=True)
seconds = seen["last"] - started
if out:
    with open(out, "w") as f:
        json.dump(sorted(decisions), f)
print(json.dumps({"peer": "quixstreams", "events": seen["events"], "seconds": round(seconds, 3), "decisions": len(decisions)}))
if seen["events"] != expected:
    sys.exit(f"quix: read {seen['events']} events, expected {expected}")
