"""What the RocketMQ 5 Python client programs share: one JSON line per event on
stdout, a watchdog that ends the process at its deadline whatever the client is
doing, and the client configuration from the command line.

The client logs to ~/logs/rocketmq_python/, never to stdout, so stdout holds only
the events.
"""

import argparse
import json
import os
import sys
import threading
import time

_lock = threading.Lock()
_errors = 0


def now_ms():
    return int(time.time() * 1000)


def emit(event, **fields):
    """Prints one event as a JSON line and flushes it at once."""
    line = json.dumps({"event": event, **fields}, sort_keys=True, default=str)
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def error(stage, exc):
    """Prints an error event naming the exception's class and message."""
    global _errors
    _errors += 1
    emit("error", stage=stage, **{"class": type(exc).__name__}, message=str(exc))


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--endpoint", required=True, help="host:port of the gRPC endpoint")
    p.add_argument("--topic", required=True)
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds after which the program ends whatever its state")
    p.add_argument("--request-timeout", type=int, default=3,
                   help="the client's per-RPC timeout, seconds")
    p.add_argument("--access-key", default="")
    p.add_argument("--secret-key", default="")
    p.add_argument("--namespace", default="")
    return p


def config(args):
    from rocketmq import ClientConfiguration, Credentials

    return ClientConfiguration(
        args.endpoint,
        Credentials(args.access_key, args.secret_key),
        namespace=args.namespace,
        request_timeout=args.request_timeout,
    )


def watchdog(seconds):
    """Ends the process with status 3 after `seconds`, even if the client hangs."""

    def fire():
        emit("timeout", after_s=seconds)
        os._exit(3)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t


def shutdown(client, name):
    """Shuts the client down; a client that never started says so and is let be."""
    if client is None:
        return
    try:
        client.shutdown()
        emit("shutdown", client=name)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        error("shutdown", e)


def finish():
    """Exits 0 when no error event was printed, else 1, without waiting for the
    client's leftover non-daemon threads."""
    emit("done", errors=_errors)
    sys.stdout.flush()
    os._exit(0 if _errors == 0 else 1)


def received(msg):
    """The event of one received message."""
    body = msg.body
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", errors="replace")
    return dict(
        message_id=msg.message_id,
        topic=msg.topic,
        body=body,
        tag=msg.tag,
        keys=sorted(msg.keys),
        properties=dict(msg.properties),
        delivery_attempt=msg.delivery_attempt,
        delivery_timestamp_ms=msg.delivery_timestamp,
        born_timestamp_ms=msg.born_timestamp,
        receive_time_ms=now_ms(),
        corrupted=msg.corrupted,
    )
