"""Exchanges: the predeclared ones, the four types, durable / auto-delete / internal, exchange-to-
exchange bindings, alternate-exchange, the errors of declare / bind / delete, and the routing
tables of topic and headers exchanges.

Routing is observed by publishing with publisher confirms and mandatory=True (pika raises
UnroutableError when the broker returns the message), then basic.get on the queues: a confirm
is sent only after the message is enqueued, so a basic.get after it sees it.
"""

import pika
import pika.exceptions
import pytest

from amqphelp import bodies, confirmed_channel

PREDECLARED = [("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
               ("amq.headers", "headers"), ("amq.match", "headers")]


def publish(ch, exchange, key, body=b"m", headers=None, mandatory=True):
    """Publishes on a confirm channel; returns True if routed, False if returned (NO_ROUTE)."""
    props = pika.BasicProperties(headers=headers) if headers is not None else None
    try:
        ch.basic_publish(exchange, key, body, properties=props, mandatory=mandatory)
        return True
    except pika.exceptions.UnroutableError as e:
        assert e.messages[0].method.reply_code == 312
        assert e.messages[0].method.reply_text == "NO_ROUTE"
        return False


@pytest.fixture
def ch(amqp):
    return confirmed_channel(amqp)


def temp_queue(ch, exchange=None, key="", arguments=None):
    """A server-named exclusive queue, bound to exchange when given."""
    q = ch.queue_declare("", exclusive=True).method.queue
    if exchange is not None:
        ch.queue_bind(q, exchange, routing_key=key, arguments=arguments)
    return q


@pytest.mark.parametrize("name,kind", PREDECLARED)
def test_predeclared_exchanges_exist(amqp, ch, name, kind):
    ch.exchange_declare(name, kind, passive=True)
    # Redeclaring one with its own properties is allowed (equivalent); they are durable.
    ch.exchange_declare(name, kind, durable=True)
    args = {"x-match": "any", "h": 1} if kind == "headers" else None
    q = temp_queue(ch, name, "k", arguments=args)
    assert publish(ch, name, "k", b"via-" + name.encode(), headers={"h": 1})
    assert bodies(ch, q) == [b"via-" + name.encode()]


def test_default_exchange_routes_by_queue_name(amqp, ch):
    q = temp_queue(ch)
    assert publish(ch, "", q, b"direct-to-queue")
    assert not publish(ch, "", amqp.name("no-such-queue"))
    assert bodies(ch, q) == [b"direct-to-queue"]


def test_direct_exchange(amqp, ch):
    x = amqp.name("x-direct")
    ch.exchange_declare(x, "direct", auto_delete=True)
    qa, qb = temp_queue(ch, x, "a"), temp_queue(ch, x, "b")
    ch.queue_bind(qb, x, routing_key="a")  # one queue, two keys
    assert publish(ch, x, "a", b"1")
    assert publish(ch, x, "b", b"2")
    assert not publish(ch, x, "c", b"3")
    assert bodies(ch, qa) == [b"1"]
    assert bodies(ch, qb) == [b"1", b"2"]


def test_fanout_exchange_ignores_routing_key(amqp, ch):
    x = amqp.name("x-fanout")
    ch.exchange_declare(x, "fanout", auto_delete=True)
    qs = [temp_queue(ch, x, key) for key in ("a", "b", "")]
    assert publish(ch, x, "anything", b"f")
    assert [bodies(ch, q) for q in qs] == [[b"f"]] * 3


def test_same_binding_twice_delivers_once(amqp, ch):
    x = amqp.name("x-direct")
    ch.exchange_declare(x, "direct", auto_delete=True)
    q = temp_queue(ch, x, "k")
    ch.queue_bind(q, x, routing_key="k")
    assert publish(ch, x, "k", b"once")
    assert bodies(ch, q) == [b"once"]


def test_unbind_stops_routing(amqp, ch):
    x = amqp.name("x-direct")
    ch.exchange_declare(x, "direct", auto_delete=True)
    q = temp_queue(ch, x, "k")
    temp_queue(ch, x, "other")  # keeps the auto-delete exchange alive
    ch.queue_unbind(q, x, routing_key="k")
    assert not publish(ch, x, "k")
    assert bodies(ch, q) == []


def test_durable_exchange_equivalence(amqp, ch):
    x = amqp.name("x-durable")
    ch.exchange_declare(x, "direct", durable=True)
    try:
        ch.exchange_declare(x, "direct", durable=True)  # equivalent: fine
        with amqp.channel_error(406, "PRECONDITION_FAILED - inequivalent arg 'durable' for "
                                f"exchange '{x}' in vhost '/': received 'false' but "
                                "current is 'true'"):
            ch.exchange_declare(x, "direct", durable=False)
    finally:
        amqp.connect().channel().exchange_delete(x)


def test_auto_delete_exchange_goes_with_its_last_binding(amqp, ch):
    x = amqp.name("x-auto")
    ch.exchange_declare(x, "fanout", auto_delete=True)
    ch.exchange_declare(x, "fanout", passive=True)  # not deleted before its first binding
    q1, q2 = temp_queue(ch, x), temp_queue(ch, x)
    ch.queue_unbind(q1, x, routing_key="")
    ch.exchange_declare(x, "fanout", passive=True)  # one binding left
    ch.queue_unbind(q2, x, routing_key="")
    with amqp.channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        ch.exchange_declare(x, "fanout", passive=True)


def test_auto_delete_exchange_goes_when_its_queue_is_deleted(amqp, ch):
    x = amqp.name("x-auto")
    ch.exchange_declare(x, "fanout", auto_delete=True)
    q = temp_queue(ch, x)
    ch.queue_delete(q)
    with amqp.channel_error(404, "NOT_FOUND - no exchange"):
        ch.exchange_declare(x, "fanout", passive=True)


def test_internal_exchange_refuses_publishes_but_routes_via_bindings(amqp, ch):
    src, internal = amqp.name("x-src"), amqp.name("x-internal")
    ch.exchange_declare(src, "fanout", auto_delete=True)
    ch.exchange_declare(internal, "fanout", internal=True, auto_delete=True)
    ch.exchange_bind(internal, src)
    q = temp_queue(ch, internal)
    assert publish(ch, src, "", b"through")
    assert bodies(ch, q) == [b"through"]
    with amqp.channel_error(403, f"ACCESS_REFUSED - cannot publish to internal exchange "
                            f"'{internal}' in vhost '/'"):
        publish(ch, internal, "", b"direct")


def test_exchange_to_exchange_bind_and_unbind(amqp, ch):
    src, dst = amqp.name("x-src"), amqp.name("x-dst")
    ch.exchange_declare(src, "topic", auto_delete=True)
    ch.exchange_declare(dst, "direct", auto_delete=True)
    ch.exchange_bind(dst, src, routing_key="a.*")
    qa, qb = temp_queue(ch, dst, "a.b"), temp_queue(ch, dst, "a.c")
    qsrc = temp_queue(ch, src, "#")  # keeps src alive after the unbind
    assert publish(ch, src, "a.b", b"ab")  # topic a.* at src, then direct a.b at dst
    assert publish(ch, src, "a.c", b"ac")
    assert publish(ch, src, "x.b", b"xb")  # only qsrc
    assert bodies(ch, qa) == [b"ab"]
    assert bodies(ch, qb) == [b"ac"]
    assert bodies(ch, qsrc) == [b"ab", b"ac", b"xb"]
    ch.exchange_unbind(dst, src, routing_key="a.*")
    assert publish(ch, src, "a.b", b"after")
    assert bodies(ch, qa) == []
    assert bodies(ch, qsrc) == [b"after"]


def test_exchange_to_exchange_cycle_delivers_once(amqp, ch):
    a, b = amqp.name("x-a"), amqp.name("x-b")
    ch.exchange_declare(a, "fanout", auto_delete=True)
    ch.exchange_declare(b, "fanout", auto_delete=True)
    ch.exchange_bind(b, a)
    ch.exchange_bind(a, b)
    qa, qb = temp_queue(ch, a), temp_queue(ch, b)
    assert publish(ch, a, "", b"loop")
    assert bodies(ch, qa) == [b"loop"]
    assert bodies(ch, qb) == [b"loop"]
    ch.exchange_delete(a)
    ch.exchange_delete(b)


def test_alternate_exchange(amqp, ch):
    x, ae = amqp.name("x-main"), amqp.name("x-ae")
    ch.exchange_declare(ae, "fanout", auto_delete=True)
    ch.exchange_declare(x, "direct", auto_delete=True, arguments={"alternate-exchange": ae})
    q, qae = temp_queue(ch, x, "known"), temp_queue(ch, ae)
    assert publish(ch, x, "known", b"routed")
    # Unroutable at x but taken by the alternate exchange: routed, so no basic.return.
    assert publish(ch, x, "unknown", b"spilled")
    assert bodies(ch, q) == [b"routed"]
    assert bodies(ch, qae) == [b"spilled"]
    ch.exchange_delete(ae)
    # The alternate exchange is gone: unroutable again (a missing AE is not an error).
    assert not publish(ch, x, "unknown", b"lost")


def test_passive_declare_of_missing_exchange(amqp, ch):
    x = amqp.name("x-missing")
    with amqp.channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        ch.exchange_declare(x, "direct", passive=True)


def test_redeclare_with_other_type(amqp, ch):
    x = amqp.name("x-type")
    ch.exchange_declare(x, "direct", auto_delete=True)
    temp_queue(ch, x, "k")
    with amqp.channel_error(406, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange "
                            f"'{x}' in vhost '/': received 'fanout' but current is 'direct'"):
        ch.exchange_declare(x, "fanout", auto_delete=True)


@pytest.mark.parametrize("name", ["amq.tern-test", "amq.direct2", "amq."])
def test_reserved_amq_prefix(amqp, ch, name):
    with amqp.channel_error(403, f"ACCESS_REFUSED - exchange name '{name}' contains reserved "
                            "prefix 'amq.*'"):
        ch.exchange_declare(name, "direct")


def test_delete_predeclared_exchange_refused(amqp, ch):
    with amqp.channel_error(403, "ACCESS_REFUSED - "):
        ch.exchange_delete("amq.direct")
    ch = amqp.connect().channel()
    ch.exchange_declare("amq.direct", "direct", passive=True)


def test_bind_queue_to_default_exchange_refused(amqp, ch):
    q = temp_queue(ch)
    with amqp.channel_error(403, "ACCESS_REFUSED - operation not permitted on the default "
                            "exchange"):
        ch.queue_bind(q, "", routing_key="k")


def test_bind_to_missing_exchange_or_queue(amqp, ch):
    q, x = temp_queue(ch), amqp.name("x-missing")
    with amqp.channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        ch.queue_bind(q, x, routing_key="k")
    ch = amqp.connect().channel()
    missing = amqp.name("q-missing")
    with amqp.channel_error(404, f"NOT_FOUND - no queue '{missing}' in vhost '/'"):
        ch.queue_bind(missing, "amq.direct", routing_key="k")


def test_delete_if_unused(amqp, ch):
    x = amqp.name("x-del")
    ch.exchange_declare(x, "direct")
    q = temp_queue(ch, x, "k")
    with amqp.channel_error(406, f"PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use"):
        ch.exchange_delete(x, if_unused=True)
    ch = ch.connection.channel()  # the same connection: q is exclusive to it
    ch.confirm_delivery()
    ch.exchange_declare(x, "direct", passive=True)  # still there, binding intact
    assert publish(ch, x, "k", b"still-bound")
    assert bodies(ch, q) == [b"still-bound"]
    ch.queue_unbind(q, x, routing_key="k")
    ch.exchange_delete(x, if_unused=True)
    with amqp.channel_error(404, "NOT_FOUND - no exchange"):
        ch.exchange_declare(x, "direct", passive=True)


def test_delete_removes_bindings_and_missing_delete_is_ok(amqp, ch):
    x = amqp.name("x-del")
    ch.exchange_declare(x, "direct")
    q = temp_queue(ch, x, "k")
    ch.exchange_delete(x)
    ch.exchange_delete(x)  # deleting a missing exchange succeeds (idempotent)
    ch.exchange_declare(x, "direct")  # a new exchange with the same name has no bindings
    try:
        assert not publish(ch, x, "k")
        assert bodies(ch, q) == []
    finally:
        ch.exchange_delete(x)


def test_unknown_exchange_type_is_a_connection_error(amqp):
    conn = amqp.connect()
    ch = conn.channel()
    with amqp.connection_error(503, "COMMAND_INVALID - unknown exchange type 'no-such-type'"):
        ch.exchange_declare(amqp.name("x-bad"), "no-such-type")
    assert not conn.is_open


# ---------------------------------------------------------------------------------------------
# Topic matching: (binding key, routing key, routed?). Words are separated by '.', may be
# empty; '*' is exactly one word, '#' is zero or more words; '*' or '#' inside a word is a
# literal character. The empty routing key has zero words.

TOPIC_CASES = [
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.b.c", "a.b.c.d", False),
    ("a.b", "A.B", False),  # case sensitive
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),
    ("a.*.c", "a.b.b.c", False),
    ("*", "a", True),
    ("*", "a.b", False),
    ("*", "", False),
    ("*.*", "a.b", True),
    ("*.*", "a", False),
    ("#", "", True),
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("#", ".", True),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a.#", "b.a", False),
    ("a.#", "a.", True),  # 'a' then one empty word
    ("#.a", "a", True),
    ("#.a", "x.y.a", True),
    ("#.a", "a.x", False),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.x.y", False),
    ("a.#.b", "a.b.b", True),
    ("a.#.#.b", "a.b", True),
    ("#.#", "", True),
    ("#.#", "a.b", True),
    ("#.*", "", False),
    ("#.*", "a.b.c", True),
    ("*.#", "a", True),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("*.a.#", "x.a.y.z", True),
    ("#.b.*", "a.b", False),
    ("#.b.*", "a.b.c", True),
    ("a..b", "a..b", True),  # empty words are words
    ("a..b", "a.b", False),
    ("a.*.b", "a..b", True),  # '*' matches an empty word
    ("*", ".", False),  # '.' is two empty words
    ("*.*", ".", True),
    ("*.b", ".b", True),
    ("", "", True),
    ("", "a", False),
    ("a.b*", "a.bc", False),  # '*' inside a word is literal
    ("a.b*", "a.b*", True),
    ("a#", "a.b", False),
    ("a#", "a#", True),
]


