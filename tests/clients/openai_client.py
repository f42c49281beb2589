"""Drives an OpenAI-compatible endpoint with the official OpenAI Python SDK, in one mode, and
prints what the client saw as JSON, so the tests can compare it with what llmwatch counted.

    python openai_client.py BASE_URL MODEL MODE COUNT MAX_TOKENS

MODE is one of:
  stream_usage   streamed, with stream_options.include_usage
  stream_plain   streamed, no usage asked for (the client counts content chunks)
  whole          not streamed
  abandoned      streamed, closed by the client after its second content chunk

Prints {"requests": [{"finished": bool, "finish_reason": str|null, "prompt_tokens": int|null,
"completion_tokens": int|null, "content_chunks": int}, ...]}. No retries: every request the
client makes is one the server sees.
"""

import json
import sys

from openai import OpenAI


def content_of(delta):
    return bool(
        getattr(delta, "content", None)
        or getattr(delta, "reasoning_content", None)
        or getattr(delta, "tool_calls", None)
    )


def streamed(client, model, max_tokens, usage, abandon):
    extra = {"stream_options": {"include_usage": True}} if usage else {}
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Count from one to twenty in words."}],
        max_tokens=max_tokens,
        stream=True,
        **extra,
    )
    seen = {
        "finished": False,
        "finish_reason": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "content_chunks": 0,
    }
    for chunk in stream:
        for choice in chunk.choices:
            if content_of(choice.delta):
                seen["content_chunks"] += 1
            if choice.finish_reason:
                seen["finish_reason"] = choice.finish_reason
        if chunk.usage is not None:
            seen["prompt_tokens"] = chunk.usage.prompt_tokens
            seen["completion_tokens"] = chunk.usage.completion_tokens
        if abandon and seen["content_chunks"] >= 2:
            stream.close()
            return seen
    seen["finished"] = True
    return seen


def whole(client, model, max_tokens):
    answer = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Count from one to twenty in words."}],
        max_tokens=max_tokens,
    )
    return {
        "finished": True,
        "finish_reason": answer.choices[0].finish_reason,
        "prompt_tokens": answer.usage.prompt_tokens,
        "completion_tokens": answer.usage.completion_tokens,
        "content_chunks": 1,
    }


def main():
    base, model, mode, count, max_tokens = sys.argv[1:6]
    client = OpenAI(base_url=base.rstrip("/") + "/v1", api_key="unused", max_retries=0)
    requests = []
    for _ in range(int(count)):
        if mode == "whole":
            requests.append(whole(client, model, int(max_tokens)))
        elif mode in ("stream_usage", "stream_plain", "abandoned"):
            requests.append(
                streamed(
                    client,
                    model,
                    int(max_tokens),
                    usage=mode == "stream_usage",
                    abandon=mode == "abandoned",
                )
            )
        else:
            sys.exit(f"unknown mode {mode!r}")
    print(json.dumps({"requests": requests}))


if __name__ == "__main__":
    main()
