"""One chat turn, run whole: identity -> stored profile -> RLPA prompt -> backend -> reply ->
persist, yielded as events (server/chat/events.py) that the wire layer only renders.

The visible reply streams as the model writes it; the profile block is held back. The block's
change is written as soon as the block is complete, while the reply is still being generated,
and the turn's end (TurnDone) waits for that commit, unless write-behind lets the reply go first
(server/chat/writes.py). A turn that fails at the backend before its block is complete writes
nothing; once the block is complete its change is stored whatever happens to the rest of the
reply, as when the client disconnects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from server import metrics, observability, rlpa
from server.auth.service import Principal, validate_user
from server.backends.base import STOP, BackendStream, ChatBackend, Finish, SamplingParams
from server.chat import client_tasks, memory_commands, traces
from server.chat.events import (
    ChoiceDone,
    ChoiceStarted,
    ProfileView,
    ReplyDelta,
    ToolCallDelta,
    TurnDone,
    TurnEvent,
)
from server.chat.reply import Read, ReplyReader
from server.chat.tools import CallReader
from server.chat.writes import ProfileWrites, Stored, WriteTarget
from server.db import utcnow
from server.errors import NotFoundError
from server.profiles.turns import TurnProfiles

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from server.usage.service import UsageMeter

_MODELS_TTL_S = 30.0
# An opted-out user's turn is plain chat: a developer message goes to the model as a system one.
_PLAIN_ROLES = {"developer": "system"}


@dataclass(frozen=True, kw_only=True)
class TurnRequest:
    """What the client asks of one turn, in the gateway's terms: the wire layer builds it."""

    model: str
    # {"role", "content"}, in the client's order; an assistant's calls under "tool_calls" (as
    # rlpa.render_tool_calls writes them), a tool result as role "tool".
    history: list[dict[str, str]]
    params: SamplingParams  # max_tokens and stop bound the visible reply (server/chat/reply.py)
    n: int = 1
    tools: rlpa.ToolUse | None = None  # None: no tool may be called (none offered, or "none")
    reply_format: rlpa.JsonReply | None = None  # the reply must be JSON (response_format)
    user: str | None = None
    remember: bool = True  # the client lets the turn read and write the stored profile
    return_profile: bool = False
    # When the gateway received the request: an erasure committed after it still wins.
    arrived_at: datetime = field(default_factory=utcnow)
    stream: bool = False  # the client reads the reply as it is written (noted on traces only)


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """The turn as prepared: what the model reads, the reply's bounds, whose profile it writes."""

    model: str
    messages: list[dict[str, str]]
    params: SamplingParams  # as the backend gets them: bounds of the whole output
    stop: list[str]  # the client's, for the reply
    max_tokens: int  # the client's (or the default), for the reply
    n: int
    return_profile: bool
    target: WriteTarget | None  # None: the turn stores nothing (no user, temporary, opted out)
    tools: rlpa.ToolUse | None
    # The turn answers a new user message: its block is stored. One that answers tool results
    # (the client's tool loop) reads the profile but learns nothing (docs/tools.md).
    learns: bool
    user: str | None  # the end user the turn is for, whether or not it stores anything
    # A memory command in the user's message (server/chat/memory_commands.py), and the user's
    # message before it (what "forget that" is about).
    command: memory_commands.Command | None = None
    previous: str = ""


@dataclass(frozen=True)
class _Block:
    """Choice 0's profile block is complete: the turn stores it (never leaves `turn`)."""

    traits: list[str]


def _read_events(
    read: Read, calls: CallReader | None, index: int
) -> Iterator[_Block | ReplyDelta | ToolCallDelta]:
    """What one read of a choice's output says: its completed block, reply text, tool calls."""
    if read.profile is not None:
        yield _Block(read.profile)
    if read.text:
        yield ReplyDelta(index=index, text=read.text)
    yield from calls.read(read.calls) if calls else ()


