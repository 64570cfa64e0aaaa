"""Consumes with the official Python PushConsumer and prints a JSON line per event.

The listener prints each message and returns --result: SUCCESS (the client acks) or
FAILURE (the client changes the invisible duration by its backoff and the server
redelivers with the next attempt). The run ends after --expect deliveries (counting
redeliveries) plus --linger seconds, or at --timeout.
"""

import threading
import time

import common


def main():
    p = common.parser(__doc__)
    p.add_argument("--group", required=True)
    p.add_argument("--filter", default="*")
    p.add_argument("--result", choices=["success", "failure"], default="success")
    p.add_argument("--expect", type=int, default=1, help="deliveries to wait for")
    p.add_argument("--linger", type=float, default=1.0,
                   help="seconds to keep running after the last expected delivery, so "
                        "that the client's ack or nack reaches the server")
    args = p.parse_args()
    common.watchdog(args.timeout)

    from rocketmq import (ConsumeResult, FilterExpression, MessageListener,
                          PushConsumer)

    result = ConsumeResult.SUCCESS if args.result == "success" else ConsumeResult.FAILURE
    seen = [0]
    enough = threading.Event()

    class Listener(MessageListener):
        def consume(self, message):
            common.emit("received", result=args.result, **common.received(message))
            seen[0] += 1
            if seen[0] >= args.expect:
                enough.set()
            return result

    consumer = None
    try:
        consumer = PushConsumer(
            common.config(args), args.group, Listener(),
            {args.topic: FilterExpression(args.filter)},
        )
        # Blocks until the server's settings arrive, at most 10 s.
        consumer.startup()
        common.emit("started", client="push_consumer", result=args.result)
    except Exception as e:  # noqa: BLE001
        common.error("startup", e)
        consumer = None

    if consumer is not None:
        wait = max(0.0, args.timeout - args.linger - 5)
        if enough.wait(wait):
            time.sleep(args.linger)
        else:
            common.emit("incomplete", deliveries=seen[0], expected=args.expect)
    common.shutdown(consumer, "push_consumer")
    common.finish()


if __name__ == "__main__":
    main()
