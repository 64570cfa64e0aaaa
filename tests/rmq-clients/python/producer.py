"""Sends messages with the official Python Producer and prints a JSON line per event.

Modes:
  delay           a DELAY message: tag, keys, a user property, delivery timestamp
                  now + --delay-ms (the client API takes whole seconds)
  normal          a NORMAL message (no delivery timestamp); to a DELAY topic the client
                  itself refuses it before any RPC
  ms-as-seconds   the pitfall: milliseconds passed where the API wants seconds; the
                  server must refuse it (ILLEGAL_DELIVERY_TIME) and the error is printed
  recall          a DELAY message, then recall_message with its receipt's recall handle
"""

import common


def build(args, mode):
    from rocketmq import Message

    msg = Message()
    msg.topic = args.topic
    msg.body = args.body.encode("utf-8")
    if args.tag:
        msg.tag = args.tag
    for key in filter(None, args.keys.split(",")):
        # The setter adds one key per assignment.
        msg.keys = key
    for prop in filter(None, args.property):
        k, _, v = prop.partition("=")
        msg.add_property(k, v)
    deliver_at_ms = None
    if mode in ("delay", "recall"):
        deliver_at_ms = common.now_ms() + args.delay_ms
        # The API wants seconds; round up so the message is never early.
        msg.delivery_timestamp = -(-deliver_at_ms // 1000)
        deliver_at_ms = msg.delivery_timestamp * 1000
    elif mode == "ms-as-seconds":
        deliver_at_ms = common.now_ms() + args.delay_ms
        msg.delivery_timestamp = deliver_at_ms
    return msg, deliver_at_ms


def main():
    p = common.parser(__doc__)
    p.add_argument("--mode", choices=["delay", "normal", "ms-as-seconds", "recall"],
                   default="delay")
    p.add_argument("--body", default="hello from python")
    p.add_argument("--tag", default="TagA")
    p.add_argument("--keys", default="", help="comma-separated message keys")
    p.add_argument("--property", action="append", default=[], help="k=v, repeatable")
    p.add_argument("--delay-ms", type=int, default=5000)
    p.add_argument("--count", type=int, default=1)
    args = p.parse_args()
    common.watchdog(args.timeout)

    from rocketmq import Producer

    producer = None
    try:
        producer = Producer(common.config(args), (args.topic,))
        producer.startup()
        common.emit("started", client="producer", mode=args.mode)
    except Exception as e:  # noqa: BLE001
        common.error("startup", e)
        producer = None

    if producer is not None:
        for i in range(args.count):
            try:
                msg, deliver_at_ms = build(args, args.mode)
                receipt = producer.send(msg)
                common.emit(
                    "sent", index=i, message_id=receipt.message_id,
                    offset=receipt.offset, recall_handle=receipt.recall_handle,
                    deliver_at_ms=deliver_at_ms, send_time_ms=common.now_ms(),
                )
            except Exception as e:  # noqa: BLE001
                common.error("send", e)
                continue
            if args.mode == "recall":
                try:
                    recalled = producer.recall_message(args.topic, receipt.recall_handle)
                    common.emit("recalled", message_id=recalled)
                except Exception as e:  # noqa: BLE001
                    common.error("recall", e)
    common.shutdown(producer, "producer")
    common.finish()


if __name__ == "__main__":
    main()
