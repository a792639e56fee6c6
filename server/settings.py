"""All configuration, from `RLPA_*` environment variables or `.env`."""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changeme", "change-me", "change_me", "secret", "admin", "password", "test"}
MIN_PUBLIC_KEY_CHARS = 16


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RLPA_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # `json` (one object per line), `text`, or `auto`: text on a terminal, JSON otherwise.
    log_format: Literal["auto", "json", "text"] = "auto"
    # On SIGTERM: stop accepting, give streams in flight this many seconds to end, then exit.
    shutdown_grace_s: int = 25
    # An OpenTelemetry collector's OTLP/HTTP base URL (http://otel-collector:4318): a span per
    # chat turn goes there (server/tracing.py; the `otel` extra). Unset: no tracing at all.
    otlp_endpoint: str | None = None
    otlp_service_name: str = "rlpa"

    database_url: str = "sqlite+aiosqlite:///./rlpa.db"
    # The embedded SQLite default migrates at start; a server database is migrated explicitly
    # (`rlpa db upgrade`) so that N replicas never race on DDL.
    auto_migrate: bool | None = None
    redis_url: str | None = None
    redis_key_prefix: str = "rlpa:"
    # Send a turn's reply without waiting for its profile write to commit, unless the client asked
    # for the version (`return_profile`, which is always committed first). Saves the commit's
    # time on every turn (a few ms on a disk that syncs); a write that fails is logged and
    # counted, not reported to the client, and a SIGKILL loses writes still in flight (README).
    profile_write_behind: bool = False
    cache_ttl_s: int = 3600

    admin_api_key: SecretStr | None = None
    # Request headers that name the end user when the body names none (no `user`, no
    # `safety_identifier`), the first one present winning: Open WebUI's
    # `X-OpenWebUI-User-Id`. Read only when set: a header nobody configured names no one.
    user_header: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Every served model is also listed in /v1/models under its name plus this suffix
    # (`smollm2-135m-rlpa-nomemory`): the same model with memory off, that never reads or writes
    # a profile and answers without the RLPA prompt. Open WebUI's "Task Model" (titles, tags,
    # follow-ups) goes there (docs/clients.md). Empty: no such ids.
    task_model_suffix: str = "-nomemory"
    # Recognise Open WebUI's own tasks (title, tags, follow-ups...: one user message that begins
    # `### Task:` and quotes the chat in <chat_history>) whatever model they name: served as the
    # memory-off id serves them, the reply held to the JSON each task asks for
    # (server/chat/client_tasks.py).
    client_task_detection: bool = True
    # Do what a user tells the memory in chat, rather than leave it to the model: "what do you
    # remember about me?" lists the stored profile, "forget everything about me" empties it,
    # "forget that ..." removes what it names, "don't save this" keeps nothing of the message
    # (server/chat/memory_commands.py).
    memory_commands: bool = True
    # Keys the pseudonyms that stand for user ids in the audit log, cache keys and logs
    # (server/pseudonyms.py). Unset: a random key the first replica stores in the database.
    pseudonym_key: SecretStr | None = None
    max_body_bytes: int = 1_000_000
    rate_limit_per_minute: int = 0  # per API key; 0 = unlimited
    # Prompt + completion tokens per minute per API key: a key whose minute holds them gets 429
    # until the minute ends; 0 = unlimited. A key's own limits replace both (rlpa keys update).
    rate_limit_tokens_per_minute: int = Field(default=0, ge=0)
    # Seconds between writes of each replica's usage counts (requests and tokens per key, tenant,
    # end user and model, per hour) and of the keys' last use; a SIGKILL loses at most these.
    usage_flush_s: float = Field(default=5.0, gt=0)
    # Tenants whose name labels the per-tenant metrics; every other tenant is "other".
    metrics_tenants: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["default"])
    # How long a replica trusts a key it has looked up: a key revoked elsewhere stops working
    # here within this many seconds (on the replica that revoked it, at once).
    auth_cache_ttl_s: float = 5.0
    auth_cache_size: int = 10_000
    # Failed authentications allowed per client address per minute before 429s.
    auth_failures_per_minute: int = 30
    # Off loopback, /metrics and /docs (with /openapi.json) need an admin key unless made public.
    metrics_public: bool = False
    docs_public: bool = False
    # The admin page at /admin/ui: a page shell whose data comes from /admin with an admin key.
    admin_ui: bool = True

    # A database that does not answer fails requests fast (503) instead of hanging them.
    db_connect_timeout_s: float = 2.0
    db_statement_timeout_s: float = 5.0
    db_pool_timeout_s: float = 2.0
    # Connections each replica keeps open to the database, and how many more it may open under
    # load: replicas x (pool + overflow) must fit the database's max_connections, or the
    # pooler's pool in front of it (docs/deploy.md, Connection pooling).
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)
    # `transaction`: the database URL points at a pooler that hands each transaction to any
    # server connection (PgBouncer's transaction or session mode, managed poolers). The gateway
    # then sends no startup parameters and no named prepared statements (server/db.py).
    db_pooler: Literal["none", "transaction"] = "none"

    backend: Literal["llamacpp", "openai"] = "llamacpp"
    model: str | None = None  # GGUF path (llamacpp) or upstream model id (openai)
    served_model_name: str | None = None
    adapter: str | None = None  # None: the shipped RLPA adapter (embedded); "none": no adapter
    n_ctx: int = 2048
    n_threads: int | None = None
    # Generations the embedded model queues behind the one it runs; a request past them gets
    # 503 with Retry-After at once (Ollama's OLLAMA_MAX_QUEUE), not a wait its client gives up on.
    max_queue: int = Field(default=16, ge=0)
    # The visible reply's bound when a request names none (`max_tokens` bounds the reply only).
    default_max_tokens: int = 256
    # The hidden profile block's own bound, apart from the reply's: a block that runs past it
    # ends the turn with finish_reason "length" and is not stored. An upstream is asked for
    # this plus the reply's bound.
    profile_max_tokens: int = Field(default=256, ge=1)
    # Seconds between SSE keep-alive comments (`: keep-alive`) while a stream has nothing to
    # send, such as while the model writes the hidden block; 0 sends none.
    stream_keepalive_s: float = Field(default=5.0, ge=0.0)
    # Sampling defaults for the embedded model: small models loop under greedy decoding.
    embedded_temperature: float = 0.7
    embedded_top_p: float = 0.9
    embedded_repeat_penalty: float = 1.15
    # Constrain the embedded model's decoding to the RLPA format (profile block, then reply).
    embedded_grammar: bool = True
    # The LoRA adapter's scale while the embedded model writes the reply (after <response>):
    # 1 the adapter writes the whole output; 0 the adapter writes the profile block and the base
    # weights write the reply (with the profile in the prompt).
    reply_adapter_scale: float = Field(default=1.0, ge=0.0, le=1.0)
    # What a stored trait may say, where the backend constrains decoding: `said`, only words the
    # user said in this conversation and common function words (the model cannot store what
    # nobody said); `any`, free text.
    trait_words: Literal["said", "any"] = "any"
    # The RLPA contract the model was trained on: 1 (the block is the whole profile) or 2 (the
    # block lists changes). Unset: an embedded adapter's rlpa.json says; otherwise 2.
    contract_version: Literal[1, 2] | None = None

    upstream_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    upstream_api_key: SecretStr | None = None
    upstream_connect_timeout_s: float = 5.0
    upstream_read_timeout_s: float = 120.0
    upstream_retries: int = 2
    # Requests one replica has in flight to its upstreams at once (all of them together); a
    # request past them gets 503 with Retry-After at once. 0: no limit.
    upstream_max_inflight: int = Field(default=0, ge=0)
    # The RLPA format as the upstreams' structured-output constraint: `vllm` (structured_outputs),
    # `vllm-guided` (guided_grammar, vLLM before 0.12), `llamacpp` (grammar), `none`; `auto` asks
    # each upstream what it is, once.
    upstream_grammar: Literal["auto", "vllm", "vllm-guided", "llamacpp", "none"] = "auto"

    @field_validator("upstream_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @field_validator("user_header", "metrics_tenants", mode="before")
    @classmethod
    def _split_headers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("contract_version", mode="before")
    @classmethod
    def _version_number(cls, value: object) -> object:
        # RLPA_CONTRACT_VERSION=1 arrives as "1", and Literal[1, 2] matches only the ints.
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        key = self.admin_api_key.get_secret_value() if self.admin_api_key else None
        if key is not None and not self.is_loopback:
            if key.lower() in PLACEHOLDER_SECRETS or len(key) < MIN_PUBLIC_KEY_CHARS:
                raise ValueError(
                    "RLPA_ADMIN_API_KEY is a placeholder or shorter than "
                    f"{MIN_PUBLIC_KEY_CHARS} characters while bound to {self.host}"
                )
        if self.backend == "openai" and not self.upstream_urls:
            raise ValueError("RLPA_BACKEND=openai needs RLPA_UPSTREAM_URLS")
        return self

    @cached_property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        tail = self.database_url.split(":///", 1)[-1]
        return None if tail in ("", ":memory:") else Path(tail)
