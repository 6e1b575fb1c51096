"""Contract tests of the fake Messages API, and runs of the real Claude Code CLI against it."""

from __future__ import annotations

import json
import pathlib
import queue
import subprocess
import sys
import threading
import time

import httpx
import pytest

from jupyter_cloudws.testing.fake_anthropic import (
    FakeAnthropic,
    latest_human_text,
    text,
    tool_use,
    turn,
)

TOOLS = [{"name": "Bash", "description": "Run a command",
          "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]


def body(messages, *, tools=TOOLS, stream=False, **extra):
    b = {"model": "claude-test", "max_tokens": 1024, "messages": messages, **extra}
    if tools is not None:
        b["tools"] = tools
    if stream:
        b["stream"] = True
    return b


def user(content):
    return {"role": "user", "content": content}


def post(fake, b, path="/v1/messages?beta=true"):
    return httpx.post(fake.url + path, json=b, headers={"x-api-key": "sk-test"}, timeout=10)


def sse(fake, b):
    """POST a streaming request; returns [(event, data, arrival_time)]."""
    events, name = [], None
    with httpx.stream("POST", fake.url + "/v1/messages", json=b, timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                assert data["type"] == name
                events.append((name, data, time.monotonic()))
    return events


def assemble(events):
    """Rebuild the message from SSE events the way a client SDK does."""
    msg = None
    for name, data, _ in events:
        if name == "message_start":
            msg = data["message"]
        elif name == "content_block_start":
            assert data["index"] == len(msg["content"])
            msg["content"].append(dict(data["content_block"], _json=""))
        elif name == "content_block_delta":
            block, delta = msg["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                assert delta["type"] == "input_json_delta"
                block["_json"] += delta["partial_json"]
        elif name == "content_block_stop":
            block = msg["content"][data["index"]]
            if block["type"] == "tool_use":
                block["input"] = json.loads(block["_json"])
        elif name == "message_delta":
            msg.update(data["delta"])
            msg["usage"].update(data["usage"])
    for block in msg["content"]:
        block.pop("_json")
    return msg


# ------------------------------------------------------------------ contract of the fake


def test_streaming_sse_contract(fake_anthropic):
    fake_anthropic.on("make a file",
                      [text("I'll create **made.txt** now, then report."),
                       tool_use("Bash", {"command": "echo hi > made.txt"})])
    events = sse(fake_anthropic, body([user("please make a file")], stream=True))
    names = [e[0] for e in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 2
    text_deltas = [d for n, d, _ in events if n == "content_block_delta"
                   and d["delta"]["type"] == "text_delta"]
    assert len(text_deltas) > 3  # token streaming, not one blob
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["model"] == "claude-test"
    assert start["role"] == "assistant" and start["content"] == []
    assert start["usage"]["input_tokens"] > 0

    msg = assemble(events)
    assert msg["stop_reason"] == "tool_use"
    assert msg["content"][0] == {"type": "text", "text": "I'll create **made.txt** now, then report."}
    call = msg["content"][1]
    assert call["type"] == "tool_use" and call["id"].startswith("toolu_")
    assert call["name"] == "Bash" and call["input"] == {"command": "echo hi > made.txt"}
    assert msg["usage"]["output_tokens"] > 0
    assert fake_anthropic.errors == []
    rec = fake_anthropic.requests[-1]
    assert rec["path"] == "/v1/messages" and rec["body"]["stream"] is True


def test_non_streaming_json(fake_anthropic):
    fake_anthropic.on("hello", text("Hi **there**."))
    r = post(fake_anthropic, body([user("hello")]))
    assert r.status_code == 200
    m = r.json()
    assert m["type"] == "message" and m["role"] == "assistant" and m["id"].startswith("msg_")
    assert m["model"] == "claude-test"
    assert m["content"] == [{"type": "text", "text": "Hi **there**."}]
    assert m["stop_reason"] == "end_turn" and m["stop_sequence"] is None
    assert set(m["usage"]) >= {"input_tokens", "output_tokens"}


@pytest.mark.parametrize("bad, fragment", [
    ({"max_tokens": 10, "messages": [user("x")]}, "model"),
    ({"model": "m", "messages": [user("x")]}, "max_tokens"),
    ({"model": "m", "max_tokens": 10, "messages": "hi"}, "messages"),
    ({"model": "m", "max_tokens": 10, "messages": [{"role": "bot", "content": "x"}]}, "role"),
    ({"model": "m", "max_tokens": 10, "messages": [user([{"type": "text", "text": ""}])]},
     "non-empty"),
    ({"model": "m", "max_tokens": 10, "messages": [
        user("x"),
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                           "name": "Bash", "input": {}}]},
        user("no result")]}, "tool_result"),
    ({"model": "m", "max_tokens": 10, "messages": [
        user([{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}])]},
     "tool_use_id"),
])
def test_bad_request_is_400_and_recorded(fake_anthropic, bad, fragment):
    r = post(fake_anthropic, bad)
    assert r.status_code == 400
    err = r.json()
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert fragment in err["error"]["message"]
    assert len(fake_anthropic.errors) == 1
    assert fake_anthropic.errors[0]["status"] == 400 and fake_anthropic.errors[0]["body"] == bad


def test_invalid_json_is_400(fake_anthropic):
    r = httpx.post(fake_anthropic.url + "/v1/messages", content=b"{nope",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert fake_anthropic.errors


def test_root_count_tokens_and_unknown_paths(fake_anthropic):
    assert httpx.head(fake_anthropic.url + "/").status_code == 200
    assert httpx.get(fake_anthropic.url + "/").status_code == 200
    r = post(fake_anthropic, {"model": "m", "messages": [user("count me please")]},
             "/v1/messages/count_tokens?beta=true")
    assert r.status_code == 200 and r.json()["input_tokens"] > 0
    for method, path in [("GET", "/v1/models"), ("POST", "/v1/complete"), ("DELETE", "/")]:
        r = httpx.request(method, fake_anthropic.url + path, json={})
        assert r.status_code == 404
        assert r.json()["type"] == "error"
        assert r.json()["error"]["type"] == "not_found_error"
    assert fake_anthropic.errors == []


def test_turns_follow_the_conversation_not_request_order(fake_anthropic):
    fake_anthropic.on("make a file",
                      [text("On it."), tool_use("Bash", {"command": "touch f"}, id="toolu_A")],
                      text("All done."))
    first = [user([{"type": "text", "text": "<system-reminder>\nctx\n</system-reminder>"},
                   {"type": "text", "text": "please make a file"}])]
    second = first + [
        {"role": "assistant", "content": [
            {"type": "text", "text": "On it."},
            {"type": "tool_use", "id": "toolu_A", "name": "Bash", "input": {"command": "touch f"}}]},
        {"role": "system", "content": "mid-conversation system message"},
        user([{"type": "tool_result", "tool_use_id": "toolu_A", "content": "ok"},
              {"type": "text", "text": "<system-reminder>x</system-reminder>"}]),
    ]
    # Second turn asked first, then first turn, then a retry of the second turn.
    assert post(fake_anthropic, body(second)).json()["content"] == [
        {"type": "text", "text": "All done."}]
    c = post(fake_anthropic, body(first)).json()["content"]
    assert [b["type"] for b in c] == ["text", "tool_use"] and c[1]["id"] == "toolu_A"
    assert post(fake_anthropic, body(second)).json()["content"][0]["text"] == "All done."
    # Past the end of the script: the last (text-only) turn again.
    third = second + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_C", "name": "Bash",
                                           "input": {"command": "ls"}}]},
        user([{"type": "tool_result", "tool_use_id": "toolu_C", "content": "f"}]),
    ]
    assert post(fake_anthropic, body(third)).json()["content"][0]["text"] == "All done."
    # A new human message starts the script over.
    again = second + [{"role": "assistant", "content": "All done."}, user("make a file again")]
    assert post(fake_anthropic, body(again)).json()["content"][0]["text"] == "On it."
    # A new human message restarts the script; unmatched text gets the default.
    assert post(fake_anthropic, body([user("something else")])).json()["content"][0]["text"] \
        == fake_anthropic.default_text
    assert fake_anthropic.errors == []