@pytest.mark.parametrize("binding,key,routed", TOPIC_CASES,
                         ids=[f"{b or '<empty>'}|{k or '<empty>'}" for b, k, _ in TOPIC_CASES])
def test_topic_matching(amqp, ch, binding, key, routed):
    x = amqp.name("x-topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    q = temp_queue(ch, x, binding)
    body = f"{binding}|{key}".encode()
    assert publish(ch, x, key, body) == routed
    assert bodies(ch, q) == ([body] if routed else [])


def test_topic_many_bindings_one_delivery_per_queue(amqp, ch):
    x = amqp.name("x-topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    q1 = temp_queue(ch, x, "a.*")
    for key in ("#", "a.b", "*.b", "a.#.b"):
        ch.queue_bind(q1, x, routing_key=key)
    q2 = temp_queue(ch, x, "x.*")
    assert publish(ch, x, "a.b", b"one")
    assert bodies(ch, q1) == [b"one"]
    assert bodies(ch, q2) == []


# ---------------------------------------------------------------------------------------------
# Headers exchange: binding arguments against message headers. x-match all (default) or any
# compare the non-"x-" arguments; all-with-x and any-with-x compare the "x-" ones too. A value
# compares by type and value.

HEADER_CASES = [
    # (binding arguments, message headers, routed?)
    ({"x-match": "all", "a": 1, "b": "x"}, {"a": 1, "b": "x"}, True),
    ({"x-match": "all", "a": 1, "b": "x"}, {"a": 1, "b": "x", "c": 3}, True),
    ({"x-match": "all", "a": 1, "b": "x"}, {"a": 1}, False),
    ({"x-match": "all", "a": 1, "b": "x"}, {"a": 2, "b": "x"}, False),
    ({"x-match": "all", "a": 1, "b": "x"}, {}, False),
    ({"x-match": "all", "a": 1, "b": "x"}, None, False),
    ({"a": 1, "b": "x"}, {"a": 1, "b": "x"}, True),  # all is the default
    ({"a": 1, "b": "x"}, {"a": 1}, False),
    ({"x-match": "all", "a": 1}, {"a": "1"}, False),  # type matters
    ({"x-match": "all"}, {"z": 1}, True),  # nothing to compare: all of nothing
    ({"x-match": "all"}, None, True),
    ({"x-match": "any", "a": 1, "b": "x"}, {"a": 1}, True),
    ({"x-match": "any", "a": 1, "b": "x"}, {"b": "x", "c": 0}, True),
    ({"x-match": "any", "a": 1, "b": "x"}, {"a": 2, "b": "y"}, False),
    ({"x-match": "any", "a": 1, "b": "x"}, {}, False),
    ({"x-match": "any", "a": 1, "b": "x"}, None, False),
    ({"x-match": "all", "a": 1, "x-tag": "t"}, {"a": 1}, True),  # x- arguments ignored
    ({"x-match": "all", "a": 1, "x-tag": "t"}, {"a": 1, "x-tag": "other"}, True),
    ({"x-match": "any", "x-tag": "t"}, {"x-tag": "t"}, False),
    ({"x-match": "all-with-x", "a": 1, "x-tag": "t"}, {"a": 1}, False),
    ({"x-match": "all-with-x", "a": 1, "x-tag": "t"}, {"a": 1, "x-tag": "t"}, True),
    ({"x-match": "all-with-x", "a": 1, "x-tag": "t"}, {"a": 1, "x-tag": "u"}, False),
    ({"x-match": "any-with-x", "x-tag": "t"}, {"x-tag": "t"}, True),
    ({"x-match": "any-with-x", "a": 1, "x-tag": "t"}, {"a": 1}, True),
    ({"x-match": "any-with-x", "a": 1, "x-tag": "t"}, {"x-tag": "u", "a": 2}, False),
]


@pytest.mark.parametrize("args,headers,routed", HEADER_CASES)
def test_headers_matching(amqp, ch, args, headers, routed):
    x = amqp.name("x-headers")
    ch.exchange_declare(x, "headers", auto_delete=True)
    q = temp_queue(ch, x, "ignored", arguments=args)
    assert publish(ch, x, "any-key", b"h", headers=headers) == routed
    assert bodies(ch, q) == ([b"h"] if routed else [])


def test_headers_on_amq_match(amqp, ch):
    tag = amqp.name("tag")
    q = temp_queue(ch, "amq.match", arguments={"x-match": "any", "tern-test": tag})
    other = temp_queue(ch, "amq.match", arguments={"tern-test": "never-sent"})
    assert publish(ch, "amq.match", "", b"m", headers={"tern-test": tag})
    assert bodies(ch, q) == [b"m"]
    assert bodies(ch, other) == []
