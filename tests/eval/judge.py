"""A local stand-in for the OpenAI chat endpoint that TempCompass's built-in task asks when its rules cannot match
an answer (lmms-eval 0.7.3 ``tasks/tempcompass/utils.py`` ``get_eval_result``: ``requests.post(OPENAI_API_URL)``).

Test scaffolding: no judge is reachable offline, so the test points ``OPENAI_API_URL`` here. It records every
request body and answers ``Incorrect``; what it checks is that the built-in's own fallback ran with the built-in's
own judge prompt (and that the run does not spend 10 retries a question), not any judging.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LocalJudge:
    """``with LocalJudge() as judge:`` -> ``judge.url`` to give as ``OPENAI_API_URL``; ``judge.requests`` after."""

    def __init__(self, verdict: str = "Incorrect"):
        self.verdict, self.requests = verdict, []
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server's name for a POST handler
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                judge.requests.append(json.loads(body or b"{}"))
                reply = json.dumps({"choices": [{"message": {"content": judge.verdict}}],
                                    "usage": {"total_tokens": 0}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/chat/completions"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