def test_script_ending_in_tool_use_then_done(fake_anthropic):
    fake_anthropic.on("run", tool_use("Bash", {"command": "true"}, id="toolu_B"))
    convo = [user("run it"),
             {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_B",
                                                "name": "Bash", "input": {"command": "true"}}]},
             user([{"type": "tool_result", "tool_use_id": "toolu_B", "content": ""}])]
    assert post(fake_anthropic, body(convo)).json()["content"] == [{"type": "text", "text": "Done."}]


def test_side_requests_never_get_tool_use(fake_anthropic):
    fake_anthropic.on("make a file", tool_use("Bash", {"command": "touch f"}))
    side = post(fake_anthropic, body([user("please make a file")], tools=None, max_tokens=1))
    m = side.json()
    assert [b["type"] for b in m["content"]] == ["text"]
    assert m["stop_reason"] == "max_tokens"  # side_text cut to max_tokens: 1
    main = post(fake_anthropic, body([user("please make a file")])).json()
    assert main["content"][0]["type"] == "tool_use"
    assert [r["body"].get("tools") is not None for r in fake_anthropic.main_requests()] == [True]
    assert len(fake_anthropic.messages_requests()) == 2


def test_fail_next_hits_main_requests_only(fake_anthropic):
    fake_anthropic.fail_next(529)
    fake_anthropic.fail_next(500, n=1)
    assert post(fake_anthropic, body([user("x")], tools=None)).status_code == 200
    r1, r2, r3 = (post(fake_anthropic, body([user("x")])) for _ in range(3))
    assert (r1.status_code, r1.json()["error"]["type"]) == (529, "overloaded_error")
    assert (r2.status_code, r2.json()["error"]["type"]) == (500, "api_error")
    assert r3.status_code == 200
    assert fake_anthropic.errors == []  # injected failures are not contract errors


