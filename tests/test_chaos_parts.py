"""Parts of the fault soak (`bench/chaos/`) that its verdict rests on: the load balancer passes
requests on and keeps the ledger of callback answers, and a receiver told to fail refuses
messages without counting them as received."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest
import requests

from bench.chaos.balancer import Balancer
from bench.chaos.sinks import MailSink, WebhookSink
from service.runtime.processes import free_port


def test_the_balancer_skips_a_web_that_is_down_and_notes_each_callback_answer():
    sink = WebhookSink(free_port()).start()
    balancer = Balancer(free_port(), [free_port(), sink.port]).start()  # the first is down
    try:
        url = f"http://127.0.0.1:{balancer.port}"
        for body in ({"id": "e1"}, {"data": {"execution": {"id": "e2"}}}):
            answer = requests.post(f"{url}/callbacks/token", json=body, timeout=10)
            assert answer.status_code == 204
        assert requests.post(f"{url}/hook", json={}, timeout=10).status_code == 204
        noted = balancer.callback_answers()
        assert [(a.status, a.execution_id) for a in noted] == [(204, "e1"), (204, "e2")]
        assert balancer.unanswered == 0
    finally:
        balancer.stop()
        sink.stop()


def test_the_balancer_answers_502_when_no_web_answers():
    balancer = Balancer(free_port(), [free_port(), free_port()]).start()
    try:
        answer = requests.post(f"http://127.0.0.1:{balancer.port}/callbacks/t", json={}, timeout=10)
        assert answer.status_code == 502
        assert balancer.unanswered == 1
    finally:
        balancer.stop()


def test_failing_receivers_refuse_and_do_not_count_the_message():
    webhook, mail = WebhookSink(free_port()).start(), MailSink(free_port()).start()
    message = EmailMessage()
    message["Message-ID"] = "<msg_1@nbrelay>"
    message.set_content("firing")
    try:
        for failing, status in ((True, 503), (False, 204)):
            webhook.failing = mail.failing = failing
            answer = requests.post(webhook.url, headers={"webhook-id": "msg_1"}, timeout=10)
            assert answer.status_code == status
            with smtplib.SMTP("127.0.0.1", mail.port, timeout=10) as smtp:
                if failing:
                    with pytest.raises(smtplib.SMTPDataError, match="Try again later"):
                        smtp.send_message(message, "a@b.test", ["c@d.test"])
                else:
                    smtp.send_message(message, "a@b.test", ["c@d.test"])
        assert [m.message_id for m in webhook.messages()] == ["msg_1"]
        assert [m.message_id for m in mail.messages()] == ["msg_1"]
        assert (webhook.refused, mail.refused) == (1, 1)
    finally:
        webhook.stop()
        mail.stop()
