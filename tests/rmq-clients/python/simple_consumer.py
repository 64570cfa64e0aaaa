"""Receives with the official Python SimpleConsumer and prints a JSON line per event.

Modes:
  ack               receive --expect messages and ack each
  redeliver         receive a message, do not ack it, receive until it comes again
                    (delivery attempt 2), then ack that delivery
  change-invisible  receive a message, change_invisible_duration to
                    --new-invisible-seconds (the client stores the new receipt handle
                    in the message), wait --ack-delay-seconds, then ack with it

Every receive long-polls at most --await-seconds; the whole run ends by --timeout.
"""

import time

import common


def main():
    p = common.parser(__doc__)
    p.add_argument("--group", required=True)
    p.add_argument("--mode", choices=["ack", "redeliver", "change-invisible"],
                   default="ack")
    p.add_argument("--filter", default="*", help='tag expression: "*" or "a||b"')
    p.add_argument("--expect", type=int, default=1, help="messages to receive (ack mode)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--invisible-seconds", type=int, default=10)
    p.add_argument("--new-invisible-seconds", type=int, default=20)
    p.add_argument("--ack-delay-seconds", type=float, default=0.0,
                   help="change-invisible: wait this long between the change and the ack")
    p.add_argument("--await-seconds", type=int, default=5)
    p.add_argument("--max-errors", type=int, default=3,
                   help="failed receives after which the program gives up")
    args = p.parse_args()
    common.watchdog(args.timeout)
    # Stop polling early enough to shut down before the watchdog fires.
    stop_at = time.monotonic() + args.timeout - args.await_seconds - args.request_timeout - 2
    failures = [0]

    def running():
        return time.monotonic() < stop_at and failures[0] < args.max_errors

    from rocketmq import FilterExpression, SimpleConsumer

    consumer = None
    try:
        consumer = SimpleConsumer(
            common.config(args), args.group,
            {args.topic: FilterExpression(args.filter)},
            await_duration=args.await_seconds,
        )
        consumer.startup()
        common.emit("started", client="simple_consumer", mode=args.mode)
    except Exception as e:  # noqa: BLE001
        common.error("startup", e)
        consumer = None

    def receive():
        try:
            msgs = consumer.receive(args.batch, args.invisible_seconds)
        except Exception as e:  # noqa: BLE001
            common.error("receive", e)
            failures[0] += 1
            time.sleep(1)
            return []
        for m in msgs:
            common.emit("received", **common.received(m))
        return msgs

    def ack(m):
        try:
            consumer.ack(m)
            common.emit("acked", message_id=m.message_id)
        except Exception as e:  # noqa: BLE001
            common.error("ack", e)

    if consumer is not None:
        if args.mode == "ack":
            got = 0
            while got < args.expect and running():
                for m in receive():
                    got += 1
                    ack(m)
        else:
            first = None
            while first is None and running():
                msgs = receive()
                first = msgs[0] if msgs else None
            if first is not None and args.mode == "redeliver":
                again = None
                while again is None and running():
                    again = next((m for m in receive() if m.message_id == first.message_id), None)
                if again is not None:
                    ack(again)
            elif first is not None:
                try:
                    change_time_ms = common.now_ms()
                    consumer.change_invisible_duration(first, args.new_invisible_seconds)
                    common.emit("changed", message_id=first.message_id,
                                invisible_seconds=args.new_invisible_seconds,
                                change_time_ms=change_time_ms)
                    time.sleep(args.ack_delay_seconds)
                    ack(first)
                except Exception as e:  # noqa: BLE001
                    common.error("change_invisible_duration", e)
    common.shutdown(consumer, "simple_consumer")
    common.finish()


if __name__ == "__main__":
    main()