def test_delay_between_chunks(fake_anthropic):
    fake_anthropic.on("slow", turn(text("one two three four five"), delay_s=0.1))
    events = sse(fake_anthropic, body([user("slow")], stream=True))
    times = [t for n, d, t in events if n == "content_block_delta"]
    assert len(times) == 5
    assert times[-1] - times[0] >= 0.3


async def test_serves_while_the_event_loop_is_busy(fake_anthropic):
    fake_anthropic.on("hello", "Hi.")
    async with httpx.AsyncClient() as client:
        r = await client.post(fake_anthropic.url + "/v1/messages", json=body([user("hello")]))
    assert r.json()["content"][0]["text"] == "Hi."
    # and a blocking call from inside the loop still gets answered (own thread)
    assert post(fake_anthropic, body([user("hello")])).status_code == 200


def test_latest_human_text_skips_wrappers_and_tool_results():
    msgs = [
        user("first"),
        {"role": "assistant", "content": "a"},
        user([{"type": "text", "text": "<local-command-caveat>c</local-command-caveat>"},
              {"type": "text", "text": "<command-name>/model</command-name>"},
              {"type": "text", "text": "second <system-reminder>r</system-reminder>"}]),
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "B", "input": {}}]},
        user([{"type": "tool_result", "tool_use_id": "t", "content": "x"}]),
        {"role": "assistant", "content": "b"},
    ]
    assert latest_human_text(msgs) == ("second", 2)


def test_stop_closes_keepalive_connections():
    fake = FakeAnthropic().start()
    url = fake.url
    with httpx.Client() as client:
        assert client.get(url + "/").status_code == 200
        fake.stop()
        with pytest.raises(httpx.TransportError):
            client.get(url + "/")


# --------------------------------------------------------------------- the real CLI


