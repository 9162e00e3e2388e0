"""The api-server warm-up waits for an answer of any status, and names the URL that never answered."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from devstack.api_ready import PATHS, main, wait_until_answering
from tests.airflow.airflow_stack import _free_port


class _Asked(BaseHTTPRequestHandler):
    asked: list[str] = []  # noqa: RUF012 - the paths the warm-up asked for, in order

    def do_GET(self) -> None:
        _Asked.asked.append(self.path)
        self.send_response(401)  # what the Outbox page answers without a login
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = HTTPServer(("127.0.0.1", 0), _Asked)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Asked.asked.clear()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_any_status_is_an_answer_and_every_path_is_asked(server: int) -> None:
    wait_until_answering(server, seconds=10)
    assert _Asked.asked == list(PATHS)


def test_a_port_that_never_answers_is_named() -> None:
    port = _free_port()
    with pytest.raises(
        TimeoutError, match=rf"port {port} did not answer http://127.0.0.1:{port}/execution/health"
    ):
        wait_until_answering(port, seconds=1)


def test_the_command_line_refuses_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api_ready.py", "eighty"]) == 2
    assert "usage: api_ready.py PORT [SECONDS]" in capsys.readouterr().err
    assert main(["api_ready.py", str(_free_port()), "1"]) == 1