class ChatService:
    def __init__(
        self,
        backend: ChatBackend,
        profiles: TurnProfiles,
        *,
        contract_version: int = 1,
        write_behind: bool = False,
        write_wait_s: float = 6.0,
        default_max_tokens: int = 256,
        profile_max_tokens: int = 256,
        memory_off_suffix: str = "",
        usage: UsageMeter | None = None,
        client_tasks: bool = False,
        memory_commands: bool = False,
        trait_words: str = "any",
        tracer: Tracer | None = None,
    ) -> None:
        self.backend = backend
        self.tracer = tracer  # None: turns are not traced (server/chat/traces.py)
        # "said": a stored trait holds only words the user said (server/rlpa/grammar.py).
        self.trait_words = trait_words
        # Recognise a client's own tasks (Open WebUI's titles, tags, follow-ups) whatever model
        # they name: memory off, the reply held to the task's JSON (server/chat/client_tasks.py).
        self.client_tasks = client_tasks
        # Do what the user tells the memory ("what do you remember about me?", "forget that")
        # rather than leave it to the model (server/chat/memory_commands.py).
        self.memory_commands = memory_commands
        # Each served model is also listed under its name plus this suffix: the same model, with
        # memory off (no profile read or written, no RLPA prompt). Empty: no such ids.
        self.memory_off_suffix = memory_off_suffix
        self.usage = usage  # counts each choice's tokens as it ends (server/usage)
        self.profiles = profiles
        self.contract_version = contract_version
        self.default_max_tokens = default_max_tokens
        self.profile_max_tokens = profile_max_tokens
        self.writes = ProfileWrites(
            profiles,
            contract_version=contract_version,
            write_behind=write_behind,
            write_wait_s=write_wait_s,
        )
        self._models: tuple[float, list[str]] = (0.0, [])

    async def models(self) -> list[str]:
        fetched_at, names = self._models
        if time.monotonic() - fetched_at > _MODELS_TTL_S or not names:
            names = await self.backend.list_models()
            self._models = (time.monotonic(), names)
        return names

    async def listed_models(self) -> list[str]:
        """The model ids clients may ask for: the served ones, then their memory-off ids."""
        names = await self.models()
        suffix = self.memory_off_suffix
        if not suffix:
            return names
        return [*names, *(name + suffix for name in names if name + suffix not in names)]

    async def resolve_model(self, model: str) -> tuple[str, bool]:
        """The served model an id asks for, and whether it is a memory-off id."""
        names = await self.models()
        if model in names:
            return model, False
        suffix = self.memory_off_suffix
        if suffix and model.endswith(suffix) and model[: -len(suffix)] in names:
            return model[: -len(suffix)], True
        raise NotFoundError(
            f"The model '{model}' does not exist.", param="model", code="model_not_found"
        )

    def turn(
        self, request: TurnRequest, principal: Principal, request_id: str
    ) -> AsyncIterator[TurnEvent]:
        """Run the turn: every choice, then the profile write, as events (server/chat/events.py).

        Errors before ChoiceStarted(0) (unknown model, bad user, backend down or refusing) are
        raised before anything was generated."""
        if self.tracer is None:
            return self._turn(request, principal, request_id, None)
        return traces.traced_turn(
            self.tracer,
            request,
            request_id,
            lambda trace: self._turn(request, principal, request_id, trace),
        )

    async def _turn(
        self,
        request: TurnRequest,
        principal: Principal,
        request_id: str,
        trace: traces.TurnTrace | None,
    ) -> AsyncGenerator[TurnEvent, None]:
        plan = await self._plan(request, principal, request_id, trace)
        if plan.command is not None and plan.command.only:
            async for answered in self._command_turn(plan, principal, trace):
                yield answered
            return
        write: asyncio.Future[Stored] | None = None
        block: list[str] | None = None
        prompt_tokens = completion_tokens = 0
        try:
            for index in range(plan.n):
                async for event in self._choice(plan, index, trace):
                    if isinstance(event, _Block):
                        if index == 0:  # the turn's profile is choice 0's
                            block = event.traits
                            if plan.target is not None and plan.learns:
                                write = self.writes.start(
                                    plan.target, block, adjust=self._commanded(plan)
                                )
                                traces.profile_write(trace, write)
                        continue
                    if isinstance(event, ChoiceDone):
                        prompt_tokens = event.prompt_tokens
                        completion_tokens += event.completion_tokens
                        self._count_usage(plan, principal, event)
                    yield event
        except Exception:
            # The backend failed after the block: its write is under way. The client hears of the
            # failure once that write is done, so that its next turn sees the change. (A client
            # that left, CancelledError or GeneratorExit, leaves the write to finish alone.)
            if write is not None:
                await asyncio.wait([write])
            raise
        stored = await self.writes.settle(plan.target, write, return_profile=plan.return_profile)
        yield TurnDone(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            profile=self._view(plan, block, stored),
            memory_changed=_changed(plan.target, write, stored),
        )

    async def _plan(
        self,
        request: TurnRequest,
        principal: Principal,
        request_id: str,
        trace: traces.TurnTrace | None,
    ) -> _Plan:
        model, memory_off = await self.resolve_model(request.model)
        task = client_tasks.recognise(request.history) if self.client_tasks else None
        if task is not None:
            memory_off = True  # served as its memory-off id serves it
            if request.reply_format is None and request.tools is None:
                request = replace(request, reply_format=task.reply)
        observability.note_model(request.model)  # checked against the served models: bounded
        user = principal.bound_user or request.user or None  # an empty `user` names no one
        stored = None
        if user is not None:
            validate_user(user)
            observability.note_user(user)
            traces.note_user(trace, self.profiles.pseudonyms, user)
            await self.writes.wait_for_earlier(principal.tenant_id, user)
            if request.remember and not memory_off:
                # None: erased after the request arrived. Answered, as a temporary chat.
                opened = self.profiles.open(principal.tenant_id, user, request.arrived_at)
                stored = await traces.profile_read(trace, opened)
        # A memory-off model id (Open WebUI's tasks) is served as for a user who opted out.
        opted_out = memory_off or (stored is not None and not stored.personalization)
        # Tools and JSON replies are read through the RLPA format, so a turn that asks for them
        # is written in it even for a user who opted out: with an empty block, nothing read.
        formatted = not opted_out or _needs_format(request)
        learns = not opted_out and not _answers_tools(request.history)
        if opted_out:
            stored = None
        if formatted:
            messages = rlpa.build_messages(
                request.history,
                stored.traits if stored else None,
                self.contract_version,
                tools=request.tools,
                reply=request.reply_format,
            )
        else:
            # The user opted out: ordinary chat on the client's messages, nothing read or kept.
            messages = [
                {"role": _PLAIN_ROLES.get(m["role"], m["role"]), "content": m["content"]}
                for m in request.history
            ]
        grammar = rlpa.output_grammar(
            tools=request.tools,
            reply=request.reply_format,
            learn=learns,
            # Traits in the user's own words: what they said in this conversation.
            said=[m["content"] for m in request.history if m["role"] == "user"]
            if self.trait_words == "said"
            else None,
            stored=stored.traits if stored else (),
        )
        max_tokens = request.params.max_tokens or self.default_max_tokens
        command, previous = None, ""
        if (
            self.memory_commands
            and stored is not None
            and learns
            and request.tools is None
            and request.reply_format is None
            and request.history
            and request.history[-1]["role"] == "user"
        ):
            said = [m["content"] for m in request.history if m["role"] == "user"]
            command = memory_commands.recognise(said[-1])
            previous = said[-2] if len(said) > 1 else ""
        return _Plan(
            model=model,
            messages=messages,
            # The whole output's bounds: the block's and the reply's. The client's stop strings
            # are the reader's (server/chat/reply.py), never the backend's.
            params=replace(
                request.params,
                max_tokens=self.profile_max_tokens + max_tokens,
                stop=[],
                rlpa_format=formatted,
                grammar=grammar if formatted and grammar != rlpa.FORMAT_GBNF else None,
            ),
            stop=list(request.params.stop),
            max_tokens=max_tokens,
            n=request.n,
            return_profile=request.return_profile,
            target=None
            if user is None or stored is None
            else WriteTarget(
                tenant_id=principal.tenant_id,
                user=user,
                read=stored,
                request_id=request_id,
                model=model,
                arrived_at=request.arrived_at,
            ),
            tools=request.tools,
            learns=learns,
            user=user,
            command=command,
            previous=previous,
        )

    def _commanded(self, plan: _Plan) -> Callable[[rlpa.ProfileChange], rlpa.ProfileChange] | None:
        """How the turn's memory command changes the model's change to the profile."""
        command, target = plan.command, plan.target
        if command is None or target is None:
            return None
        return lambda change: memory_commands.change(
            command, target.read.traits, change, plan.previous
        )

    async def _command_turn(
        self, plan: _Plan, principal: Principal, trace: traces.TurnTrace | None
    ) -> AsyncGenerator[TurnEvent, None]:
        """A message that is only a memory command, answered by the gateway: no model runs.
        Its change is the user's own (source "user")."""
        command, target = plan.command, plan.target
        assert command is not None and target is not None
        read = target.read.traits
        change = memory_commands.change(command, read, rlpa.ProfileChange(), plan.previous)
        write = self.writes.start_change(target, change, source="user")
        traces.profile_write(trace, write)
        text = memory_commands.reply(command, read, change.remove)
        for index in range(plan.n):
            yield ChoiceStarted(index=index)
            yield ReplyDelta(index=index, text=text)
            done = ChoiceDone(
                index=index, finish_reason="stop", prompt_tokens=0, completion_tokens=0
            )
            self._count_usage(plan, principal, done)
            yield done
        stored = await self.writes.settle(target, write, return_profile=plan.return_profile)
        yield TurnDone(
            prompt_tokens=0,
            completion_tokens=0,
            profile=self._view(plan, None, stored),
            memory_changed=_changed(target, write, stored),
        )

    async def _choice(
        self, plan: _Plan, index: int, trace: traces.TurnTrace | None
    ) -> AsyncIterator[TurnEvent | _Block]:
        """One choice: started, its reply, its block (as _Block), done."""
        reader = ReplyReader(
            stop=plan.stop,
            max_tokens=plan.max_tokens,
            block_max_tokens=self.profile_max_tokens,
            tools=plan.tools is not None,
        )
        calls = CallReader(plan.tools, index) if plan.tools is not None else None
        stream = traces.model_call(
            trace,
            self.backend.stream(plan.model, plan.messages, self._choice_params(plan, index)),
            model=plan.model,
            choice=index,
        )
        try:
            event = await anext(stream)  # a backend that is down or refuses raises here
            yield ChoiceStarted(index=index)
            while not isinstance(event, Finish):
                for item in _read_events(reader.feed(event), calls, index):
                    yield item
                event = await (_stopped(stream) if reader.cut else anext(stream))
            for item in _read_events(reader.finish(event), calls, index):
                yield item
        finally:
            await stream.aclose()
        if not reader.format_ok:
            metrics.FORMAT_FAILURES.inc()
        completion_tokens = reader.completion_tokens(event)
        metrics.PROMPT_TOKENS.labels(plan.model).inc(event.prompt_tokens)
        metrics.COMPLETION_TOKENS.labels(plan.model).inc(completion_tokens)
        finish_reason = reader.finish_reason(event)
        if calls is not None and calls.count and finish_reason == "stop":
            finish_reason = "tool_calls"
        yield ChoiceDone(
            index=index,
            finish_reason=finish_reason,
            prompt_tokens=event.prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def _count_usage(self, plan: _Plan, principal: Principal, done: ChoiceDone) -> None:
        """A choice's usage, counted as soon as it is done, so that a turn that fails or loses
        its client later still counts what it generated. The prompt is counted once, with the
        first choice, as the turn's `usage` counts it."""
        if self.usage is None:
            return
        first = done.index == 0
        self.usage.record(
            principal,
            user=plan.user,
            model=plan.model,
            requests=int(first),
            prompt_tokens=done.prompt_tokens if first else 0,
            completion_tokens=done.completion_tokens,
        )

    def _choice_params(self, plan: _Plan, index: int) -> SamplingParams:
        if index == 0 or plan.params.seed is None:
            return plan.params
        # Distinct but reproducible choices when the client fixed a seed.
        return replace(plan.params, seed=plan.params.seed + index)

    def _view(
        self, plan: _Plan, block: list[str] | None, stored: Stored | None
    ) -> ProfileView | None:
        if not plan.return_profile:
            return None
        if plan.target is None:  # a temporary chat: what the model inferred, stored nowhere
            traits = rlpa.profile_change(self.contract_version, [], block or []).apply([])
            return ProfileView(traits=traits, version=0)
        # A turn that reports its profile waits for its write (no write-behind).
        assert stored is not None
        if stored.state is None:  # erased during the turn: nothing of the profile goes back
            return ProfileView(traits=[], version=0)
        return ProfileView(traits=stored.state.traits, version=stored.state.version)

    async def aclose(self) -> None:
        await self.writes.aclose()


def _needs_format(request: TurnRequest) -> bool:
    """The turn offers tools, asks for JSON, or shows earlier calls or their results."""
    return (
        request.tools is not None
        or request.reply_format is not None
        or any(m["role"] == "tool" or m.get("tool_calls") for m in request.history)
    )


def _answers_tools(history: list[dict[str, str]]) -> bool:
    """The conversation ends with tool results: the turn answers the user message that an
    earlier turn of the tool loop already learnt from."""
    said = [m["role"] for m in history if m["role"] in ("user", "assistant", "tool")]
    return bool(said) and said[-1] == "tool"


def _changed(
    target: WriteTarget | None, write: asyncio.Future[Stored] | None, stored: Stored | None
) -> bool | None:
    """Whether the turn changed the stored profile: it wrote one whose traits differ from those
    it read (a change another turn of the user's made first counts: the memory holds what this
    turn said). Write-behind (settled without `stored`): a change is on its way."""
    if target is None:
        return None
    if write is None:  # the block restated the profile, or there was none
        return False
    if stored is None:
        return True
    return stored.state is not None and stored.state.traits != target.read.traits


async def _stopped(stream: BackendStream) -> Finish:
    """Stop the generation (the reply is complete) and read on to its Finish."""
    event = await stream.asend(STOP)
    while not isinstance(event, Finish):  # a backend that ignores STOP runs on
        event = await anext(stream)
    return event