def test_real_cli_print_mode_runs_a_tool(fake_anthropic, claude_cli_path, claude_env, tmp_path):
    fake_anthropic.on("make a file",
                      [text("I'll create it."), tool_use("Bash", {"command": "echo hi > made.txt"})],
                      text("Created **made.txt**."))
    work = tmp_path / "work"
    work.mkdir()
    p = subprocess.run(
        [str(claude_cli_path), "-p", "please make a file", "--output-format", "stream-json",
         "--verbose", "--permission-mode", "bypassPermissions"],
        env=claude_env, cwd=work, capture_output=True, text=True, timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert (work / "made.txt").read_text() == "hi\n"
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    kinds = []
    for o in lines:
        if o["type"] in ("assistant", "user"):
            kinds += [f'{o["type"]}:{b["type"]}' for b in o["message"]["content"]]
        else:
            kinds.append(f'{o["type"]}:{o.get("subtype")}')
    assert kinds[0] == "system:init"
    for k in ("assistant:tool_use", "user:tool_result", "assistant:text"):
        assert k in kinds
    assert kinds.index("assistant:tool_use") < kinds.index("user:tool_result") \
        < len(kinds) - 1 - kinds[::-1].index("assistant:text")
    result = lines[-1]
    assert result["type"] == "result" and result["subtype"] == "success"
    assert result["is_error"] is False and result["result"] == "Created **made.txt**."
    call = next(b for o in lines if o["type"] == "assistant" for b in o["message"]["content"]
                if b["type"] == "tool_use")
    assert call["name"] == "Bash" and call["input"]["command"] == "echo hi > made.txt"
    assert fake_anthropic.errors == [], fake_anthropic.errors
    assert len(fake_anthropic.main_requests()) == 2


class Agent:
    """A long-lived ``--input-format stream-json`` CLI process."""

    def __init__(self, cli, env, cwd):
        self.stderr = open(cwd / "claude-stderr.txt", "w")
        self.p = subprocess.Popen(
            [str(cli), "--input-format", "stream-json", "--output-format", "stream-json",
             "--verbose", "--include-partial-messages", "--permission-mode", "bypassPermissions",
             "--model", "claude-test-model"],
            env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True, bufsize=1)
        self.q: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self):
        for line in self.p.stdout:
            self.q.put(json.loads(line))
        self.q.put(None)

    def send(self, obj):
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.reader.join(5)
        for f in (self.p.stdin, self.p.stdout, self.stderr):
            try:
                f.close()
            except OSError:
                pass

    def until(self, pred, timeout=30):
        out, end = [], time.monotonic() + timeout
        while True:
            o = self.q.get(timeout=max(0.01, end - time.monotonic()))
            assert o is not None, "CLI exited"
            out.append(o)
            if pred(o):
                return out


def is_result(o):
    return o["type"] == "result"


def processes_running(marker: str) -> list[str]:
    found = []
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(marker.encode() in a for a in args):
            found.append(b" ".join(args).decode(errors="replace"))
    return found


def test_real_cli_long_lived_interrupt_and_history(fake_anthropic, claude_cli_path,
                                                   claude_env, tmp_path):
    # The CLI blocks `sleep N` in Bash, so the long command is a Python sleep.
    marker = "time.sleep(60.0417)"
    long_cmd = f"{sys.executable} -c 'import time; {marker}'"
    fake_anthropic.on("wait please", [text("Waiting."), tool_use("Bash", {"command": long_cmd})])
    fake_anthropic.on("still there", text("Yes, still here."))
    agent = Agent(claude_cli_path, claude_env, tmp_path)
    try:
        agent.send({"type": "user", "message": {"role": "user", "content": "wait please"}})
        agent.until(lambda o: o["type"] == "assistant"
                    and o["message"]["content"][0]["type"] == "tool_use")
        deadline = time.monotonic() + 10
        while not processes_running(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_running(marker), "the Bash command did not start"
        t0 = time.monotonic()
        agent.send({"type": "control_request", "request_id": "r1",
                    "request": {"subtype": "interrupt"}})
        out = agent.until(is_result)
        assert time.monotonic() - t0 < 10
        ack = next(o for o in out if o["type"] == "control_response")
        assert ack["response"]["subtype"] == "success" and ack["response"]["request_id"] == "r1"
        assert out[-1]["subtype"] == "error_during_execution" and out[-1]["is_error"] is True
        deadline = time.monotonic() + 5
        while processes_running(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not processes_running(marker), "interrupt left the Bash child running"

        agent.send({"type": "user", "message": {"role": "user", "content": "still there?"}})
        out = agent.until(is_result)
        assert out[-1]["subtype"] == "success" and out[-1]["result"] == "Yes, still here."
        assert any(o["type"] == "stream_event" for o in out)
        agent.p.stdin.close()
        assert agent.p.wait(20) == 0
    finally:
        agent.close()
    last = fake_anthropic.main_requests()[-1]["body"]["messages"]
    roles = [m["role"] for m in last if m["role"] != "system"]
    assert roles == ["user", "assistant", "user"]  # the interrupted turn is in the history
    assert fake_anthropic.errors == []
