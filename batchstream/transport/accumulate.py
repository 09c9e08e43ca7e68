"""Assembles the final message from stream events, exactly as the API's non-streaming reply would hold it.

Fragments are collected in lists and joined once when their block stops: appending to a string attribute
per delta (as the SDK's `messages.stream()` does) is quadratic for long replies, and re-parsing a tool's
whole input JSON on every `input_json_delta` is worse. Otherwise the result follows the SDK's own
`accumulate_event` field for field, which the tests check event kind by event kind.
"""

from __future__ import annotations

from typing import Any

from jiter import from_json

from ..errors import StreamEventError, StreamProtocolError

# message_delta fields that are set even when null (the SDK does the same); others only replace when given.
_ALWAYS_SET = frozenset({"stop_reason", "stop_sequence", "stop_details"})


class MessageAccumulator:
    """Feed it every event of one stream; `message()` then returns the final message as a dict.

    Events before `message_start` are ignored, as the SDK ignores them (an `error` event still raises).
    """

    __slots__ = ("_blocks", "_message", "_parts", "_started", "complete", "text_started")

    def __init__(self) -> None:
        self._message: dict[str, Any] = {}
        self._blocks: list[dict[str, Any]] = []
        self._parts: list[list[str]] = []
        self._started = False
        self.complete = False
        self.text_started = False

    def feed(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "content_block_delta":
            delta = event["delta"]
            delta_type = delta["type"]
            try:
                parts = self._parts[event["index"]]
            except IndexError:
                if not self._started:
                    return
                raise StreamProtocolError(f"delta for unknown content block {event['index']}") from None
            if delta_type == "text_delta":
                parts.append(delta["text"])
                self.text_started = True
            elif delta_type == "thinking_delta":
                parts.append(delta["thinking"])
            elif delta_type == "input_json_delta":
                parts.append(delta["partial_json"])
            elif delta_type == "signature_delta":
                # The whole signature comes in one delta and replaces the start's "" (as in the SDK).
                self._blocks[event["index"]]["signature"] = delta["signature"]
            elif delta_type == "citations_delta":
                # A new list each time (blocks hold few citations): content_block_start's own list, or null,
                # stays as the caller gave it.
                block = self._blocks[event["index"]]
                block["citations"] = [*(block.get("citations") or ()), delta["citation"]]
            elif delta_type == "compaction_delta":
                # Both fields whole in one delta, replacing the start's nulls (as in the SDK's beta helper):
                # a caller must send them back in the next request.
                block = self._blocks[event["index"]]
                if block.get("type") == "compaction":
                    block["content"] = delta.get("content")
                    block["encrypted_content"] = delta.get("encrypted_content")
        elif kind == "content_block_start":
            if self._started:
                block = dict(event["content_block"])
                self._blocks.append(block)
                self._parts.append([])
                if block.get("type") == "fallback":
                    # A server-side fallback: the model it fell back to served the reply, and the
                    # non-streaming reply names that one (the SDK's beta helper relabels the same way).
                    target = block.get("to")
                    if isinstance(target, dict) and target.get("model"):
                        self._message["model"] = target["model"]
        elif kind == "content_block_stop":
            if self._started:
                index = event["index"]
                if not 0 <= index < len(self._blocks):
                    raise StreamProtocolError(f"stop for unknown content block {index}")
                self._finish_block(index)
        elif kind == "message_start":
            if not self._started:  # a second one changes nothing, as in the SDK
                self._started = True
                self._message = dict(event["message"])
                self._message["usage"] = dict(self._message.get("usage") or {})
        elif kind == "message_delta":
            if self._started:
                self._apply_message_delta(event)
        elif kind == "message_stop":
            self.complete = self._started
        elif kind == "error":
            error = event.get("error") or {}
            raise StreamEventError(str(error.get("type", "error")), str(error.get("message", "")))
        # ping and event types this version does not know carry nothing for the final message.

    def _finish_block(self, index: int, cut: bool = False) -> None:
        block, parts = self._blocks[index], self._parts[index]
        kind = block.get("type")
        if kind == "text":
            block["text"] = (block.get("text") or "") + "".join(parts)
        elif kind == "thinking":
            block["thinking"] = (block.get("thinking") or "") + "".join(parts)
        elif parts:  # tool_use, server_tool_use, mcp_tool_use: the input arrives as JSON fragments
            raw = "".join(parts)
            if raw.strip():  # only "" fragments: the input stays as content_block_start gave it
                block["input"] = _parse_input(raw, index, cut)
        self._parts[index] = []

    def _apply_message_delta(self, event: dict[str, Any]) -> None:
        message = self._message
        for key, value in (event.get("delta") or {}).items():
            if value is not None or key in _ALWAYS_SET:  # a null container must not erase an earlier one
                message[key] = value
        # message_delta usage is cumulative: later values replace earlier ones; fields it omits keep the
        # values message_start reported.
        usage = message.setdefault("usage", {})
        for key, value in (event.get("usage") or {}).items():
            if value is not None:
                usage[key] = value

    def message(self) -> dict[str, Any]:
        for index, parts in enumerate(self._parts):
            if parts:  # a block with no content_block_stop: cut by max_tokens, or the stream was cut
                self._finish_block(index, cut=True)
        message = dict(self._message)
        message["content"] = self._blocks
        return message


def _parse_input(raw: str, index: int, cut: bool) -> Any:
    """jiter, as the SDK uses: integers past 64 bits stay exact, where orjson would turn them into floats.

    A block that never stopped keeps its input parsed as far as it goes, as the SDK does (`partial_mode=True`:
    an unfinished string is left out); a stopped block's input must be whole JSON.
    """
    try:
        return from_json(raw.encode(), partial_mode=cut)
    except ValueError as exc:
        raise StreamProtocolError(f"content block {index} input is not valid JSON: {exc}") from None
