"""Open WebUI's own tasks told apart from a person's turns (server/chat/client_tasks.py), over
the requests Open WebUI 0.12.4 was captured sending (tests/fixtures/open_webui/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server.chat import client_tasks

FIXTURES = Path(__file__).parents[2] / "fixtures" / "open_webui"
# Open WebUI 0.12.4's RAG template (open_webui/config.py, DEFAULT_RAG_TEMPLATE), shortened: it
# is put before a person's own message when the chat has files or web results.
RAG_TURN = """### Task:
Respond to the user query using the provided context, incorporating inline citations in the \
format [id] **only when the <source> tag includes an explicit id attribute**.

### Output:
Provide a clear and direct response to the user's query.

<context>
<source id="1">Trail report: the Wonderland Trail is open from July.</source>
</context>

When can I hike the Wonderland Trail?"""


def _requests(name: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _history(record: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in record["body"]["messages"]]


def _chats(name: str) -> list[dict[str, Any]]:
    return [r for r in _requests(name) if r["path"] == "/v1/chat/completions"]


def test_the_captured_tasks_are_recognised_with_their_keys_and_the_chats_are_not() -> None:
    keys = []
    for record in _chats("requests.jsonl"):
        task = client_tasks.recognise(_history(record))
        if task is None:
            continue
        keys.append(task.key)
        assert task.reply is not None and task.reply.schema == client_tasks.TASK_SCHEMAS[task.key]
    # Two title and two follow-up tasks; the 12 chats (Alice's and Bob's, with and without
    # tools and history) are people talking.
    assert sorted(keys) == ["follow_ups", "follow_ups", "title", "title"]
    assert len(_chats("requests.jsonl")) == 16


def test_every_task_open_webui_sends_is_recognised_with_the_json_it_parses() -> None:
    tasks = _chats("tasks.jsonl")
    found = {}
    for record in tasks:
        task = client_tasks.recognise(_history(record))
        assert task is not None, record["body"]["messages"][0]["content"][:80]
        found[record["task"]] = task.key
    assert found == {
        "title": "title",
        "tags": "tags",
        "follow_up": "follow_ups",
        "queries": "queries",
        "image_prompt": "prompt",
        "auto": "text",
    }


def test_a_persons_turns_are_not_tasks() -> None:
    task_prompt = _history(_chats("tasks.jsonl")[0])[0]["content"]
    assert client_tasks.recognise([{"role": "user", "content": task_prompt}]) is not None
    for history in (
        # A first turn with files, in Open WebUI's RAG template (it too begins "### Task:").
        [{"role": "user", "content": RAG_TURN}],
        # A person who writes the heading, with no chat quoted.
        [{"role": "user", "content": "### Task: plan my week\n- gym\n- groceries"}],
        # A task prompt pasted into a chat that has earlier turns.
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": task_prompt},
        ],
        # The heading not at the start.
        [{"role": "user", "content": "Look at this prompt:\n" + task_prompt}],
    ):
        assert client_tasks.recognise(history) is None


def test_a_task_under_a_workspace_models_system_prompt_is_still_a_task() -> None:
    prompt = _history(_chats("tasks.jsonl")[0])[0]["content"]
    history = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": prompt},
    ]
    assert client_tasks.recognise(history) is not None


def test_a_custom_task_template_without_a_known_key_gets_memory_off_and_a_free_reply() -> None:
    prompt = (
        "### Task:\nSummarise the chat in one sentence.\n### Chat History:\n"
        "<chat_history>\nUSER: Hi, I'm a nurse.\nASSISTANT: Hello!\n</chat_history>"
    )
    task = client_tasks.recognise([{"role": "user", "content": prompt}])
    assert task == client_tasks.ClientTask(key=None, reply=None)
    # A key the chat quotes is not the task's: only the prompt before the history is read.
    quoted = prompt.replace("USER: Hi", 'USER: { "title": "mine" } Hi')
    assert client_tasks.recognise([{"role": "user", "content": quoted}]) == task
