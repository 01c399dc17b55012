"""The job the peers run, the same as Beckon's shipped rule on the same events.

Per visitor: event counts in 1-minute tumbling windows (event time), and the dwell rule
of Rules/checkout-payment-dwell.yaml: a visitor on /checkout/payment for at least 45 s
gets one decision, triggered by the page event that entered the page. Without event-time
timers, a dwell is noticed at the visitor's next event (a ping, another page, anything);
the comparison stream ends every journey with one (`beckon simulate --farewell`).
Malformed events are skipped.
"""
import json
from datetime import datetime

PAGE = "/checkout/payment"
DWELL_MS = 45_000
WINDOW_MS = 60_000


def parse(value: bytes):
    try:
        e = json.loads(value)
        ts = e["ts"]
        if isinstance(ts, str):
            ts = int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)
        page = e.get("page") or {}
        return e["event_id"], e["type"], e["visitor_id"], int(ts), page.get("path")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def new_state():
    # windows: [[window start, count], ...], newest last (JSON-safe, for Quix's state store)
    return {"path": None, "since": 0, "trigger": None, "fired": False, "windows": []}


def step(state, event):
    """Applies one parsed event; returns (state, decisions as [(visitor, trigger)])."""
    event_id, kind, visitor, ts, path = event
    state = state or new_state()
    window = ts - ts % WINDOW_MS
    windows = [w for w in state["windows"] if w[0] >= window - 5 * WINDOW_MS]
    match = next((w for w in windows if w[0] == window), None)
    if match:
        match[1] += 1
    else:
        windows.append([window, 1])
    state["windows"] = windows
    decisions = []

    def settle(at):
        if state["path"] == PAGE and not state["fired"] and at - state["since"] >= DWELL_MS:
            state["fired"] = True
            decisions.append((visitor, state["trigger"]))

    if kind in ("page_view", "page_ping") and path:
        settle(ts)
        if path != state["path"]:
            state.update(path=path, since=ts, trigger=event_id, fired=False)
    elif kind == "page_hidden":
        settle(ts)
        state["path"] = None
    else:
        settle(ts)
    return state, decisions
